//! The second family: disentanglement_lib's six VAE baselines (β-VAE, AnnealedVAE, FactorVAE, DIP-VAE-I/II,
//! β-TCVAE; `[vae]` in a run's TOML). Networks in `nn::vae`, losses in `vae`, the model in `model::vae`, the trainer
//! in `train`; this module is where they meet the [`Method`] interface. One stage, `vae`.
use super::{Method, Model};
use crate::display::Table;
use crate::run::checkpoint::Checkpoint;
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::train::{Trainer, VaeTrainer};
use crate::{Error, Result};
use std::any::Any;
use tch::{Device, Tensor};

pub use crate::model::vae::Vae;

/// The VAE family.
pub struct VaeMethod;

impl Method for VaeMethod {
    fn kind(&self) -> MethodKind {
        MethodKind::Vae
    }

    fn describe(&self) -> &'static str {
        "disentanglement_lib's VAE baselines: β-VAE, AnnealedVAE, FactorVAE, DIP-VAE-I/II, β-TCVAE"
    }

    fn stages(&self, _config: &RunConfig) -> Vec<&'static str> {
        vec![Vae::STAGE]
    }

    fn final_stage(&self) -> &'static str {
        Vae::STAGE
    }

    fn stage_steps(&self, _config: &RunConfig, stage: &str) -> Result<usize> {
        Err(Error::config("stage", format!("a VAE run has one stage, vae; '{stage}' is not an earlier one")))
    }

    fn length_key(&self) -> &'static str {
        "vae.steps"
    }

    fn final_steps(&self, config: &RunConfig) -> Result<usize> {
        Ok(config.vae.steps)
    }

    fn stage_step_at(&self, config: &RunConfig, length: usize) -> usize {
        crate::vae::VaeConfig { steps: length, ..config.vae.clone() }.updates()
    }

    fn validate(&self, config: &RunConfig) -> Result<()> {
        config.validate()
    }

    fn trainer(
        &self,
        stage: &str,
        config: &RunConfig,
        dir: &RunDir,
        device: Device,
        resume: bool,
    ) -> Result<Box<dyn Trainer>> {
        match stage {
            Vae::STAGE => Ok(Box::new(VaeTrainer::new(config, device, dir.root(), resume)?)),
            other => Err(Error::config("stage", format!("a VAE run has one stage, vae, not '{other}'"))),
        }
    }

    fn load(&self, checkpoint: &Checkpoint, device: Device) -> Result<Box<dyn Model>> {
        Ok(Box::new(Vae::from_checkpoint(checkpoint, device)?))
    }
}

impl Model for Vae {
    super::model_common!(MethodKind::Vae, Vae);

    /// The codes as `[B, latent, 1]`: one unit of D = 1 per latent dimension (the posterior mean, or a sample with
    /// `vae.representation = "sampled"`). A VAE has no aligned form.
    fn represent(&self, images: &Tensor, _aligned: bool) -> Result<Tensor> {
        Ok(tch::no_grad(|| self.codes(images))?.unsqueeze(-1))
    }

    /// The decoded posterior mean (Bernoulli means in [−1, 1]); `seed` is unused (no noise).
    fn reconstruct(&self, images: &Tensor, _seed: u64) -> Result<Tensor> {
        let (mu, _) = tch::no_grad(|| self.encode(images))?;
        Ok(tch::no_grad(|| self.decode(&mu)))
    }
}
