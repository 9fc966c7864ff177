//! `dydis bench <what>`: every benchmark lives in `dydis_core::bench`; this writes its JSON.
use crate::common::bench_reference;
use anyhow::Result;
use clap::{Args, Subcommand};
use dydis_core::bench;
use dydis_core::device::DeviceSpec;
use std::path::{Path, PathBuf};

/// The timing options of the training-step benchmarks.
#[derive(Args)]
pub struct StepArgs {
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Skip the PyTorch reference.
    #[arg(long)]
    no_reference: bool,
}

impl StepArgs {
    fn options(&self, presets: Vec<String>, out: &Path, device: tch::Device) -> bench::StepOptions {
        bench::StepOptions {
            presets,
            warmup: self.warmup,
            steps: self.steps,
            device,
            reference: (!self.no_reference).then(bench_reference),
            work_dir: out.parent().unwrap_or(Path::new(".")).to_path_buf(),
        }
    }
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// DyGA anchor selection for N units x n features x D = 32 (synthetic extractor-like features).
    Anchors {
        #[arg(long, default_value_t = 20)]
        units: i64,
        #[arg(long, default_value_t = 100_000)]
        features: i64,
        /// Seeds of the one-unit comparison with the released implementation.
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
        seeds: Vec<u64>,
        /// Skip the released implementation's reference run.
        #[arg(long)]
        no_reference: bool,
        #[arg(long, default_value = "runs/bench/anchors.json")]
        out: PathBuf,
    },
    /// Time per LDM training step of presets, side by side with the same network in PyTorch eager.
    TrainStep {
        /// Preset names or TOML files.
        #[arg(long, value_delimiter = ',', default_value = "smoke,cpu-quick")]
        presets: Vec<String>,
        #[command(flatten)]
        step: StepArgs,
        #[arg(long, default_value = "runs/bench/train-step.json")]
        out: PathBuf,
    },
    /// Time per training step of the VAE baselines (β-VAE, FactorVAE at batch 64, 64 px) against the same networks
    /// in PyTorch eager.
    VaeStep {
        #[arg(long, value_delimiter = ',', default_value = "study-beta-vae,study-factor-vae")]
        presets: Vec<String>,
        #[command(flatten)]
        step: StepArgs,
        #[arg(long, default_value = "runs/bench/vae-step.json")]
        out: PathBuf,
    },
    /// The metric suite at the paper's sample counts (Shapes3D-sized grid) and the downstream task (MPI3D-sized).
    Eval {
        /// A tenth of the sample counts.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "runs/bench/eval.json")]
        out: PathBuf,
    },
    /// Dataset rendering, loading and batching throughput, and each real file format's loader on a file
    /// written in that format.
    Data {
        /// Images per measurement.
        #[arg(long, default_value_t = 20_000)]
        images: usize,
        /// Skip the real-format loaders (writing their files takes about a minute).
        #[arg(long)]
        no_formats: bool,
        /// Objects in the Cars3D folder written for the loader measurement (96 views each).
        #[arg(long, default_value_t = 12)]
        cars3d_objects: usize,
        /// JPEGs in the CelebA folder written for the loader measurement.
        #[arg(long, default_value_t = 3_000)]
        celeba_images: usize,
        #[arg(long, default_value = "runs/bench/data.json")]
        out: PathBuf,
    },
}

/// Run one benchmark; only the training-step benchmark uses `--device`.
pub fn bench(what: BenchWhat, device: DeviceSpec) -> Result<i32> {
    let (json, out) = match what {
        BenchWhat::Anchors { units, features, seeds, no_reference, out } => {
            let reference = (!no_reference).then(bench_reference);
            (
                bench::anchors::run(&bench::anchors::Options {
                    units,
                    features,
                    seeds,
                    reference,
                    results: out.clone(),
                })?,
                out,
            )
        }
        BenchWhat::TrainStep { presets, step, out } => {
            (bench::train_step::run(&step.options(presets, &out, device.resolve()?))?, out)
        }
        BenchWhat::VaeStep { presets, step, out } => {
            (bench::vae_step::run(&step.options(presets, &out, device.resolve()?))?, out)
        }
        BenchWhat::Eval { quick, out } => (bench::eval::run(quick)?, out),
        BenchWhat::Data { images, no_formats, cars3d_objects, celeba_images, out } => {
            let formats = (!no_formats).then_some((cars3d_objects, celeba_images));
            (bench::data::run(&bench::data::Options { images, formats })?, out)
        }
    };
    bench::write_json(&out, &json)?;
    println!("wrote {}", out.display());
    Ok(0)
}
