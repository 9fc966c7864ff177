//! The fourth family: CL-Dis (`[cldis]` in a run's TOML). Networks in `nn::diffae` and `nn::vae`, settings, the
//! feedback and the losses in `cldis`, the model in `model::cldis`, the trainers in `train`; this module is where
//! they meet the [`Method`] interface. Stages: `diffae` (P0), `copilot` (P1), `loop` (P2, the final one); the
//! navigation (P3) is trained on a finished run by `dydis navigate` into the run's `nav/` folder.
use super::{Method, Model};
use crate::display::Table;
use crate::run::checkpoint::Checkpoint;
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::train::{ClDisTrainer, Phase, Trainer};
use crate::{Error, Result};
use std::any::Any;
use tch::{Device, Tensor};

pub use crate::model::cldis::ClDis;

/// The CL-Dis family.
pub struct ClDisMethod;

impl Method for ClDisMethod {
    fn kind(&self) -> MethodKind {
        MethodKind::ClDis
    }

    fn describe(&self) -> &'static str {
        "CL-Dis: a diffusion autoencoder distilled from a co-pilot β-VAE whose capacity the diffusion feeds back"
    }

    fn stages(&self, _config: &RunConfig) -> Vec<&'static str> {
        ClDis::STAGES.to_vec()
    }

    fn final_stage(&self) -> &'static str {
        ClDis::STAGES[2]
    }

    fn stage_steps(&self, config: &RunConfig, stage: &str) -> Result<usize> {
        Ok(Phase::from_stage(stage)?.steps(config))
    }

    fn length_key(&self) -> &'static str {
        "cldis.loop_steps"
    }

    fn final_steps(&self, config: &RunConfig) -> Result<usize> {
        Ok(config.cldis.loop_steps)
    }

    fn stage_inputs(&self, config: &RunConfig, stage: &str) -> Option<serde_json::Value> {
        // P0 reads the seed, the images, the Diff-AE and its training; P1 also the co-pilot and the feedback's
        // data statistics. The loop's, navigation's and metric's settings change neither.
        let c = &config.cldis;
        let p0 = serde_json::json!({
            "seed": config.seed, "data": config.data, "image_size": c.image_size, "channels": c.channels,
            "diffae": c.diffae, "timesteps": c.timesteps, "betas": [c.beta_start, c.beta_end],
            "batch_size": c.batch_size, "diffae_steps": c.diffae_steps, "lr": c.lr, "grad_clip": c.grad_clip,
            "ema_decay": c.ema_decay, "copilot_latent": c.copilot.latent, "copilot_width": c.copilot.width,
            "nav_width": c.navigation.width,
        });
        match stage {
            "diffae" => Some(p0),
            "copilot" => Some(serde_json::json!({ "p0": p0, "copilot": c.copilot, "feedback": c.feedback })),
            _ => None,
        }
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
        Ok(Box::new(ClDisTrainer::new(Phase::from_stage(stage)?, config, device, dir.root(), resume)?))
    }

    fn load(&self, checkpoint: &Checkpoint, device: Device) -> Result<Box<dyn Model>> {
        Ok(Box::new(ClDis::from_checkpoint(checkpoint, device)?))
    }
}

impl Model for ClDis {
    super::model_common!(MethodKind::ClDis, ClDis);

    /// z_sem (EMA encoder) or the co-pilot's posterior mean (`cldis.representation`) as `[B, d, 1]`.
    fn represent(&self, images: &Tensor, _aligned: bool) -> Result<Tensor> {
        Ok(self.codes(images)?.unsqueeze(-1))
    }

    /// DDIM inversion to x_T, then DDIM decoding, both conditioned on the images' z_sem (deterministic).
    fn reconstruct(&self, images: &Tensor, _seed: u64) -> Result<Tensor> {
        self.reconstruct_images(images)
    }
}

/// Train the navigation (P3) of a CL-Dis run in `dir` (its loop finished) into `<run>/nav/`: the stored
/// configuration with `overrides` applied to `cldis.navigation`, continued from the newest `nav` checkpoint with
/// `resume`, at most `max_steps` more steps. Ctrl-C finishes the step and saves.
pub fn train_navigation(
    dir: &RunDir,
    overrides: &[String],
    device: Device,
    resume: bool,
    max_steps: Option<usize>,
) -> Result<super::StageOutcome> {
    let stored = dir
        .stored_config()?
        .ok_or_else(|| Error::config("run", format!("{} holds no run configuration", dir.root().display())))?;
    if stored.method != MethodKind::ClDis {
        return Err(Error::config(
            "method",
            format!("{} is a `{}` run, not a CL-Dis one", dir.root().display(), stored.method),
        ));
    }
    if let Some(o) = overrides.iter().find(|o| !o.trim_start().starts_with("cldis.navigation.")) {
        return Err(Error::config("--set", format!("'{o}': only cldis.navigation.* can change after training")));
    }
    let config = stored.with_overrides(overrides)?;
    let loop_done = dir.newest(ClDis::STAGES[2])?.map(|c| c.0).unwrap_or(0);
    if loop_done < config.cldis.loop_steps {
        return Err(Error::config(
            "stage",
            format!(
                "the closed loop of {} has {loop_done} of {} steps: finish it first",
                dir.root().display(),
                config.cldis.loop_steps
            ),
        ));
    }
    crate::train::install_interrupt_handler();
    let mut t = ClDisTrainer::new(Phase::Navigation, &config, device, dir.root(), resume)?;
    println!("{}, {device:?}; logging to {}", t.describe(), dir.log(ClDis::NAV_STAGE).display());
    super::finish_stage(&mut t, dir, max_steps)
}
