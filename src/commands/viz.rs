//! `dydis attention | anchor-samples | project | anchors`: the visual tools on a trained run. Each calls the
//! dydis-core `viz` function a notebook calls (same defaults, same seeded image choice) and writes the figure next
//! to the run (or to --out) with a JSON summary.
use crate::common::GenArgs;
use anyhow::{bail, Result};
use clap::Args;
use dydis_core::display::Show;
use dydis_core::dyga::RefitRecord;
use dydis_core::generate;
use dydis_core::model::Ldm;
use dydis_core::run::{Run, RunDir};
use dydis_core::viz::{self, AnchorSamplesOptions, AttentionOptions};
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

#[derive(Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub gen: GenArgs,
    /// Dataset indices (default: --n seeded random ones).
    #[arg(long, value_delimiter = ',')]
    pub images: Vec<usize>,
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Only these cross-attention layers (forward order, 0-based; default all).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Only these heads (default all).
    #[arg(long, value_delimiter = ',')]
    pub heads: Vec<i64>,
    /// Only these DDIM steps, in sampling order, 0 = noisiest (default all).
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<usize>,
}

#[derive(Args)]
pub struct AnchorSamplesArgs {
    #[command(flatten)]
    pub gen: GenArgs,
    /// Dataset index of the conditioning image (default: a seeded random one).
    #[arg(long)]
    pub image: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub unit: usize,
    #[arg(long, default_value_t = 6)]
    pub per_anchor: usize,
    #[arg(long, default_value_t = 8)]
    pub max_anchors: usize,
}

#[derive(Args)]
pub struct ProjectArgs {
    pub checkpoint: PathBuf,
    #[arg(long)]
    pub data: Option<String>,
    /// Number of seeded random images.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct AnchorsArgs {
    pub checkpoint: PathBuf,
    /// Output folder (default: <run>/anchors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Attention maps of the given images, else of `n` seeded random ones.
pub fn attention(a: &AttentionArgs, device: Device) -> Result<i32> {
    let run = a.gen.open(device)?;
    let idx = if a.images.is_empty() { generate::pick(run.images.as_ref(), a.n, a.gen.seed) } else { a.images.clone() };
    let opts = AttentionOptions {
        ddim: a.gen.ddim(&run),
        layers: (!a.layers.is_empty()).then(|| a.layers.clone()),
        heads: (!a.heads.is_empty()).then(|| a.heads.clone()),
        steps: (!a.steps.is_empty()).then(|| a.steps.clone()),
        seed: a.gen.seed,
        ..Default::default()
    };
    let t = Instant::now();
    let maps = viz::attention_maps(run.ldm()?, &run.images.images(&idx, device)?, &opts)?;
    println!("attention maps of {} image(s) in {:.1} s", idx.len(), t.elapsed().as_secs_f64());
    println!("{}", maps.to_text());
    let path = a.gen.out_or(&run, "attention.png");
    maps.save(&path, &idx)?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// Generation from each anchor region of one unit (Fig. 1b).
pub fn anchor_samples(a: &AnchorSamplesArgs, device: Device) -> Result<i32> {
    let run = a.gen.open(device)?;
    let ldm = run.ldm()?;
    let Some(anchors) = &ldm.anchors else {
        bail!(
            "{} has no DyGA anchors (train with dyga.enabled = true; anchors are fitted after every \
             dyga.refit_every-th epoch)",
            run.checkpoint.display()
        );
    };
    let idx = a.image.unwrap_or_else(|| generate::pick(run.images.as_ref(), 1, a.gen.seed)[0]);
    let opts = AnchorSamplesOptions {
        per_anchor: a.per_anchor,
        max_anchors: a.max_anchors,
        ddim: a.gen.ddim(&run),
        seed: a.gen.seed,
    };
    let s = viz::anchor_samples(ldm, anchors, &run.images.images(&[idx], device)?, a.unit, &opts)?;
    println!("{}", s.to_text());
    let path = a.gen.out_or(&run, &format!("anchor-samples-unit{}.png", a.unit));
    s.figure()?.save_png(&path)?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// Projections of every unit of `n` seeded random images.
pub fn project(a: &ProjectArgs, device: Device) -> Result<i32> {
    let run = Run::open_with(&a.checkpoint, a.data.as_deref(), device)?;
    let ldm = run.ldm()?;
    let idx = generate::pick(run.images.as_ref(), a.n, a.seed);
    let units = ldm.collect_units(run.images.as_ref(), &idx, 256)?;
    let p = viz::project_units(&units, &idx, run.factors()?, ldm.anchors.as_ref())?;
    println!("{}", p.to_text());
    let path = a.out.clone().unwrap_or_else(|| run.dir.file("projections.svg"));
    p.save(&path, idx.len(), a.seed)?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// The DyGA anchors of a checkpoint: table, plots of the latest anchors and of K / splits / filters /
/// log-likelihood over the refits logged in the run.
pub fn anchors(a: &AnchorsArgs) -> Result<i32> {
    // The anchors and their log are all this needs: the model alone, not its dataset.
    let (ldm, checkpoint) = dydis_core::method::load_as::<Ldm>(&a.checkpoint, Device::Cpu)?;
    let Some(anchors) = &ldm.anchors else {
        bail!(
            "{} has no DyGA anchors (DyGA off, or no refit yet: anchors are fitted after every \
             dyga.refit_every-th epoch)",
            checkpoint.display()
        );
    };
    let dir = RunDir::of_checkpoint(&checkpoint);
    let history = RefitRecord::read_log(&dir.anchors_log("ldm"))?;
    let plots = viz::anchor_plots(anchors, &history)?;
    println!("{}", plots.table.to_text());
    for f in plots.save(&a.out.clone().unwrap_or_else(|| dir.anchor_plots_dir()))? {
        println!("wrote {}", f.display());
    }
    Ok(0)
}
