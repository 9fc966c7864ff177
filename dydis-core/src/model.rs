//! The assembled models: `Autoencoder` (first stage + discriminator, trained by `train-ae`), `Ldm` (frozen first
//! stage, latent-unit extractor, conditional U-Net and its EMA copy) and, in `vae`, the VAE baselines. The LDM's
//! conditioning path is images → extractor → c → [`Ldm::condition`] (where DyGA alignment plugs in) → c̃ → U-Net
//! cross-attention.
pub mod cldis;
pub mod multibeta;
pub mod vae;

use crate::diffusion::{l1_loss, Ddim, Schedule};
use crate::display::{impl_show_via, Table};
use crate::dyga::{align, AlignMode, AlignStats, Anchors};
use crate::nn::optim::Ema;
use crate::nn::{param_count, Discriminator, Extractor, FirstStage, FirstStageConfig, UNet, VqAutoencoder};
use crate::run::checkpoint::{self, Checkpoint};
use crate::run::config::RunConfig;
use crate::{Error, Result};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// First stage and discriminator, for first-stage training. Variables: `first_stage.*`, `disc.*`.
pub struct Autoencoder {
    pub vs: nn::VarStore,
    pub vq: VqAutoencoder,
    pub disc: Discriminator,
    pub config: RunConfig,
}

impl Autoencoder {
    pub fn new(config: &RunConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vq_cfg = config
            .vq()
            .ok_or_else(|| Error::config("model.first_stage", "the identity first stage has nothing to train"))?;
        let vs = nn::VarStore::new(device);
        let vq = VqAutoencoder::new(&(vs.root() / "first_stage"), vq_cfg, config.model.image_size)?;
        let disc = Discriminator::new(&(vs.root() / "disc"), vq_cfg.disc_layers, vq_cfg.disc_ndf);
        Ok(Autoencoder { vs, vq, disc, config: config.clone() })
    }
}

/// The latent diffusion model. Variables: `vs` holds `extractor.*` and `unet.*` (trained), `ema_vs` the EMA U-Net
/// (`unet.*`), `fs_vs` the frozen first stage (`first_stage.*`).
pub struct Ldm {
    pub config: RunConfig,
    pub device: Device,
    pub vs: nn::VarStore,
    pub ema_vs: nn::VarStore,
    pub fs_vs: nn::VarStore,
    pub first_stage: FirstStage,
    pub extractor: Extractor,
    pub unet: UNet,
    pub ema_unet: UNet,
    pub schedule: Schedule,
    /// Latents are multiplied by this before diffusion (1 / std of the first batch with `scale_by_std`).
    pub scale_factor: f64,
    /// DyGA anchors of the latest refit (None before the first one or with DyGA off).
    pub anchors: Option<Anchors>,
}

/// What one training loss evaluation produced.
pub struct LossParts {
    pub loss: Tensor,
    /// How much DyGA alignment moved the units (zeros when it did not run).
    pub align: AlignStats,
    /// The latent units before and after conditioning (alignment).
    pub units: Tensor,
    pub conditioned: Tensor,
}

impl Ldm {
    pub fn new(config: &RunConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let m = &config.model;
        let (channels, size) = m.latent_shape();
        let vs = nn::VarStore::new(device);
        let extractor = Extractor::new(&(vs.root() / "extractor"), &m.extractor, m.image_size)?;
        let unet = UNet::new(&(vs.root() / "unet"), &m.unet, channels, size, m.extractor.unit_dim)?;
        let mut ema_vs = nn::VarStore::new(device);
        let ema_unet = UNet::new(&(ema_vs.root() / "unet"), &m.unet, channels, size, m.extractor.unit_dim)?;
        Ema::copy(&ema_vs, &vs);
        ema_vs.freeze();
        let mut fs_vs = nn::VarStore::new(device);
        let first_stage = match &m.first_stage {
            FirstStageConfig::Vq(c) => {
                FirstStage::Vq(VqAutoencoder::new(&(fs_vs.root() / "first_stage"), c, m.image_size)?)
            }
            FirstStageConfig::Identity => FirstStage::Identity,
        };
        fs_vs.freeze();
        Ok(Ldm {
            config: config.clone(),
            device,
            vs,
            ema_vs,
            fs_vs,
            first_stage,
            extractor,
            unet,
            ema_unet,
            schedule: Schedule::paper(device),
            scale_factor: 1.0,
            anchors: None,
        })
    }

    /// Load the first stage's weights from an autoencoder checkpoint (or an LDM checkpoint, which carries them).
    pub fn load_first_stage(&mut self, ckpt: &Checkpoint) -> Result<()> {
        if let FirstStage::Vq(_) = self.first_stage {
            if ckpt.meta.config.model.first_stage != self.config.model.first_stage {
                return Err(Error::File {
                    path: ckpt.path.clone(),
                    message: "its first stage is configured differently from this run's model.first_stage".into(),
                });
            }
            ckpt.restore(&self.fs_vs, "")?;
        }
        Ok(())
    }

    /// Images `[B, C, S, S]` in [-1, 1] with C = 1 or 3 (grey images are repeated to three channels).
    pub fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        let s = images.size();
        let want = self.config.model.image_size;
        if s.len() != 4 || (s[1] != 1 && s[1] != 3) || s[2] != want || s[3] != want {
            return Err(Error::Shape {
                got: s,
                expected: format!("[B, 3, {want}, {want}] images (the model's image_size)"),
            });
        }
        let x = images.to_device(self.device).to_kind(Kind::Float);
        Ok(if s[1] == 1 { x.repeat([1, 3, 1, 1]) } else { x })
    }

    /// Scaled latents z₀ of images (no gradient).
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let x = self.prepare(images)?;
        Ok(tch::no_grad(|| self.first_stage.encode(&x)) * self.scale_factor)
    }

    /// Images in [-1, 1] from scaled latents.
    pub fn decode(&self, z: &Tensor) -> Tensor {
        tch::no_grad(|| self.first_stage.decode(&(z / self.scale_factor)))
    }

    /// Set `scale_factor` to 1 / std of this batch's latents (torch's unbiased std), as `scale_by_std` does.
    pub fn fit_scale(&mut self, images: &Tensor) -> Result<f64> {
        self.scale_factor = 1.0;
        let z = self.encode(images)?;
        let std = z.std(true).double_value(&[]);
        if !(std.is_finite() && std > 0.0) {
            return Err(Error::config(
                "scale_by_std",
                format!("the first batch's latents have std {std}; cannot scale by it"),
            ));
        }
        self.scale_factor = 1.0 / std;
        Ok(self.scale_factor)
    }

    /// Latent units c `[B, N, D]` of images.
    pub fn units(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.prepare(images)?;
        Ok(self.extractor.forward_t(&x, train))
    }

    /// The conditioning step c → c̃: DyGA alignment toward the anchors when DyGA is on and anchors exist (in
    /// training, and at evaluation when `dyga.align_at_eval`), the identity otherwise. An alignment that fails
    /// (units that do not match the anchors) is an error, never a silent fall back to the raw units.
    pub fn condition(&self, units: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.condition_with_stats(units, train)?.0)
    }

    pub fn condition_with_stats(&self, units: &Tensor, train: bool) -> Result<(Tensor, AlignStats)> {
        let d = &self.config.dyga;
        match &self.anchors {
            Some(a) if self.aligns(train) => align(units, a, d.align, d.lambda, d.tau, train),
            _ => Ok((units.shallow_clone(), AlignStats::default())),
        }
    }

    /// Whether the conditioning step aligns, in training or at evaluation: DyGA on, an alignment mode, anchors
    /// fitted, and at evaluation `dyga.align_at_eval`.
    pub fn aligns(&self, train: bool) -> bool {
        let d = &self.config.dyga;
        self.anchors.is_some() && d.enabled && d.align != AlignMode::Off && (train || d.align_at_eval)
    }

    /// The training loss on a batch of images: ε-prediction L1 at uniform random timesteps.
    pub fn loss(&self, images: &Tensor, train: bool) -> Result<LossParts> {
        let z0 = self.encode(images)?;
        let units = self.units(images, train)?;
        let (conditioned, align) = self.condition_with_stats(&units, train)?;
        let t = self.schedule.sample_t(z0.size()[0], self.device);
        let noise = z0.randn_like();
        let zt = self.schedule.q_sample(&z0, &t, &noise);
        let pred = self.unet.forward_t(&zt, &t, &conditioned, train);
        Ok(LossParts { loss: l1_loss(&pred, &noise), align, units, conditioned })
    }

    /// The latent shape `[C, H, W]` the U-Net works on.
    pub fn latent_shape(&self) -> [i64; 3] {
        let (c, s) = self.config.model.latent_shape();
        [c, s, s]
    }

    /// DDIM samples (EMA U-Net) conditioned on units `[B, N, D]`, starting from `x_t` (standard normal when None).
    pub fn sample(&self, cond: &Tensor, ddim: Ddim, x_t: Option<Tensor>) -> Tensor {
        let b = cond.size()[0];
        let [c, h, w] = self.latent_shape();
        let x_t = x_t.unwrap_or_else(|| Tensor::randn([b, c, h, w], (Kind::Float, self.device)));
        let cond = cond.to_device(self.device);
        let z = tch::no_grad(|| {
            ddim.sample(&self.schedule, x_t, |x, t| self.ema_unet.forward_t(x, t, &cond, false), |_, _| {})
        });
        self.decode(&z)
    }

    /// Eval-mode conditioning of images: c̃ for sampling.
    pub fn condition_images(&self, images: &Tensor) -> Result<Tensor> {
        let u = tch::no_grad(|| self.units(images, false))?;
        self.condition(&u, false)
    }

    /// Raw latent units `[n, N, D]` of images `indices` of a source, in eval mode, in batches (no alignment).
    pub fn collect_units(
        &self,
        source: &dyn crate::data::ImageSource,
        indices: &[usize],
        batch: usize,
    ) -> Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in indices.chunks(batch.max(1)) {
            let x = source.images(chunk, self.device)?;
            parts.push(tch::no_grad(|| self.units(&x, false))?.to_device(Device::Cpu));
        }
        Ok(Tensor::cat(&parts, 0))
    }

    /// Parameter counts per part.
    pub fn param_counts(&self) -> Vec<(&'static str, i64)> {
        vec![
            ("first stage", param_count(&self.fs_vs, "")),
            ("extractor", param_count(&self.vs, "extractor.")),
            ("U-Net", param_count(&self.vs, "unet.")),
            ("EMA U-Net", param_count(&self.ema_vs, "")),
        ]
    }

    pub fn summary(&self) -> Table {
        let m = &self.config.model;
        let (c, s) = m.latent_shape();
        let mut t = Table::new(["part", "parameters", "details"])
            .with_title(format!("dydis LDM `{}` on {:?}", self.config.name, self.device));
        let details = [
            match &m.first_stage {
                FirstStageConfig::Vq(v) => format!(
                    "VQ f={} ch {} x {:?}, codebook {} x {}, latent {c}x{s}x{s}",
                    v.factor(),
                    v.ch,
                    v.ch_mult,
                    v.n_embed,
                    v.embed_dim
                ),
                FirstStageConfig::Identity => format!("identity (pixel space {c}x{s}x{s})"),
            },
            format!(
                "N = {} units of D = {}, width {}, fc {:?}, mlp {:?}",
                m.extractor.units, m.extractor.unit_dim, m.extractor.width, m.extractor.fc, m.extractor.mlp
            ),
            format!(
                "{} ch x {:?}, {} res/level, cross-attn at ds {:?} ({} layers), skip dropout {} on levels {:?}",
                m.unet.model_channels,
                m.unet.channel_mult,
                m.unet.num_res_blocks,
                m.unet.attention_ds,
                self.unet.attention_layers,
                if m.unet.skip_dropout.enabled { m.unet.skip_dropout.rate } else { 0.0 },
                self.unet.dropped_levels()
            ),
            "sampling copy".to_string(),
        ];
        for ((name, n), d) in self.param_counts().into_iter().zip(details) {
            t.push_row([name.to_string(), format_count(n), d]);
        }
        t.push_row(["scale factor".to_string(), String::new(), format!("{:.5}", self.scale_factor)]);
        t
    }
}

/// Restore an LDM's weights (extractor, U-Net, EMA U-Net, first stage) and scale factor from a checkpoint.
pub(crate) fn restore_ldm(ldm: &mut Ldm, ck: &Checkpoint) -> Result<()> {
    if ck.meta.kind != "ldm" {
        return Err(Error::File {
            path: ck.path.clone(),
            message: format!("is a '{}' checkpoint, not a latent diffusion one", ck.meta.kind),
        });
    }
    ck.restore(&ldm.vs, "")?;
    ck.restore(&ldm.ema_vs, "ema.")?;
    ck.restore(&ldm.fs_vs, "")?;
    ldm.scale_factor = ck.meta.scale_factor;
    let get = |k: &str| ck.tensors.get(k).map(|t| t.shallow_clone());
    ldm.anchors = crate::dyga::Anchors::from_checkpoint(&ck.meta.dyga, &get, ldm.device)?;
    Ok(())
}

impl Ldm {
    /// The checkpoint stages of an LDM run, in training order: the first stage (`ae`), then the diffusion model.
    pub const STAGES: [&'static str; 2] = ["ae", "ldm"];

    /// Load a trained model from a checkpoint (a step folder, a stage folder, or a run folder: its newest LDM
    /// checkpoint).
    pub fn load(path: &Path, device: Device) -> Result<Ldm> {
        Ldm::from_checkpoint(&checkpoint::load(&checkpoint::resolve(path, &["ldm"])?)?, device)
    }

    /// The model an LDM checkpoint holds.
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Ldm> {
        let mut ldm = Ldm::new(&ck.meta.config, device)?;
        restore_ldm(&mut ldm, ck)?;
        Ok(ldm)
    }
}

impl_show_via!(Ldm, summary);

/// 37549507 → "37.55 M".
pub fn format_count(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
