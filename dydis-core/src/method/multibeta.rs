//! The third family: the Denoising Multi-β VAE (`[multibeta]` in a run's TOML). Networks in `nn::multibeta`,
//! settings and losses in `multibeta`, the model in `model::multibeta`, the trainers in `train`; this module is
//! where they meet the [`Method`] interface. Stages: `mbvae` (the β-conditioned VAE), then `denoiser`.
use super::{Method, Model};
use crate::display::Table;
use crate::run::checkpoint::Checkpoint;
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::train::{DenoiserTrainer, MultiBetaVaeTrainer, Trainer};
use crate::{Error, Result};
use std::any::Any;
use tch::{Device, Tensor};

pub use crate::model::multibeta::MultiBeta;

/// The Multi-β VAE family.
pub struct MultiBetaMethod;

impl Method for MultiBetaMethod {
    fn kind(&self) -> MethodKind {
        MethodKind::MultiBeta
    }

    fn describe(&self) -> &'static str {
        "Denoising Multi-β VAE: one VAE over a spectrum of β, and a non-linear diffusion over β back to detail"
    }

    fn stages(&self, _config: &RunConfig) -> Vec<&'static str> {
        MultiBeta::STAGES.to_vec()
    }

    fn final_stage(&self) -> &'static str {
        MultiBeta::STAGES[1]
    }

    fn stage_steps(&self, config: &RunConfig, stage: &str) -> Result<usize> {
        match stage {
            "mbvae" => Ok(config.multibeta.steps),
            other => Err(Error::config("stage", format!("the Multi-β VAE's earlier stage is mbvae, not '{other}'"))),
        }
    }

    fn length_key(&self) -> &'static str {
        "multibeta.denoiser.steps"
    }

    fn final_steps(&self, config: &RunConfig) -> Result<usize> {
        Ok(config.multibeta.denoiser.steps)
    }

    fn stage_inputs(&self, config: &RunConfig, stage: &str) -> Option<serde_json::Value> {
        // The VAE reads the seed, the images and every setting but the denoiser's.
        (stage == "mbvae").then(|| {
            let mut vae = config.multibeta.clone();
            vae.denoiser = Default::default();
            vae.eval_t = 0.0;
            serde_json::json!({ "seed": config.seed, "data": config.data, "multibeta": vae })
        })
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
            "mbvae" => Ok(Box::new(MultiBetaVaeTrainer::new(config, device, dir.root(), resume)?)),
            "denoiser" => Ok(Box::new(DenoiserTrainer::new(config, device, dir.root(), resume)?)),
            other => {
                Err(Error::config("stage", format!("the Multi-β VAE has the stages mbvae and denoiser, not '{other}'")))
            }
        }
    }

    fn load(&self, checkpoint: &Checkpoint, device: Device) -> Result<Box<dyn Model>> {
        Ok(Box::new(MultiBeta::from_checkpoint(checkpoint, device)?))
    }
}

impl Model for MultiBeta {
    super::model_common!(MethodKind::MultiBeta, MultiBeta);

    /// μ(x, t_e) as `[B, latent, 1]` (`multibeta.eval_t`); no aligned form.
    fn represent(&self, images: &Tensor, _aligned: bool) -> Result<Tensor> {
        Ok(self.encode(images, self.config.multibeta.eval_t)?.unsqueeze(-1))
    }

    /// Denoise-then-decode from level `eval_t` with every one of the N steps.
    fn reconstruct(&self, images: &Tensor, seed: u64) -> Result<Tensor> {
        self.denoised_reconstruction(images, self.config.multibeta.eval_t, 1, seed)
    }
}
