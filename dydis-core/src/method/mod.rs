//! Model families behind one interface. A family (a [`Method`]) says which training stages a run has, builds a
//! [`Trainer`] for each, and loads a trained [`Model`] from a checkpoint. Everything downstream (evaluation,
//! reports, `eval-compare`, the visual tools that apply, notebooks, studies) reaches a model through [`Model`], so a
//! new family is one new module here plus presets in `configs/`.
//!
//! Families are trait objects looked up by the configuration's `method` field ([`method`]): a run's family is only
//! known once its TOML or checkpoint is read, commands hold "some trained model" without naming its type, and a
//! family's own tools still reach its concrete type through [`Model::as_any`].
pub mod cldis;
pub mod ldm;
pub mod multibeta;
pub mod vae;

use crate::display::Table;
use crate::run::checkpoint::Checkpoint;
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::train::{run_stage, Outcome, Trainer};
use crate::{Error, Result};
use std::any::Any;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// What a model family provides to the rest of dydis.
pub trait Method: Send + Sync {
    fn kind(&self) -> MethodKind;
    /// One line for listings.
    fn describe(&self) -> &'static str;
    /// The run's checkpoint stages in training order; the last one, [`Method::final_stage`], holds the trained
    /// model.
    fn stages(&self, config: &RunConfig) -> Vec<&'static str>;
    fn final_stage(&self) -> &'static str;
    /// The configured steps of an earlier stage (known without opening the data), so that a finished stage is
    /// recognised from its newest checkpoint alone.
    fn stage_steps(&self, config: &RunConfig, stage: &str) -> Result<usize>;
    /// The configuration key of the final stage's length (`train.steps`), which a study sets to its budget.
    fn length_key(&self) -> &'static str;
    /// The final stage's configured length in steps (an error when it is given otherwise, as epochs).
    fn final_steps(&self, config: &RunConfig) -> Result<usize>;
    /// The final stage's step counter (its checkpoints' numbers) after `length` configured steps: the same number,
    /// except where the family counts otherwise (FactorVAE's two updates per configured step pair).
    fn stage_step_at(&self, _config: &RunConfig, length: usize) -> usize {
        length
    }
    /// What an earlier stage's result depends on, as a value equal for every configuration that would train the
    /// same stage (the LDM's first stage: seed, data and the first stage's sections), so that runs differing only
    /// in later stages can share it. `None`: the stage is not shared.
    fn stage_inputs(&self, _config: &RunConfig, _stage: &str) -> Option<serde_json::Value> {
        None
    }
    /// Family-specific checks beyond [`RunConfig::validate`].
    fn validate(&self, config: &RunConfig) -> Result<()>;
    /// A trainer of `stage` writing into `dir`; with `resume`, it continues the stage's newest checkpoint.
    fn trainer(
        &self,
        stage: &str,
        config: &RunConfig,
        dir: &RunDir,
        device: Device,
        resume: bool,
    ) -> Result<Box<dyn Trainer>>;
    /// The trained model held by a checkpoint of the final stage.
    fn load(&self, checkpoint: &Checkpoint, device: Device) -> Result<Box<dyn Model>>;
}

/// A trained model, as evaluation, reports and displays see it.
pub trait Model: Any {
    fn kind(&self) -> MethodKind;
    fn config(&self) -> &RunConfig;
    fn device(&self) -> Device;
    /// Parts, parameter counts and settings (the model's display).
    fn summary(&self) -> Table;
    /// The representation the metrics read, `[B, N, D]`: N latent units (or code dimensions, D = 1) of a batch of
    /// images in [-1, 1]. `aligned` asks for the form the family's released evaluation scores (the LDM: units
    /// after DyGA alignment); a family without such a form returns an error for it.
    fn represent(&self, images: &Tensor, aligned: bool) -> Result<Tensor>;
    /// Whether `represent(.., true)` differs from the raw form (the LDM: DyGA on, anchors fitted, alignment at
    /// evaluation). Evaluation then scores both forms.
    fn has_aligned_form(&self) -> bool {
        false
    }
    /// What the model makes of images (`[B, 3, S, S]` in [-1, 1]): a reconstruction, or for the LDM a DDIM sample
    /// conditioned on the images' units. `seed` fixes any noise.
    fn reconstruct(&self, images: &Tensor, seed: u64) -> Result<Tensor>;
    /// The concrete model, for a family's own tools (`run.model_as::<Ldm>()`).
    fn as_any(&self) -> &dyn Any;
    /// The concrete model, owned (`run.into_model::<Ldm>()`).
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// The members of [`Model`] that every family implements the same way (its kind, the `config` and `device` fields,
/// its inherent `summary`, the `Any` casts), for use inside `impl Model for T`.
macro_rules! model_common {
    ($kind:expr, $ty:ty) => {
        fn kind(&self) -> MethodKind {
            $kind
        }
        fn config(&self) -> &RunConfig {
            &self.config
        }
        fn device(&self) -> Device {
            self.device
        }
        fn summary(&self) -> Table {
            <$ty>::summary(self)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn into_any(self: Box<Self>) -> Box<dyn Any> {
            self
        }
    };
}
pub(crate) use model_common;

/// The family registered under `kind`.
pub fn method(kind: MethodKind) -> &'static dyn Method {
    match kind {
        MethodKind::Ldm => &ldm::LdmMethod,
        MethodKind::Vae => &vae::VaeMethod,
        MethodKind::MultiBeta => &multibeta::MultiBetaMethod,
        MethodKind::ClDis => &cldis::ClDisMethod,
    }
}

/// Images `indices` of a source (top row) above what the model makes of them (bottom row), any family: the VAEs'
/// decoded posterior means, the LDM's conditioned DDIM samples.
pub fn reconstruction_figure(
    model: &dyn Model,
    images: &dyn crate::data::ImageSource,
    indices: &[usize],
    seed: u64,
) -> Result<crate::display::Image> {
    if indices.is_empty() {
        return Err(Error::config("images", "no images to reconstruct"));
    }
    let x = images.images(indices, model.device())?;
    let r = model.reconstruct(&x, seed)?;
    let grid = Tensor::cat(&[x.to_device(Device::Cpu), r.to_device(Device::Cpu)], 0);
    crate::display::image_grid(
        &grid,
        crate::display::GridOptions { ncol: indices.len(), scale: 2, ..Default::default() },
    )
}

/// Every registered family, in listing order.
pub fn all() -> impl Iterator<Item = &'static dyn Method> {
    MethodKind::ALL.iter().map(|&k| method(k))
}

/// How [`train`] runs.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue the final stage's newest checkpoint (earlier stages always continue theirs).
    pub resume: bool,
    /// Stop the final stage after this many more steps (it can be resumed later).
    pub max_steps: Option<usize>,
    /// Train only this stage (e.g. `ae`, the LDM's first stage), as `dydis train-ae` does.
    pub only_stage: Option<String>,
}

/// A stage's outcome in [`train`].
#[derive(Debug, Clone)]
pub struct StageOutcome {
    pub stage: String,
    pub outcome: Outcome,
    /// The stage's loss curve, written next to its log.
    pub loss_curve: PathBuf,
}

/// Train a run: the configuration is stored in `dir`, every earlier stage that is not finished is trained first
/// (unless a later stage already has checkpoints and the run is resumed), then the final stage. Stops after the
/// first interrupted stage. Progress goes to the terminal and each stage's log.
pub fn train(config: &RunConfig, dir: &RunDir, device: Device, opts: &TrainOptions) -> Result<Vec<StageOutcome>> {
    let m = method(config.method);
    m.validate(config)?;
    let stages = m.stages(config);
    if let Some(only) = &opts.only_stage {
        if !stages.contains(&only.as_str()) {
            return Err(Error::config(
                "stage",
                format!("a {} run has the stages {}, not '{only}'", config.method, stages.join(", ")),
            ));
        }
    }
    dir.prepare(config, opts.resume)?;
    crate::train::install_interrupt_handler();
    let mut done = Vec::new();
    let (last, earlier) = stages.split_last().expect("a method has at least one stage");
    if let Some(only) = &opts.only_stage {
        let mut t = m.trainer(only, config, dir, device, opts.resume)?;
        println!("{}, {device:?}; logging to {}", t.describe(), dir.log(only).display());
        done.push(finish_stage(t.as_mut(), dir, opts.max_steps)?);
        return Ok(done);
    }
    for (i, stage) in earlier.iter().enumerate() {
        let later_started = stages[i + 1..].iter().map(|s| dir.newest(s)).collect::<Result<Vec<_>>>()?;
        if opts.resume && later_started.iter().any(Option::is_some) {
            continue;
        }
        let steps_done = dir.newest(stage)?.map(|c| c.0).unwrap_or(0);
        if steps_done >= m.stage_steps(config, stage)? {
            continue;
        }
        let mut t = m.trainer(stage, config, dir, device, true)?;
        println!("training the {} first ({} of {} steps done)", t.title(), t.current_step(), t.total_steps());
        let o = finish_stage(t.as_mut(), dir, None)?;
        let interrupted = o.outcome.interrupted;
        done.push(o);
        if interrupted {
            return Ok(done);
        }
    }
    let mut t = m.trainer(last, config, dir, device, opts.resume)?;
    println!("{}, {device:?}; logging to {}", t.describe(), dir.log(last).display());
    done.push(finish_stage(t.as_mut(), dir, opts.max_steps)?);
    Ok(done)
}

pub(crate) fn finish_stage(t: &mut dyn Trainer, dir: &RunDir, max_steps: Option<usize>) -> Result<StageOutcome> {
    let outcome = run_stage(t, max_steps)?;
    let stage = t.stage().to_string();
    let ck = outcome.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let why = if outcome.interrupted { " (interrupted: resume with --resume)" } else { "" };
    println!("{stage}: {} steps in {:.1} s{why}; checkpoint {ck}", outcome.steps_done, outcome.seconds);
    let loss_curve = dir.loss_curve(&stage);
    t.history().curve()?.save(&loss_curve)?;
    Ok(StageOutcome { stage, outcome, loss_curve })
}

/// Load the trained model of a checkpoint (a step folder, a stage folder, or a run folder: the newest checkpoint
/// of its final stage), whatever its family.
pub fn load(path: &Path, device: Device) -> Result<(Box<dyn Model>, PathBuf)> {
    let ck = crate::run::checkpoint::load(&resolve_final(path)?)?;
    let model = method(ck.meta.config.method).load(&ck, device)?;
    Ok((model, ck.path))
}

/// As [`load`], as the family's concrete model type (for a tool that needs no images, such as the anchor plots).
pub fn load_as<T: Model>(path: &Path, device: Device) -> Result<(T, PathBuf)> {
    let (model, checkpoint) = load(path, device)?;
    let kind = model.kind();
    let model = model.into_any().downcast::<T>().map_err(|_| wrong_family::<T>(&checkpoint, kind))?;
    Ok((*model, checkpoint))
}

/// The error of asking a run of one family for another family's model type.
pub fn wrong_family<T>(checkpoint: &Path, kind: MethodKind) -> Error {
    let wanted = std::any::type_name::<T>().rsplit("::").next().unwrap_or("other");
    Error::config("method", format!("{} is a `{kind}` run; this needs a {wanted} model", checkpoint.display()))
}

/// The checkpoint folder a path names: itself, a stage folder's newest step, or a run folder's newest checkpoint
/// of a final stage (every family's final stage has its own folder name, so the run's family need not be known).
pub fn resolve_final(path: &Path) -> Result<PathBuf> {
    let finals: Vec<&str> = all().map(|m| m.final_stage()).collect();
    crate::run::checkpoint::resolve(path, &finals)
}
