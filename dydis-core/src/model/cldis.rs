//! CL-Dis assembled: the Diff-AE (semantic encoder `sem.*`, noise predictor `unet.*`, and the distillation's
//! projection `proj.*` when d_sem ≠ d) with its EMA copy (stored as `ema.*`, what decoding and evaluation use), the
//! co-pilot β-VAE (`copilot.*`), the navigation's shift predictor (`nav.*`) and statistics (`stats.*`: the data's
//! per-pixel variance behind the feedback, the mean and spread of z_sem behind navigation's units). Every
//! checkpoint of every stage holds all of them. Images come in [−1, 1]; the co-pilot reads them in [0, 1].
use super::format_count;
use crate::cldis::feedback::Feedback;
use crate::cldis::{losses, ClDisConfig, ClDisRepresentation};
use crate::diffusion::Schedule;
use crate::display::{impl_show_via, Table};
use crate::nn::diffae::{CondUNet, SemanticEncoder, ShiftPredictor};
use crate::nn::param_count;
use crate::nn::vae::{ConvEncoder, DeconvDecoder};
use crate::run::checkpoint::{self, Checkpoint};
use crate::run::config::RunConfig;
use crate::{Error, Result};
use tch::{nn, Device, Kind, Tensor};

pub struct ClDis {
    pub config: RunConfig,
    pub device: Device,
    /// The Diff-AE being trained.
    pub vs: nn::VarStore,
    pub encoder: SemanticEncoder,
    pub unet: CondUNet,
    pub proj: Option<nn::Linear>,
    /// Its EMA copy.
    pub ema_vs: nn::VarStore,
    pub ema_encoder: SemanticEncoder,
    pub ema_unet: CondUNet,
    /// The co-pilot β-VAE.
    pub vae_vs: nn::VarStore,
    pub vae_encoder: ConvEncoder,
    pub vae_decoder: DeconvDecoder,
    /// The navigation's predictor.
    pub nav_vs: nn::VarStore,
    pub predictor: ShiftPredictor,
    pub stats_vs: nn::VarStore,
    pixel_var: Tensor,
    z_mean: Tensor,
    z_std: Tensor,
    pub schedule: Schedule,
}

/// Diff-AE's networks under `root`.
fn diffae(root: &nn::Path, c: &ClDisConfig) -> (SemanticEncoder, CondUNet) {
    (
        SemanticEncoder::new(&(root / "sem"), &c.diffae, c.channels, c.image_size),
        CondUNet::new(&(root / "unet"), &c.diffae, c.channels, c.image_size),
    )
}

/// The losses of one closed-loop step (phase P2).
pub struct LoopLosses {
    pub diffusion: Tensor,
    pub distill: Tensor,
    /// The co-pilot's [loss, reconstruction, KL].
    pub copilot: [Tensor; 3],
}

impl ClDis {
    /// The training stages: Diff-AE pre-training (P0), the co-pilot's pre-training (P1), the closed loop (P2).
    pub const STAGES: [&'static str; 3] = ["diffae", "copilot", "loop"];
    /// The navigation's stage (P3), trained on a finished run by `dydis navigate`.
    pub const NAV_STAGE: &'static str = "nav";

    pub fn new(config: &RunConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let c = &config.cldis;
        let vs = nn::VarStore::new(device);
        let (encoder, unet) = diffae(&vs.root(), c);
        let proj = c.projects().then(|| crate::nn::linear(vs.root() / "proj", c.diffae.z_sem, c.copilot.latent, true));
        let mut ema_vs = nn::VarStore::new(device);
        let (ema_encoder, ema_unet) = diffae(&ema_vs.root(), c);
        if c.projects() {
            // The EMA store mirrors every Diff-AE variable, the projection included.
            let _ = crate::nn::linear(ema_vs.root() / "proj", c.diffae.z_sem, c.copilot.latent, true);
        }
        crate::nn::optim::Ema::copy(&ema_vs, &vs);
        ema_vs.freeze();
        let vae_vs = nn::VarStore::new(device);
        let cp = vae_vs.root() / "copilot";
        let (d, w) = (c.copilot.latent, c.copilot.width);
        let vae_encoder = ConvEncoder::widened(&(&cp / "enc"), c.channels, d, c.image_size, w);
        let vae_decoder = DeconvDecoder::widened(&(&cp / "dec"), c.channels, d, c.image_size, w);
        let nav_vs = nn::VarStore::new(device);
        let predictor = ShiftPredictor::new(&(nav_vs.root() / "nav"), c.channels, c.diffae.z_sem, c.navigation.width);
        let stats_vs = nn::VarStore::new(device);
        let st = stats_vs.root() / "stats";
        let px = c.channels * c.image_size * c.image_size;
        let pixel_var = st.var("pixel_var", &[px], nn::Init::Const(0.0));
        let z_mean = st.var("z_mean", &[c.diffae.z_sem], nn::Init::Const(0.0));
        let z_std = st.var("z_std", &[c.diffae.z_sem], nn::Init::Const(1.0));
        Ok(ClDis {
            config: config.clone(),
            device,
            vs,
            encoder,
            unet,
            proj,
            ema_vs,
            ema_encoder,
            ema_unet,
            vae_vs,
            vae_encoder,
            vae_decoder,
            nav_vs,
            predictor,
            stats_vs,
            pixel_var,
            z_mean,
            z_std,
            schedule: Schedule::linear(c.timesteps, c.beta_start, c.beta_end, device),
        })
    }

    pub fn cfg(&self) -> &ClDisConfig {
        &self.config.cldis
    }

    /// Images of the configured shape on the model's device, in [−1, 1].
    pub fn check_images(&self, images: &Tensor) -> Result<Tensor> {
        let c = self.cfg();
        let s = images.size();
        if s.len() != 4 || s[1] != c.channels || s[2] != c.image_size || s[3] != c.image_size {
            return Err(Error::Shape {
                got: s,
                expected: format!("[B, {}, {}, {}] images", c.channels, c.image_size, c.image_size),
            });
        }
        Ok(images.to_device(self.device).to_kind(Kind::Float))
    }

    /// z_sem of images in [−1, 1] by the EMA encoder (`ema`) or the one being trained, without gradients.
    pub fn z_sem(&self, images: &Tensor, ema: bool) -> Result<Tensor> {
        let x = self.check_images(images)?;
        let enc = if ema { &self.ema_encoder } else { &self.encoder };
        Ok(tch::no_grad(|| enc.forward(&x)))
    }

    /// The co-pilot's posterior (μ, log σ²) of images in [−1, 1] (with gradients).
    pub fn copilot_posterior(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.check_images(images)?;
        Ok(self.vae_encoder.forward(&((x + 1.0) * 0.5)))
    }

    /// L_diff on a batch (`x` checked) at timesteps `t` with `noise`, through the trained networks; also z_sem.
    fn diffusion_terms(&self, x: &Tensor, t: &Tensor, noise: &Tensor) -> (Tensor, Tensor) {
        let z = self.encoder.forward(x);
        let pred = self.unet.forward_t(&self.schedule.q_sample(x, t, noise), t, &z, true);
        (losses::diffusion(&pred, noise), z)
    }

    /// Phase P0's loss: L_diff with the encoder trained end to end.
    pub fn diffusion_loss(&self, images: &Tensor, t: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let x = self.check_images(images)?;
        Ok(self.diffusion_terms(&x, t, noise).0)
    }

    /// The co-pilot's capacity objective at capacity C, a posterior sample drawn from the global generator.
    pub fn copilot_loss(&self, images: &Tensor, capacity: f64) -> Result<[Tensor; 3]> {
        let (mu, logvar) = self.copilot_posterior(images)?;
        Ok(self.copilot_terms(images, &mu, &logvar, capacity))
    }

    fn copilot_terms(&self, images: &Tensor, mu: &Tensor, logvar: &Tensor, capacity: f64) -> [Tensor; 3] {
        let z = mu + (logvar * 0.5).exp() * mu.randn_like();
        let x01 = (images.to_device(self.device) + 1.0) * 0.5;
        let rec = crate::vae::losses::reconstruction(&self.vae_decoder.forward(&z), &x01);
        let kl = crate::vae::losses::gaussian_kl(mu, logvar);
        [losses::capacity_objective(&rec, &kl, self.cfg().copilot.gamma, capacity), rec, kl]
    }

    /// z_sem in the co-pilot's width: P(z_sem), or z_sem itself when the widths agree.
    pub fn project(&self, z_sem: &Tensor) -> Tensor {
        match &self.proj {
            Some(p) => z_sem.apply(p),
            None => z_sem.shallow_clone(),
        }
    }

    /// Phase P2's losses: L_diff and L_dt for the Diff-AE, the co-pilot's objective at capacity C.
    pub fn loop_losses(&self, images: &Tensor, t: &Tensor, noise: &Tensor, capacity: f64) -> Result<LoopLosses> {
        let x = self.check_images(images)?;
        let (diffusion, z) = self.diffusion_terms(&x, t, noise);
        let (mu, logvar) = self.vae_encoder.forward(&((&x + 1.0) * 0.5));
        let distill = losses::distillation(&self.project(&z), &mu, self.cfg().distill.temperature);
        let copilot = self.copilot_terms(&x, &mu, &logvar, capacity);
        Ok(LoopLosses { diffusion, distill, copilot })
    }

    /// The data's per-pixel variance σ_j² (the feedback's input), `[C·S·S]`.
    pub fn pixel_variance(&self) -> Vec<f64> {
        Vec::<f64>::try_from(self.pixel_var.to_kind(Kind::Double).to_device(Device::Cpu)).expect("a 1-d tensor")
    }

    /// Set σ_j² from images in [−1, 1].
    pub fn set_pixel_variance(&mut self, images: &Tensor) -> Result<()> {
        let x = self.check_images(images)?;
        if x.size()[0] < 2 {
            return Err(Error::config("cldis.feedback.variance_images", "the variance needs at least two images"));
        }
        let var = x.flatten(1, -1).var_dim(0, false, false);
        tch::no_grad(|| self.pixel_var.copy_(&var));
        Ok(())
    }

    /// The feedback C_dyn(t) of this model's schedule and data.
    pub fn feedback(&self) -> Result<Feedback> {
        Feedback::new(&self.cfg().feedback, &self.schedule.alphas_cumprod, &self.pixel_variance())
    }

    /// Set z_sem's mean and spread per coordinate from the EMA encoder's codes of `images`.
    pub fn set_code_stats(&self, images: &Tensor) -> Result<()> {
        let z = self.z_sem(images, true)?;
        if z.size()[0] < 2 {
            return Err(Error::config("cldis", "the code statistics need at least two images"));
        }
        let (std, mean) = z.std_mean_dim(0, false, false);
        tch::no_grad(|| {
            self.z_mean.shallow_clone().copy_(&mean);
            self.z_std.shallow_clone().copy_(&std.clamp_min(1e-6));
        });
        Ok(())
    }

    /// The per-coordinate standard deviation of z_sem (navigation's unit).
    pub fn code_std(&self) -> Tensor {
        self.z_std.shallow_clone()
    }

    /// Deterministic DDIM decoding of `x_T` conditioned on `z_sem` with `steps` steps (EMA networks).
    pub fn decode(&self, x_t: &Tensor, z_sem: &Tensor, steps: usize) -> Tensor {
        let ts = self.schedule.spaced_timesteps(steps);
        let z = z_sem.to_device(self.device);
        tch::no_grad(|| {
            self.schedule.ddim_decode(&ts, x_t.to_device(self.device), |x, t| self.ema_unet.forward_t(x, t, &z, false))
        })
    }

    /// The stochastic encoding x_T of images by DDIM inversion conditioned on their z_sem (EMA networks).
    pub fn invert(&self, images: &Tensor, z_sem: &Tensor, steps: usize) -> Result<Tensor> {
        let x = self.check_images(images)?;
        let ts = self.schedule.spaced_timesteps(steps);
        let z = z_sem.to_device(self.device);
        Ok(tch::no_grad(|| self.schedule.ddim_invert(&ts, x, |x, t| self.ema_unet.forward_t(x, t, &z, false))))
    }

    /// Inversion with `inversion_steps`, then decoding with `ddim_steps`: Diff-AE's reconstruction.
    pub fn reconstruct_images(&self, images: &Tensor) -> Result<Tensor> {
        let z = self.z_sem(images, true)?;
        let x_t = self.invert(images, &z, self.cfg().inversion_steps)?;
        Ok(self.decode(&x_t, &z, self.cfg().ddim_steps).clamp(-1.0, 1.0))
    }

    /// z_sem with coordinate k moved by `shift` · its standard deviation, `[B, d_sem]`.
    pub fn shifted(&self, z: &Tensor, k: &Tensor, shift: &Tensor) -> Tensor {
        let d = self.cfg().diffae.z_sem;
        let onehot = k.onehot(d).to_kind(Kind::Float);
        z + onehot * shift.unsqueeze(1) * self.z_std.unsqueeze(0)
    }

    /// `n` shifts ε with |ε| uniform on [s_min, s] and a random sign (navigation's shifts; global generator).
    pub fn draw_shifts(&self, n: i64) -> Tensor {
        let nav = &self.cfg().navigation;
        let mag = Tensor::rand([n], (Kind::Float, self.device)) * (nav.shift_max - nav.shift_min) + nav.shift_min;
        mag * (Tensor::randint(2, [n], (Kind::Float, self.device)) * 2.0 - 1.0)
    }

    /// Frames `[K, N, M, C, S, S]` along every coordinate direction of z_sem, from the images' own codes and
    /// stochastic encodings, the shift running over `shifts` (in units of each coordinate's spread).
    pub fn traversal_frames(&self, images: &Tensor, shifts: &[f64], steps: usize) -> Result<Tensor> {
        let z = self.z_sem(images, true)?;
        let x_t = self.invert(images, &z, self.cfg().inversion_steps)?;
        let n = z.size()[0];
        let mut dirs = Vec::new();
        for k in 0..self.cfg().diffae.z_sem {
            let frames: Vec<Tensor> = shifts
                .iter()
                .map(|&s| {
                    let kk = Tensor::full([n], k, (Kind::Int64, self.device));
                    let zs = self.shifted(&z, &kk, &Tensor::full([n], s, (Kind::Float, self.device)));
                    self.decode(&x_t, &zs, steps).clamp(-1.0, 1.0).to_device(Device::Cpu)
                })
                .collect();
            dirs.push(Tensor::stack(&frames, 1));
        }
        Ok(Tensor::stack(&dirs, 0))
    }

    /// The navigation's loss on codes `z` `[B, d_sem]`: direction k and shift ε per example, the pair decoded from
    /// the same noise `x_t` (no gradient through the decoder: axis mode). Returns [loss, CE, shift error, accuracy].
    pub fn navigation_loss(&self, z: &Tensor, x_t: &Tensor, k: &Tensor, shift: &Tensor, train: bool) -> [Tensor; 4] {
        let nav = &self.cfg().navigation;
        let (a, b) = tch::no_grad(|| {
            let a = self.decode(x_t, z, nav.ddim_steps).clamp(-1.0, 1.0);
            let b = self.decode(x_t, &self.shifted(z, k, shift), nav.ddim_steps).clamp(-1.0, 1.0);
            (a, b)
        });
        let (logits, shift_hat) = self.predictor.forward_t(&a, &b, train);
        losses::navigation(&logits, k, &shift_hat, shift, nav.shift_weight)
    }

    /// The representation the metrics read, `[B, d]`.
    pub fn codes(&self, images: &Tensor) -> Result<Tensor> {
        match self.cfg().representation {
            ClDisRepresentation::ZSem => self.z_sem(images, true),
            ClDisRepresentation::Copilot => Ok(tch::no_grad(|| self.copilot_posterior(images))?.0),
        }
    }

    pub fn summary(&self) -> Table {
        let c = self.cfg();
        let mut t = Table::new(["part", "parameters", "details"])
            .with_title(format!("dydis CL-Dis `{}` on {:?}", self.config.name, self.device));
        let d = &c.diffae;
        t.push_row([
            "semantic encoder".to_string(),
            format_count(param_count(&self.vs, "sem.")),
            format!(
                "half U-Net ch {} × {:?}, attention at {:?} px → z_sem ({})",
                d.channels, d.enc_channel_mult, d.attention_res, d.z_sem
            ),
        ]);
        t.push_row([
            "noise predictor".to_string(),
            format_count(param_count(&self.vs, "unet.")),
            format!(
                "U-Net ch {} × {:?}, {} res blocks, modulated by t and z_sem; T = {}, linear β {}→{}",
                d.channels, d.channel_mult, d.num_res_blocks, c.timesteps, c.beta_start, c.beta_end
            ),
        ]);
        if c.projects() {
            t.push_row([
                "projection P".to_string(),
                format_count(param_count(&self.vs, "proj.")),
                format!("z_sem ({}) → co-pilot width ({}) for L_dt", d.z_sem, c.copilot.latent),
            ]);
        }
        t.push_row([
            "co-pilot β-VAE".to_string(),
            format_count(param_count(&self.vae_vs, "")),
            format!(
                "conv_encoder/deconv_decoder, d = {}, γ = {}, C_dyn ≤ {}",
                c.copilot.latent, c.copilot.gamma, c.feedback.c_max
            ),
        ]);
        t.push_row([
            "shift predictor".to_string(),
            format_count(param_count(&self.nav_vs, "")),
            format!("LeNet (w = {}) over image pairs → {} directions + shift", c.navigation.width, d.z_sem),
        ]);
        t
    }

    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        let mut m = ClDis::new(&ck.meta.config, device)?;
        m.restore(ck)?;
        Ok(m)
    }

    /// Every part from a checkpoint of any stage.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.restore(&self.vs, "")?;
        ck.restore(&self.ema_vs, "ema.")?;
        ck.restore(&self.vae_vs, "")?;
        ck.restore(&self.nav_vs, "")?;
        ck.restore(&self.stats_vs, "")
    }

    /// Every part, as a checkpoint stores it.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named(&self.vs, "");
        t.extend(checkpoint::named(&self.ema_vs, "ema."));
        t.extend(checkpoint::named(&self.vae_vs, ""));
        t.extend(checkpoint::named(&self.nav_vs, ""));
        t.extend(checkpoint::named(&self.stats_vs, ""));
        t
    }
}

impl_show_via!(ClDis, summary);
