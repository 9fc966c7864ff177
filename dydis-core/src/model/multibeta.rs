//! The Denoising Multi-β VAE assembled: the β-conditioned VAE (variables `enc.*`, `dec.*`, `embed.*`, `gamma.*`),
//! the denoiser over β (`den.*`, trained in the second stage with the VAE frozen) with its EMA copy (stored as
//! `ema.den.*`, the one sampling uses), and the start distribution of image-free generation (`start.*`). Images
//! come in [−1, 1] and enter the networks in [0, 1]; t ∈ [0, 1] is the β level, β(t) = β_min + (β_max − β_min)·t.
use super::format_count;
use crate::display::{impl_show_via, Table};
use crate::multibeta::{losses, MultiBetaConfig, Schedule};
use crate::nn::multibeta::{Denoiser, FilmDecoder, FilmEncoder, Gamma, TimeEmbed};
use crate::nn::param_count;
use crate::run::checkpoint::{self, Checkpoint};
use crate::run::config::RunConfig;
use crate::{Error, Result};
use tch::{nn, Device, Kind, Tensor};

pub struct MultiBeta {
    pub config: RunConfig,
    pub device: Device,
    /// The VAE: encoder, decoder, β embedding and the learned schedule.
    pub vs: nn::VarStore,
    pub encoder: FilmEncoder,
    pub decoder: FilmDecoder,
    pub embed: TimeEmbed,
    pub gamma: Gamma,
    /// The denoiser being trained, and its EMA copy (what sampling uses).
    pub den_vs: nn::VarStore,
    pub denoiser: Denoiser,
    pub ema_vs: nn::VarStore,
    pub ema: Denoiser,
    /// Mean and variance per dimension of the start distribution for image-free generation (`start.mean`,
    /// `start.var`), set when the second stage begins.
    pub stats_vs: nn::VarStore,
    start_mean: Tensor,
    start_var: Tensor,
}

impl MultiBeta {
    /// The stages: the β-conditioned VAE, then the denoiser over β.
    pub const STAGES: [&'static str; 2] = ["mbvae", "denoiser"];

    pub fn new(config: &RunConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let m = &config.multibeta;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = FilmEncoder::new(&(&root / "enc"), m.channels, m.latent, m.image_size, m.embed_width);
        let decoder = FilmDecoder::new(&(&root / "dec"), m.channels, m.latent, m.image_size, m.embed_width);
        let embed = TimeEmbed::new(&(&root / "embed"), m.t_embed, m.embed_width);
        let gamma = Gamma::new(&(&root / "gamma"), m.gamma0, m.gamma1);
        let d = &m.denoiser;
        let den_vs = nn::VarStore::new(device);
        let denoiser = Denoiser::new(&(den_vs.root() / "den"), m.latent, d.width, d.depth, d.t_embed);
        let ema_vs = nn::VarStore::new(device);
        let ema = Denoiser::new(&(ema_vs.root() / "den"), m.latent, d.width, d.depth, d.t_embed);
        crate::nn::optim::Ema::copy(&ema_vs, &den_vs);
        let stats_vs = nn::VarStore::new(device);
        let start_mean = stats_vs.root().var("start_mean", &[m.latent], nn::Init::Const(0.0));
        let start_var = stats_vs.root().var("start_var", &[m.latent], nn::Init::Const(1.0));
        Ok(MultiBeta {
            config: config.clone(),
            device,
            vs,
            encoder,
            decoder,
            embed,
            gamma,
            den_vs,
            denoiser,
            ema_vs,
            ema,
            stats_vs,
            start_mean,
            start_var,
        })
    }

    fn cfg(&self) -> &MultiBetaConfig {
        &self.config.multibeta
    }

    /// Images in [−1, 1] of the configured shape → [0, 1] on the model's device.
    pub fn unit_range(&self, images: &Tensor) -> Result<Tensor> {
        let m = self.cfg();
        let s = images.size();
        if s.len() != 4 || s[1] != m.channels || s[2] != m.image_size || s[3] != m.image_size {
            return Err(Error::Shape {
                got: s,
                expected: format!("[B, {}, {}, {}] images", m.channels, m.image_size, m.image_size),
            });
        }
        Ok((images.to_device(self.device) + 1.0) * 0.5)
    }

    /// A batch of `n` copies of time `t` on the model's device.
    pub fn times(&self, t: f64, n: i64) -> Tensor {
        Tensor::full([n], t, (Kind::Float, self.device))
    }

    /// β(t) for times `[B]`.
    pub fn beta(&self, t: &Tensor) -> Tensor {
        let m = self.cfg();
        t * (m.beta_max - m.beta_min) + m.beta_min
    }

    /// σ_t² for times `[B]`.
    pub fn sigma2(&self, t: &Tensor) -> Tensor {
        match self.cfg().schedule {
            Schedule::Learned => self.gamma.forward(t).sigmoid(),
            Schedule::Sinusoidal => losses::sinusoidal_sigma(t, self.cfg().sigma_min).square(),
        }
    }

    /// Posterior means μ(x, t) `[B, d]` of images in [0, 1] at times `[B]`.
    pub fn encode01(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.encoder.forward(x, &self.embed.forward(t))
    }

    /// Decoder logits of codes `[B, d]` at times `[B]`.
    pub fn decode_logits(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self.decoder.forward(z, &self.embed.forward(t))
    }

    /// Codes → images in [−1, 1] (Bernoulli means) decoded at level `t`.
    pub fn decode(&self, z: &Tensor, t: f64) -> Tensor {
        let z = z.to_device(self.device);
        self.decode_logits(&z, &self.times(t, z.size()[0])).sigmoid() * 2.0 - 1.0
    }

    /// Stage 1's loss on a batch of images in [−1, 1], each at its own level `t` `[B]` (noise from the global
    /// generator).
    pub fn stage1_loss(&self, images: &Tensor, t: &Tensor) -> Result<losses::Stage1> {
        let x = self.unit_range(images)?;
        let mu = self.encode01(&x, t);
        let s2 = self.sigma2(t);
        let z = &mu + s2.sqrt().reshape([-1, 1]) * mu.randn_like();
        let logits = self.decode_logits(&z, t);
        Ok(losses::stage1(&logits, &x, &mu, &s2, &self.beta(t), self.cfg().rescale))
    }

    /// μ(x, t) of images in [−1, 1], without gradients.
    pub fn encode(&self, images: &Tensor, t: f64) -> Result<Tensor> {
        let x = self.unit_range(images)?;
        Ok(tch::no_grad(|| self.encode01(&x, &self.times(t, x.size()[0]))))
    }

    /// The denoiser's loss on a batch of images in [−1, 1] at discrete steps `i` `[B]` (1..=N), with noise `eps`:
    /// the frozen encoder gives z_t = μ(x, t) + σ_t ε and the rate target v = (μ(x, t) − μ(x, s))·N, s = t − 1/N.
    /// `ema`: score the EMA copy instead of the trained denoiser.
    pub fn denoiser_loss(
        &self,
        images: &Tensor,
        i: &Tensor,
        eps: &Tensor,
        ema: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let x = self.unit_range(images)?;
        let n = self.cfg().denoiser.sampler_steps as f64;
        let t = i.to_kind(Kind::Float) / n;
        let s = (i.to_kind(Kind::Float) - 1.0) / n;
        let (z_t, v) = tch::no_grad(|| {
            let mu_t = self.encode01(&x, &t);
            let mu_s = self.encode01(&x, &s);
            (&mu_t + self.sigma2(&t).sqrt().reshape([-1, 1]) * eps, (mu_t - mu_s) * n)
        });
        let net = if ema { &self.ema } else { &self.denoiser };
        let (eps_hat, v_hat) = net.forward(&z_t, &t);
        Ok(losses::denoiser(&eps_hat, eps, &v_hat, &v, self.cfg().denoiser.lambda_delta))
    }

    /// Run the reverse process on latents `[B, d]` from step `from` (t = from/N) down to 0 in strides of `stride`
    /// steps with the EMA denoiser: stochastic steps of the reverse posterior (noise from `seed`), or with
    /// `deterministic` the DDIM-like update. Returns z at t = 0.
    pub fn denoise(&self, z: &Tensor, from: usize, stride: usize, seed: u64, deterministic: bool) -> Result<Tensor> {
        self.denoise_with(z, from, stride, seed, deterministic, true)
    }

    /// [`MultiBeta::denoise`], with `delta = false` ignoring the denoiser's Δ head (the ablation that shows what
    /// predicting the encoding difference is for).
    pub fn denoise_with(
        &self,
        z: &Tensor,
        from: usize,
        stride: usize,
        seed: u64,
        deterministic: bool,
        delta: bool,
    ) -> Result<Tensor> {
        let n = self.cfg().denoiser.sampler_steps;
        if from > n || stride == 0 {
            return Err(Error::config(
                "denoise",
                format!("start step {from} must be in 0..={n} and the stride positive"),
            ));
        }
        // Seeded like every sampler here: the global generator (tests hold `device::global_rng_lock`).
        tch::manual_seed(seed as i64);
        let mut z = z.to_device(self.device);
        let b = z.size()[0];
        let mut i = from;
        tch::no_grad(|| {
            while i > 0 {
                let j = i.saturating_sub(stride);
                let (t, s) = (self.times(i as f64 / n as f64, b), self.times(j as f64 / n as f64, b));
                let (s2_t, s2_s) = (self.sigma2(&t), self.sigma2(&s));
                let (eps_hat, v_hat) = self.ema.forward(&z, &t);
                let delta = if delta { v_hat * ((i - j) as f64 / n as f64) } else { v_hat.zeros_like() };
                z = if deterministic {
                    losses::deterministic_step(&z, &delta, &eps_hat, &s2_t, &s2_s)
                } else {
                    let m = losses::reverse_mean(&z, &delta, &eps_hat, &s2_t, &s2_s);
                    if j > 0 {
                        let xi = z.randn_like();
                        m + losses::reverse_var(&s2_t, &s2_s).sqrt().reshape([-1, 1]) * xi
                    } else {
                        m
                    }
                };
                i = j;
            }
        });
        Ok(z)
    }

    /// The level-`t` code of images, sampled from the posterior with noise from `seed`.
    pub fn encode_sampled(&self, images: &Tensor, t: f64, seed: u64) -> Result<Tensor> {
        let mu = self.encode(images, t)?;
        let s = tch::no_grad(|| self.sigma2(&self.times(t, 1)).sqrt());
        tch::manual_seed(seed as i64);
        Ok(&mu + s * mu.randn_like())
    }

    /// Denoise-then-decode: images encoded at level `t_e` (a posterior sample), the reverse process to t = 0 in
    /// strides of `stride` steps, decoded at t = 0. Images in [−1, 1].
    pub fn denoised_reconstruction(&self, images: &Tensor, t_e: f64, stride: usize, seed: u64) -> Result<Tensor> {
        let n = self.cfg().denoiser.sampler_steps;
        let z = self.encode_sampled(images, t_e, seed)?;
        let z0 = self.denoise(&z, (t_e * n as f64).round() as usize, stride, seed.wrapping_add(1), false)?;
        Ok(tch::no_grad(|| self.decode(&z0, 0.0)))
    }

    /// How far the reverse process carries images' level-`t_e` codes (posterior samples, noise from `seed`) toward
    /// their lossless codes μ(x, 0): the mean Euclidean distance before, after deterministic denoising, and after the
    /// same without the Δ head.
    pub fn denoising_distances(
        &self,
        images: &Tensor,
        t_e: f64,
        stride: usize,
        seed: u64,
    ) -> Result<DenoisingDistances> {
        let n = self.cfg().denoiser.sampler_steps;
        let target = self.encode(images, 0.0)?;
        let z = self.encode_sampled(images, t_e, seed)?;
        let from = (t_e * n as f64).round() as usize;
        let dist = |a: &Tensor| {
            (a - &target).square().sum_dim_intlist(1, false, Kind::Float).sqrt().mean(Kind::Float).double_value(&[])
        };
        Ok(DenoisingDistances {
            t_e,
            start: dist(&z),
            denoised: dist(&self.denoise_with(&z, from, stride, seed, true, true)?),
            without_delta: dist(&self.denoise_with(&z, from, stride, seed, true, false)?),
        })
    }

    /// `n` images without input images: z_1 from the start distribution, the reverse process, decoded at t = 0.
    pub fn generate(&self, n: i64, stride: usize, seed: u64) -> Result<Tensor> {
        let d = self.cfg().latent;
        tch::manual_seed(seed as i64);
        let noise = Tensor::randn([n, d], (Kind::Float, self.device));
        let z = tch::no_grad(|| &self.start_mean + self.start_var.sqrt() * noise);
        let z0 = self.denoise(&z, self.cfg().denoiser.sampler_steps, stride, seed.wrapping_add(1), false)?;
        Ok(tch::no_grad(|| self.decode(&z0, 0.0)))
    }

    /// Set the start distribution from images in [−1, 1]: per dimension, the mean of μ(x, 1) and σ_1² plus its
    /// variance.
    pub fn set_start_distribution(&mut self, images: &Tensor) -> Result<()> {
        let mu = self.encode(images, 1.0)?;
        let s2 = tch::no_grad(|| self.sigma2(&self.times(1.0, 1)));
        tch::no_grad(|| {
            self.start_mean.copy_(&mu.mean_dim(0, false, Kind::Float));
            self.start_var.copy_(&(mu.var_dim(0, false, false) + s2));
        });
        Ok(())
    }

    /// The start distribution's (mean, variance) per dimension.
    pub fn start_distribution(&self) -> (Tensor, Tensor) {
        (self.start_mean.shallow_clone(), self.start_var.shallow_clone())
    }

    pub fn summary(&self) -> Table {
        let m = self.cfg();
        let d = &m.denoiser;
        let mut t = Table::new(["part", "parameters", "details"])
            .with_title(format!("dydis Multi-β VAE `{}` on {:?}", self.config.name, self.device));
        let side = m.image_size / 16;
        t.push_row([
            "encoder".to_string(),
            format_count(param_count(&self.vs, "enc.")),
            format!(
                "conv_encoder + FiLM(t): {}x{}x{} → 64x{side}x{side} → 256 → μ ({})",
                m.channels, m.image_size, m.image_size, m.latent
            ),
        ]);
        t.push_row([
            "decoder".to_string(),
            format_count(param_count(&self.vs, "dec.")),
            format!(
                "deconv_decoder + FiLM(t): {} → 256 → 64x{side}x{side} → {} (Bernoulli logits)",
                m.latent, m.channels
            ),
        ]);
        t.push_row([
            "β embedding, σ_t".to_string(),
            format_count(param_count(&self.vs, "embed.") + param_count(&self.vs, "gamma.")),
            format!(
                "β(t) = {} + {}·t; σ_t {:?}; loss ρ(β) {:?}",
                m.beta_min,
                m.beta_max - m.beta_min,
                m.schedule,
                m.rescale
            ),
        ]);
        t.push_row([
            "denoiser".to_string(),
            format_count(param_count(&self.den_vs, "")),
            format!(
                "MLP {} x {} (z at every layer) → (ε̂, v̂); N = {} steps; EMA {}",
                d.depth, d.width, d.sampler_steps, d.ema_decay
            ),
        ]);
        t
    }

    /// The model a checkpoint holds: a first-stage checkpoint gives the VAE (an untrained denoiser), a
    /// second-stage one everything.
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        let mut m = MultiBeta::new(&ck.meta.config, device)?;
        m.restore(ck)?;
        Ok(m)
    }

    /// Restore the VAE, and the denoiser, its EMA copy and the start distribution when the checkpoint has them.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.restore(&self.vs, "")?;
        if ck.meta.kind == Self::STAGES[1] {
            ck.restore(&self.den_vs, "")?;
            ck.restore(&self.ema_vs, "ema.")?;
            ck.restore(&self.stats_vs, "")?;
        }
        Ok(())
    }

    /// The variables a checkpoint of `stage` stores.
    pub fn named_tensors(&self, stage: &str) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named(&self.vs, "");
        if stage == Self::STAGES[1] {
            t.extend(checkpoint::named(&self.den_vs, ""));
            t.extend(checkpoint::named(&self.ema_vs, "ema."));
            t.extend(checkpoint::named(&self.stats_vs, ""));
        }
        t
    }
}

impl_show_via!(MultiBeta, summary);

/// [`MultiBeta::denoising_distances`]: mean distance to μ(x, 0) before and after the reverse process from `t_e`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DenoisingDistances {
    pub t_e: f64,
    pub start: f64,
    pub denoised: f64,
    /// The same reverse process with the Δ head's output set to zero.
    pub without_delta: f64,
}

impl std::fmt::Display for DenoisingDistances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "distance to μ(x, 0) from t_e = {}: {:.3} before, {:.3} denoised, {:.3} denoised without the Δ head",
            self.t_e, self.start, self.denoised, self.without_delta
        )
    }
}
