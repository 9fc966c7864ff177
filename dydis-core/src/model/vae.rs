//! A VAE baseline of disentanglement_lib's study, assembled: encoder and decoder (variables `enc.*`, `dec.*`) and, for
//! FactorVAE, the discriminator in a variable store of its own (`disc.*`, its own optimiser). Images come in [−1, 1]
//! as everywhere in dydis and enter the networks in [0, 1], the study's range.
use super::format_count;
use crate::display::{image_grid, impl_show_via, GridOptions, Image, Table};
use crate::nn::param_count;
use crate::nn::vae::{ConvEncoder, DeconvDecoder, FcDiscriminator};
use crate::run::checkpoint::{self, Checkpoint};
use crate::run::config::RunConfig;
use crate::vae::losses::{self, Posterior};
use crate::vae::{Objective, Representation};
use crate::{Error, Result};
use tch::{nn, Device, Kind, Tensor};

pub struct Vae {
    pub config: RunConfig,
    pub device: Device,
    pub vs: nn::VarStore,
    pub encoder: ConvEncoder,
    pub decoder: DeconvDecoder,
    /// FactorVAE's discriminator and its variables.
    pub discriminator: Option<(nn::VarStore, FcDiscriminator)>,
}

/// One forward pass's loss and its parts.
pub struct VaeLoss {
    pub loss: Tensor,
    pub reconstruction: Tensor,
    pub kl: Tensor,
    /// The objective's named terms (capacity, tc, dip).
    pub parts: Vec<(&'static str, Tensor)>,
    /// The sampled codes (FactorVAE's discriminator step reads them).
    pub z: Tensor,
}

impl Vae {
    /// The run's only stage.
    pub const STAGE: &'static str = "vae";

    pub fn new(config: &RunConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let v = &config.vae;
        let vs = nn::VarStore::new(device);
        let encoder = ConvEncoder::new(&(vs.root() / "enc"), v.channels, v.latent, v.image_size);
        let decoder = DeconvDecoder::new(&(vs.root() / "dec"), v.channels, v.latent, v.image_size);
        let discriminator = matches!(v.objective, Objective::FactorVae { .. }).then(|| {
            let dvs = nn::VarStore::new(device);
            let d = FcDiscriminator::new(&(dvs.root() / "disc"), v.latent);
            (dvs, d)
        });
        Ok(Vae { config: config.clone(), device, vs, encoder, decoder, discriminator })
    }

    /// Images in [−1, 1] → the posterior's (mean, log-variance) `[B, latent]`.
    pub fn encode(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(self.encoder.forward(&self.unit_range(images)?))
    }

    /// Images in [−1, 1] of the configured shape → the networks' [0, 1] on the model's device.
    fn unit_range(&self, images: &Tensor) -> Result<Tensor> {
        let v = &self.config.vae;
        let s = images.size();
        if s.len() != 4 || s[1] != v.channels || s[2] != v.image_size || s[3] != v.image_size {
            return Err(Error::Shape {
                got: s,
                expected: format!("[B, {}, {}, {}] images", v.channels, v.image_size, v.image_size),
            });
        }
        Ok((images.to_device(self.device) + 1.0) * 0.5)
    }

    /// The codes the metrics read `[B, latent]`: the posterior mean, or a sample (`vae.representation`).
    pub fn codes(&self, images: &Tensor) -> Result<Tensor> {
        let (mu, lv) = self.encode(images)?;
        Ok(match self.config.vae.representation {
            Representation::Mean => mu,
            Representation::Sampled => &mu + (lv * 0.5).exp() * mu.randn_like(),
        })
    }

    /// Codes → images in [−1, 1] (the Bernoulli means).
    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.decoder.forward(&z.to_device(self.device)).sigmoid() * 2.0 - 1.0
    }

    /// The training loss on a batch (images in [−1, 1]) at optimisation step `step`: Bernoulli reconstruction of a
    /// sampled code plus the objective's regularizer.
    pub fn loss(&self, images: &Tensor, step: usize) -> Result<VaeLoss> {
        let x = self.unit_range(images)?;
        let (mu, logvar) = self.encoder.forward(&x);
        let z = &mu + (&logvar * 0.5).exp() * mu.randn_like();
        let reconstruction = losses::reconstruction(&self.decoder.forward(&z), &x);
        let kl = losses::gaussian_kl(&mu, &logvar);
        let logits_real = self.discriminator.as_ref().map(|(_, d)| d.forward(&z));
        let post = Posterior { mu: &mu, logvar: &logvar, z: &z, kl: &kl, logits_real: logits_real.as_ref(), step };
        let (reg, parts) = losses::regularizer(&self.config.vae.objective, &post);
        Ok(VaeLoss { loss: &reconstruction + reg, reconstruction, kl, parts, z })
    }

    /// One latent at a time swept over `values` from the mean code of each image, decoded: rows = images × latents,
    /// columns = values (the usual VAE traversal figure).
    pub fn traversal(&self, images: &Tensor, values: &[f64]) -> Result<Image> {
        let mu = tch::no_grad(|| self.encode(images))?.0;
        let latent = self.config.vae.latent;
        let vals = Tensor::from_slice(values).to_kind(Kind::Float).to_device(self.device).unsqueeze(1);
        let mut rows = Vec::new();
        for b in 0..mu.size()[0] {
            for j in 0..latent {
                let base = mu.get(b).unsqueeze(0).repeat([values.len() as i64, 1]);
                let z = base.index_copy(1, &Tensor::from_slice(&[j]).to_device(self.device), &vals);
                rows.push(tch::no_grad(|| self.decode(&z)));
            }
        }
        let grid = Tensor::cat(&rows, 0).to_device(Device::Cpu);
        image_grid(&grid, GridOptions { ncol: values.len(), scale: 2, ..Default::default() })
    }

    pub fn summary(&self) -> Table {
        let v = &self.config.vae;
        let mut t = Table::new(["part", "parameters", "details"]).with_title(format!(
            "dydis {} `{}` on {:?}",
            v.objective.name(),
            self.config.name,
            self.device
        ));
        let side = v.image_size / 16;
        t.push_row([
            "encoder".to_string(),
            format_count(param_count(&self.vs, "enc.")),
            format!(
                "conv_encoder: {}x{}x{} → 32, 32, 64, 64 (k 4, 4, 2, 2) → 64x{side}x{side} → 256 → μ, log σ² ({})",
                v.channels, v.image_size, v.image_size, v.latent
            ),
        ]);
        t.push_row([
            "decoder".to_string(),
            format_count(param_count(&self.vs, "dec.")),
            format!(
                "deconv_decoder: {} → 256 → 64x{side}x{side} → 64, 32, 32, {} (Bernoulli logits)",
                v.latent, v.channels
            ),
        ]);
        if let Some((dvs, _)) = &self.discriminator {
            t.push_row([
                "discriminator".to_string(),
                format_count(param_count(dvs, "")),
                "fc_discriminator: 6 x 1000, leaky ReLU 0.2 → 2 logits (own Adam, β 0.5, 0.9)".to_string(),
            ]);
        }
        t.push_row(["objective".to_string(), String::new(), format!("{:?}", v.objective)]);
        t
    }

    /// The model a checkpoint of the `vae` stage holds.
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Vae> {
        let mut vae = Vae::new(&ck.meta.config, device)?;
        ck.restore(&vae.vs, "")?;
        if let Some((dvs, _)) = &mut vae.discriminator {
            ck.restore(dvs, "")?;
        }
        Ok(vae)
    }

    /// The variables a checkpoint stores.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = checkpoint::named(&self.vs, "");
        if let Some((dvs, _)) = &self.discriminator {
            t.extend(checkpoint::named(dvs, ""));
        }
        t
    }
}

impl_show_via!(Vae, summary);
