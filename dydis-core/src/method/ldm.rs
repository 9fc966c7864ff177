//! The first family: the EncDiff-style latent diffusion model with DyGA and Skip Dropout (paper §3). Its parts
//! live in `nn` (networks), `diffusion`, `dyga`, `model` ([`Ldm`], [`Autoencoder`]) and `train` (its two
//! trainers); this module is where they meet the [`Method`] interface.
//!
//! Stages: `ae` (the VQ first stage; absent with the identity first stage), then `ldm`.
use super::{Method, Model};
use crate::display::Table;
use crate::run::checkpoint::Checkpoint;
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::train::{AeTrainer, LdmTrainer, Trainer};
use crate::{Error, Result};
use std::any::Any;
use tch::{Device, Tensor};

pub use crate::model::{Autoencoder, Ldm};

/// The LDM family.
pub struct LdmMethod;

impl Method for LdmMethod {
    fn kind(&self) -> MethodKind {
        MethodKind::Ldm
    }

    fn describe(&self) -> &'static str {
        "EncDiff-style latent diffusion model with Dynamic Gaussian Anchoring and Skip Dropout (the paper's method)"
    }

    fn stages(&self, config: &RunConfig) -> Vec<&'static str> {
        match config.vq() {
            Some(_) => Ldm::STAGES.to_vec(),
            None => vec![self.final_stage()],
        }
    }

    fn final_stage(&self) -> &'static str {
        "ldm"
    }

    fn stage_steps(&self, config: &RunConfig, stage: &str) -> Result<usize> {
        match stage {
            "ae" => Ok(config.ae.steps),
            other => Err(Error::config("stage", format!("the LDM's earlier stage is ae, not '{other}'"))),
        }
    }

    fn length_key(&self) -> &'static str {
        "train.steps"
    }

    fn final_steps(&self, config: &RunConfig) -> Result<usize> {
        config.train.steps.ok_or_else(|| {
            Error::config("train.steps", "the run's length is given in epochs; give it in steps (train.steps)")
        })
    }

    fn stage_inputs(&self, config: &RunConfig, stage: &str) -> Option<serde_json::Value> {
        // The first stage reads the seed, the images and its own sections, nothing of the LDM's.
        (stage == "ae").then(|| {
            serde_json::json!({
                "seed": config.seed,
                "data": config.data,
                "image_size": config.model.image_size,
                "first_stage": config.model.first_stage,
                "ae": config.ae,
            })
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
            "ae" => Ok(Box::new(AeTrainer::new(config, device, dir.root(), resume)?)),
            "ldm" => Ok(Box::new(LdmTrainer::new(config, device, dir.root(), resume)?)),
            other => Err(Error::config("stage", format!("the LDM has the stages ae and ldm, not '{other}'"))),
        }
    }

    fn load(&self, checkpoint: &Checkpoint, device: Device) -> Result<Box<dyn Model>> {
        Ok(Box::new(Ldm::from_checkpoint(checkpoint, device)?))
    }
}

impl Model for Ldm {
    super::model_common!(MethodKind::Ldm, Ldm);

    /// The extractor's latent units `[B, N, D]` (eval mode); `aligned`: after the conditioning step (DyGA alignment
    /// toward the anchors, as the released evaluation scores them).
    fn represent(&self, images: &Tensor, aligned: bool) -> Result<Tensor> {
        let units = tch::no_grad(|| self.units(images, false))?;
        if !aligned {
            return Ok(units);
        }
        tch::no_grad(|| self.condition(&units, false))
    }

    fn has_aligned_form(&self) -> bool {
        self.aligns(false)
    }

    /// DDIM samples (the run's `sample` settings) conditioned on the images' latent units.
    fn reconstruct(&self, images: &Tensor, seed: u64) -> Result<Tensor> {
        let c = self.condition_images(images)?;
        let x_t = crate::generate::noise(self, c.size()[0], seed);
        Ok(self.sample(&c, self.config.sample.ddim(), Some(x_t)))
    }
}
