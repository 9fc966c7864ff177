//! What several command families share: where the checkout is, the kernel layout, and the arguments of the
//! commands that generate images from a trained run. No command logic lives here.
use clap::Args;
use dydis_core::diffusion::Ddim;
use dydis_core::run::Run;
use std::path::{Path, PathBuf};
use tch::Device;

/// The checkout this binary was built from (notebooks, configs, reference scripts and the kernel's dydis-core).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub fn repo() -> &'static Path {
    Path::new(REPO)
}

/// The optional reference data (`$DYDIS_REFERENCE_DATA`): when unset, the project's shared data folder next to the
/// checkout this binary was built from, if there is one, as `.cargo/config.toml` does for tests. Everything the
/// binary starts (the kernel it installs, the notebooks it runs) inherits it.
pub fn default_reference_data() {
    if std::env::var_os("DYDIS_REFERENCE_DATA").is_some_and(|v| !v.is_empty()) {
        return;
    }
    if let Ok(dir) = repo().join("../shared/data").canonicalize() {
        // Called at the start of main, before any thread is started.
        std::env::set_var("DYDIS_REFERENCE_DATA", dir);
    }
}

/// The Python of the set-up's venv and the reference scripts in `bench/`.
pub fn bench_reference() -> dydis_core::bench::Reference {
    let layout = kernel_ext::Layout::default();
    dydis_core::bench::Reference { python: layout.venv().join("bin").join("python"), scripts: repo().join("bench") }
}

/// A run to generate from, and how.
#[derive(Args, Clone)]
pub struct GenArgs {
    /// A checkpoint: a run folder (its newest checkpoint of the final stage) or a step folder.
    pub checkpoint: PathBuf,
    /// Dataset to take conditioning images from (default: the one the model was trained on).
    #[arg(long)]
    pub data: Option<String>,
    /// DDIM steps (default: the run's sample.ddim_steps).
    #[arg(long)]
    pub ddim_steps: Option<usize>,
    #[arg(long)]
    pub eta: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (default: <run folder>/<command>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl GenArgs {
    pub fn open(&self, device: Device) -> dydis_core::Result<Run> {
        Run::open_with(&self.checkpoint, self.data.as_deref(), device)
    }

    /// DDIM settings: the run's `sample` section unless overridden.
    pub fn ddim(&self, run: &Run) -> Ddim {
        let run_ddim = run.config().sample.ddim();
        Ddim { steps: self.ddim_steps.unwrap_or(run_ddim.steps), eta: self.eta.unwrap_or(run_ddim.eta) }
    }

    /// `--out`, else `default` in the run folder.
    pub fn out_or(&self, run: &Run, default: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| run.dir.file(default))
    }
}
