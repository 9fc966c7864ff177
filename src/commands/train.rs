//! `dydis train | train-ae`: train a run of any model family (its stages in order; Ctrl-C finishes the step and
//! saves, `--resume` continues).
use anyhow::Result;
use clap::Args;
use dydis_core::method::{self, TrainOptions};
use dydis_core::run::{RunConfig, RunDir};
use std::path::PathBuf;
use tch::Device;

#[derive(Args)]
pub struct TrainArgs {
    /// A preset (smoke, cpu-quick, paper-shapes3d, paper-mpi3d, paper-cars3d, paper-celeba) or a TOML file.
    #[arg(long, default_value = "cpu-quick")]
    pub config: String,
    /// Override a field, e.g. --set train.steps=500 --set model.unet.skip_dropout.levels='"released-code"'.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Run folder (default runs/<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many more steps (the run can be resumed later).
    #[arg(long)]
    pub steps: Option<usize>,
}

/// Train the run's stages in order (`only_stage`: just that one, as `train-ae` does). Exit code 130 when
/// interrupted.
pub fn train(args: &TrainArgs, only_stage: Option<&str>, device: Device) -> Result<i32> {
    let cfg = RunConfig::load_with(&args.config, &args.set)?;
    let dir = args.out.clone().map(RunDir::new).unwrap_or_else(|| RunDir::for_config(&cfg));
    let opts = TrainOptions { resume: args.resume, max_steps: args.steps, only_stage: only_stage.map(str::to_string) };
    let outcomes = method::train(&cfg, &dir, device, &opts)?;
    Ok(if outcomes.iter().any(|o| o.outcome.interrupted) { 130 } else { 0 })
}
