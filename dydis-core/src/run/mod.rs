//! The run layer: a run's configuration and presets ([`config`]), its checkpoints ([`checkpoint`]), the layout of
//! its folder ([`dir`]), and [`Run::open`], which gives back what a trained run is: its model (whatever its
//! family), the images it reads and their factor grid. The CLI, notebooks, evaluation and the visual tools open
//! runs through it.
pub mod checkpoint;
pub mod config;
pub mod dir;

pub use checkpoint::Checkpoint;
pub use config::{AeTrainConfig, LdmTrainConfig, MethodKind, ModelConfig, RunConfig, SampleConfig, PRESETS};
pub use dir::RunDir;

use crate::data::{FactorSpace, ImageSource};
use crate::method::Model;
use crate::model::Ldm;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Device;

/// A trained run, opened: its model, the checkpoint it came from, and the images it reads.
pub struct Run {
    pub dir: RunDir,
    /// The checkpoint folder the model was loaded from.
    pub checkpoint: PathBuf,
    pub model: Box<dyn Model>,
    /// The dataset spec the images come from (the run's own unless another was asked for).
    pub data: String,
    /// The images, at the model's image size; a ground-truth grid carries its factors ([`Run::factors`]).
    pub images: Arc<dyn ImageSource>,
}

impl Run {
    /// Open a run folder, a stage folder or a checkpoint, with the dataset it was trained on.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Run> {
        Self::open_with(path.as_ref(), None, device)
    }

    /// As [`Run::open`], reading images from `data` (a dataset spec) instead of the run's own dataset.
    pub fn open_with(path: &Path, data: Option<&str>, device: Device) -> Result<Run> {
        let (model, checkpoint) = crate::method::load(path, device)?;
        let config = model.config();
        let data = data.map(str::to_string).unwrap_or_else(|| config.data.clone());
        let images = crate::data::open_images(&data, config.image_size() as usize)?;
        Ok(Run { dir: RunDir::of_checkpoint(&checkpoint), checkpoint, model, data, images })
    }

    pub fn config(&self) -> &RunConfig {
        self.model.config()
    }

    /// The factor grid of the images, one image per factor combination (an error for attribute datasets such as
    /// CelebA, which have none).
    pub fn factors(&self) -> Result<&FactorSpace> {
        self.images.factors().ok_or_else(|| {
            Error::config("data", format!("{} has no ground-truth factor grid (an attribute dataset)", self.data))
        })
    }

    /// The model as its concrete type, for a family's own tools; an error naming the run's family otherwise.
    pub fn model_as<T: Model>(&self) -> Result<&T> {
        let kind = self.model.kind();
        self.model.as_any().downcast_ref::<T>().ok_or_else(|| crate::method::wrong_family::<T>(&self.checkpoint, kind))
    }

    /// The model as its concrete type, owned (a notebook keeps it in a variable of its own, since notebook
    /// variables cannot borrow from one another); an error naming the run's family otherwise.
    pub fn into_model<T: Model>(self) -> Result<T> {
        let kind = self.model.kind();
        let checkpoint = self.checkpoint;
        self.model
            .into_any()
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| crate::method::wrong_family::<T>(&checkpoint, kind))
    }

    /// The LDM of an LDM run (the tools of paper §4: attention maps, anchors, interchange, ...).
    pub fn ldm(&self) -> Result<&Ldm> {
        self.model_as::<Ldm>()
    }
}
