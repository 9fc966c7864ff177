//! dydis-core: disentangled representation learning with diffusion models (DyGA + Skip Dropout).
//!
//! Layers, bottom to top (docs/architecture.md; a test keeps imports pointing down):
//! `error`; `fs`, `paths`; `display`; `device`, `data`, `nn`, `diffusion`; `dyga`; the run's files
//! (`run::config`, `run::dir`, `run::checkpoint`); `model`; `train`, `generate`; `method` (model families behind
//! one interface); `eval`, `viz`; `run` (`Run::open`) and `bench`; `study` (multi-seed comparisons).
pub mod bench;
pub mod cldis;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod display;
pub mod dyga;
pub mod error;
pub mod eval;
pub mod flow;
pub mod fs;
pub mod generate;
pub mod method;
pub mod model;
pub mod multibeta;
pub mod nn;
pub mod paths;
pub mod run;
pub mod study;
pub mod train;
pub mod vae;
pub mod viz;

pub use error::{Error, Result};

/// What a notebook or script usually needs, in one import (the `dydis` kernel imports it in every notebook).
pub mod prelude {
    pub use crate::data::{
        self, batch, image, sample_grid, traversal, view, BatchIter, DSpritesGrid, DSpritesRenderer, Factor,
        FactorSampler, FactorSpace, GroundTruth, ImageSource,
    };
    pub use crate::device::{cuda_available, device, seed_everything, set_threads, DeviceSpec, RuntimeInfo};
    pub use crate::diffusion::{Ddim, Schedule};
    pub use crate::display::{
        bar_chart, image_grid, line_plot, show, GridOptions, Html, Image, Panel, Series, Show, Svg, Table,
    };
    pub use crate::dyga::{self, Anchors, DygaConfig, RefitRecord};
    pub use crate::eval::{self, Booster, Codes, EvalConfig, GbtConfig, Report};
    pub use crate::generate;
    pub use crate::method::{self, Method, Model};
    pub use crate::model::{vae::Vae, Autoencoder, Ldm};
    pub use crate::run::{self, checkpoint, MethodKind, Run, RunConfig, RunDir};
    pub use crate::study::{self, StudyResults, StudySpec};
    pub use crate::train::{self, AeTrainer, History, LdmTrainer, Trainer, VaeTrainer};
    pub use crate::vae::{self, Objective, VaeConfig};
    pub use crate::viz::{
        self, anchor_plots, anchor_samples, attention_maps, project_units, AnchorSamplesOptions, AttentionOptions,
    };
    pub use crate::{Error, Result};
    pub use plotters;
    pub use tch::{self, Device, Kind, Tensor};
}
