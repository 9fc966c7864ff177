//! CLI commands of the model: training both stages, sampling, interchange, interpolation, the train-step benchmark.
use anyhow::{bail, Context, Result};
use clap::Args;
use dydis_core::diffusion::Ddim;
use dydis_core::display::Show;
use dydis_core::generate;
use dydis_core::model::Ldm;
use dydis_core::nn::FirstStageConfig;
use dydis_core::train::{self, checkpoint, AeTrainer, LdmTrainer, RunConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

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

impl TrainArgs {
    fn load(&self) -> Result<(RunConfig, PathBuf)> {
        let cfg = RunConfig::load_with(&self.config, &self.set)?;
        let dir = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
        Ok((cfg, dir))
    }
}

fn prepare_run_dir(cfg: &RunConfig, dir: &Path, resume: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("config.toml");
    if path.exists() && !resume {
        let old = RunConfig::from_toml(&std::fs::read_to_string(&path)?).ok();
        if old.as_ref().is_some_and(|o| o.model != cfg.model) {
            bail!(
                "{} holds a run with another model configuration: pass --out <new folder>, or --resume to continue it",
                dir.display()
            );
        }
    }
    dydis_core::display::write_atomic(&path, cfg.to_toml().as_bytes())?;
    Ok(())
}

fn print_outcome(stage: &str, o: &train::Outcome) {
    let ck = o.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let why = if o.interrupted { " (interrupted: resume with --resume)" } else { "" };
    println!("{stage}: {} steps in {:.1} s{why}; checkpoint {ck}", o.steps_done, o.seconds);
}

pub fn train_ae(args: &TrainArgs, device: Device) -> Result<i32> {
    let (cfg, dir) = args.load()?;
    prepare_run_dir(&cfg, &dir, args.resume)?;
    train::install_interrupt_handler();
    let mut t = AeTrainer::new(&cfg, device, &dir, args.resume)?;
    println!(
        "first stage of `{}` on {} ({} images), {:?}; logging to {}",
        cfg.name,
        cfg.data,
        t.history().steps.len(),
        device,
        dir.join("ae/log.jsonl").display()
    );
    let o = t.run(args.steps)?;
    print_outcome("ae", &o);
    t.history().curve()?.save(dir.join("ae/loss.svg"))?;
    Ok(if o.interrupted { 130 } else { 0 })
}

/// Train the LDM; a VQ first stage that has no checkpoint yet is trained first.
pub fn train_ldm(args: &TrainArgs, device: Device) -> Result<i32> {
    let (cfg, dir) = args.load()?;
    prepare_run_dir(&cfg, &dir, args.resume)?;
    train::install_interrupt_handler();
    if cfg.vq().is_some() {
        let ae_done = checkpoint::list(&dir.join("ae"))?.last().map(|(s, _)| *s).unwrap_or(0);
        if ae_done < cfg.ae.steps && !(args.resume && !checkpoint::list(&dir.join("ldm"))?.is_empty()) {
            println!("training the first stage first ({} of {} steps done)", ae_done, cfg.ae.steps);
            let mut ae = AeTrainer::new(&cfg, device, &dir, true)?;
            let o = ae.run(None)?;
            print_outcome("ae", &o);
            ae.history().curve()?.save(dir.join("ae/loss.svg"))?;
            if o.interrupted {
                return Ok(130);
            }
        }
    }
    let mut t = LdmTrainer::new(&cfg, device, &dir, args.resume)?;
    println!("{}", t.ldm.summary().to_text());
    println!(
        "training `{}` on {} ({} images, {} steps/epoch, {} steps), {:?}; logging to {}",
        cfg.name,
        cfg.data,
        t.data().num_images(),
        t.steps_per_epoch(),
        t.total_steps(),
        device,
        dir.join("ldm/log.jsonl").display()
    );
    let o = t.run(args.steps)?;
    print_outcome("ldm", &o);
    t.history().curve()?.save(dir.join("ldm/loss.svg"))?;
    Ok(if o.interrupted { 130 } else { 0 })
}

#[derive(Args)]
pub struct GenArgs {
    /// A checkpoint: a run folder (its newest LDM checkpoint) or a step folder.
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
    /// Output PNG (default: <run folder>/<command>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A trained model with the images it reads: its dataset or the one asked for.
pub struct Model {
    pub ldm: Ldm,
    pub spec: String,
    pub ds: Arc<dyn dydis_core::data::ImageSource>,
    pub checkpoint: PathBuf,
    /// The run folder (checkpoint = <run>/<stage>/<step>/).
    pub run_dir: PathBuf,
}

/// Load a run folder or checkpoint and open its dataset (or `data`) at the model's image size.
pub fn load_model(checkpoint_arg: &Path, data: Option<&str>, device: Device) -> Result<Model> {
    let ck = checkpoint::resolve(checkpoint_arg)?;
    let ldm = Ldm::load(&ck, device)?;
    let spec = data.map(str::to_string).unwrap_or_else(|| ldm.config.data.clone());
    let ds = dydis_core::data::open_images(&spec, ldm.config.model.image_size as usize)?;
    // step folder -> stage folder -> run folder
    let run_dir = ck.parent().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    Ok(Model { ldm, spec, ds, checkpoint: ck, run_dir })
}

pub(crate) struct Loaded {
    pub ldm: Ldm,
    pub ds: Arc<dyn dydis_core::data::ImageSource>,
    pub ddim: Ddim,
    pub run_dir: PathBuf,
}

pub(crate) fn load_for_generation(a: &GenArgs, device: Device) -> Result<Loaded> {
    let m = load_model(&a.checkpoint, a.data.as_deref(), device)?;
    let s = &m.ldm.config.sample;
    let ddim = Ddim { steps: a.ddim_steps.unwrap_or(s.ddim_steps), eta: a.eta.unwrap_or(s.eta) };
    Ok(Loaded { ldm: m.ldm, ds: m.ds, ddim, run_dir: m.run_dir })
}

pub(crate) fn save(img: &dydis_core::display::Image, out: &Option<PathBuf>, default: PathBuf) -> Result<()> {
    let path = out.clone().unwrap_or(default);
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    img.save_png(&path)?;
    println!("wrote {}", path.display());
    Ok(())
}

pub fn sample(a: &GenArgs, images: &[usize], n: usize, device: Device) -> Result<i32> {
    let l = load_for_generation(a, device)?;
    let idx = if images.is_empty() { generate::pick(l.ds.as_ref(), n, a.seed) } else { images.to_vec() };
    let t = Instant::now();
    let out = generate::conditioned_samples(&l.ldm, l.ds.as_ref(), &idx, l.ddim, a.seed)?;
    let img = generate::grid(
        &out,
        idx.len(),
        &format!("top: images {idx:?}; bottom: DDIM-{} samples conditioned on their latent units", l.ddim.steps),
    )?;
    println!("{} samples in {:.1} s", idx.len(), t.elapsed().as_secs_f64());
    save(&img, &a.out, l.run_dir.join("samples.png"))?;
    Ok(0)
}

pub fn interchange(
    a: &GenArgs,
    source: Option<usize>,
    target: Option<usize>,
    pairs: usize,
    same_noise: bool,
    device: Device,
) -> Result<i32> {
    let l = load_for_generation(a, device)?;
    let list: Vec<(usize, usize)> = match (source, target) {
        (Some(s), Some(t)) => vec![(s, t)],
        (None, None) => generate::pick(l.ds.as_ref(), 2 * pairs, a.seed).chunks(2).map(|c| (c[0], c[1])).collect(),
        _ => bail!("give both --source and --target, or neither"),
    };
    let mut rows = Vec::new();
    for (k, &(s, t)) in list.iter().enumerate() {
        rows.push(generate::interchange(&l.ldm, l.ds.as_ref(), s, t, l.ddim, a.seed + k as u64, same_noise)?);
    }
    let n = rows[0].size()[0] as usize;
    let img = generate::grid(
        &Tensor::cat(&rows, 0),
        n,
        &format!("pairs {list:?}: columns source, target, then source with unit 0..{} taken from target", n - 3),
    )?;
    save(&img, &a.out, l.run_dir.join("interchange.png"))?;
    Ok(0)
}

pub fn interpolate(a: &GenArgs, from: Option<usize>, to: Option<usize>, steps: usize, device: Device) -> Result<i32> {
    let l = load_for_generation(a, device)?;
    let (f, t) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (None, None) => {
            let p = generate::pick(l.ds.as_ref(), 2, a.seed);
            (p[0], p[1])
        }
        _ => bail!("give both --from and --to, or neither"),
    };
    let ends = l.ldm.prepare(&l.ds.images(&[f, t], device)?)?;
    let out = generate::interpolate(&l.ldm, l.ds.as_ref(), f, t, steps, l.ddim, a.seed)?;
    let row = Tensor::cat(&[ends.get(0).unsqueeze(0), out, ends.get(1).unsqueeze(0)], 0);
    let img = generate::grid(
        &row,
        steps + 2,
        &format!(
            "image {f} -> image {t}: all latent units interpolated linearly, one fixed x_T (ends: the real images)"
        ),
    )?;
    save(&img, &a.out, l.run_dir.join("interpolation.png"))?;
    Ok(0)
}

/// The reference script's JSON description of a model (bench/train_step_ref.py).
fn reference_config(cfg: &RunConfig) -> Result<serde_json::Value> {
    let m = &cfg.model;
    let fs = match &m.first_stage {
        FirstStageConfig::Vq(v) => {
            serde_json::json!({"kind": "vq", "ch": v.ch, "ch_mult": v.ch_mult, "num_res_blocks": v.num_res_blocks,
            "n_embed": v.n_embed, "embed_dim": v.embed_dim})
        }
        FirstStageConfig::Identity => serde_json::json!({"kind": "identity"}),
    };
    let u = &m.unet;
    let levels = u.skip_levels(m.latent_shape().1)?;
    Ok(serde_json::json!({
        "image_size": m.image_size, "batch_size": cfg.train.batch_size, "first_stage": fs,
        "extractor": {"width": m.extractor.width, "fc": m.extractor.fc, "mlp": m.extractor.mlp, "units": m.extractor.units, "unit_dim": m.extractor.unit_dim},
        "unet": {"model_channels": u.model_channels, "channel_mult": u.channel_mult, "num_res_blocks": u.num_res_blocks, "attention_ds": u.attention_ds,
            "num_heads": u.num_heads, "dropout": u.dropout, "transformer_depth": u.transformer_depth,
            "skip_dropout": if u.skip_dropout.enabled { u.skip_dropout.rate } else { 0.0 }, "skip_levels": levels},
    }))
}

fn peak_rss_bytes() -> Option<i64> {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0).then_some(ru.ru_maxrss * 1024)
}

/// Time of one LDM training step (encode, extractor, U-Net, L1, backward, AdamW, EMA) on random images.
fn time_steps(cfg: &RunConfig, device: Device, warmup: usize, steps: usize) -> Result<(Vec<f64>, f64)> {
    tch::manual_seed(0);
    let mut ldm = Ldm::new(cfg, device)?;
    let s = cfg.model.image_size;
    let b = cfg.train.batch_size as i64;
    let batches: Vec<Tensor> =
        (0..(warmup + steps).min(8)).map(|_| Tensor::rand([b, 3, s, s], (Kind::Float, device)) * 2.0 - 1.0).collect();
    ldm.fit_scale(&batches[0])?;
    let mut opt = train::optim::AdamW::new(&ldm.vs, &[], cfg.train.lr, (0.9, 0.999), cfg.train.weight_decay);
    let mut ema = train::optim::Ema::new(cfg.train.ema_decay);
    let mut times = Vec::new();
    let mut last = 0.0;
    for i in 0..warmup + steps {
        let x = &batches[i % batches.len()];
        sync(device);
        let t0 = Instant::now();
        let parts = ldm.loss(x, true)?;
        opt.zero_grad();
        parts.loss.backward();
        opt.step();
        ema.update(&ldm.ema_vs, &ldm.vs);
        last = parts.loss.double_value(&[]);
        sync(device);
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((times, last))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn stats(v: &[f64]) -> serde_json::Value {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
    serde_json::json!({"mean": mean, "median": s.get(s.len() / 2).copied().unwrap_or(f64::NAN), "min": s.first().copied().unwrap_or(f64::NAN)})
}

pub fn bench_train_step(
    presets: &[String],
    warmup: usize,
    steps: usize,
    reference: bool,
    python: &Path,
    out: &Path,
    device: Device,
) -> Result<i32> {
    let threads = tch::get_num_threads();
    let mut results = Vec::new();
    for name in presets {
        let cfg = RunConfig::load(name)?;
        println!(
            "{name}: timing {steps} dydis steps (batch {}, {} px) on {device:?} ...",
            cfg.train.batch_size, cfg.model.image_size
        );
        let (times, loss) = time_steps(&cfg, device, warmup, steps)?;
        let ours = stats(&times);
        let mut entry = serde_json::json!({"preset": name, "batch_size": cfg.train.batch_size, "image_size": cfg.model.image_size,
            "dydis": {"step_ms": ours, "last_loss": loss}});
        if reference {
            let dir = out.parent().unwrap_or(Path::new(".")).to_path_buf();
            std::fs::create_dir_all(&dir)?;
            let cfg_path = dir.join(format!("reference-{name}.json"));
            std::fs::write(&cfg_path, serde_json::to_vec_pretty(&reference_config(&cfg)?)?)?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/train_step_ref.py");
            for attn in ["matmul", "sdpa"] {
                println!("{name}: PyTorch eager reference ({attn} attention) ...");
                let res = dir.join(format!("reference-{name}-{attn}.out.json"));
                let status = std::process::Command::new(python)
                    .arg(&script)
                    .args([
                        "--config",
                        &cfg_path.to_string_lossy(),
                        "--steps",
                        &steps.to_string(),
                        "--warmup",
                        &warmup.to_string(),
                    ])
                    .args([
                        "--threads",
                        &threads.to_string(),
                        "--device",
                        if device.is_cuda() { "cuda" } else { "cpu" },
                        "--attn",
                        attn,
                    ])
                    .args(["--out", &res.to_string_lossy()])
                    .env("PYTHONWARNINGS", "ignore")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .with_context(|| format!("running {}", python.display()))?;
                if !status.success() {
                    bail!("the reference script failed for {name} ({attn})");
                }
                let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&res)?)?;
                entry[format!("pytorch_{attn}")] = r;
            }
            let ours_ms = entry["dydis"]["step_ms"]["median"].as_f64().unwrap_or(f64::NAN);
            let best_ref = ["pytorch_matmul", "pytorch_sdpa"]
                .iter()
                .filter_map(|k| entry[*k]["step_ms"]["median"].as_f64())
                .fold(f64::INFINITY, f64::min);
            entry["ratio_dydis_over_best_pytorch"] = serde_json::json!(ours_ms / best_ref);
            println!(
                "{name}: dydis {ours_ms:.1} ms/step, best PyTorch eager {best_ref:.1} ms/step, ratio {:.3}",
                ours_ms / best_ref
            );
        } else {
            println!(
                "{name}: dydis {:.1} ms/step (median)",
                entry["dydis"]["step_ms"]["median"].as_f64().unwrap_or(f64::NAN)
            );
        }
        results.push(entry);
    }
    let report = serde_json::json!({
        "benchmark": "train-step", "device": format!("{device:?}"), "threads": threads, "warmup": warmup, "steps": steps,
        "peak_rss_bytes": peak_rss_bytes(), "peak_cuda_memory": "not exposed by tch; see the reference's peak_memory_bytes",
        "results": results,
    });
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p)?;
    }
    dydis_core::display::write_atomic(out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(0)
}

/// The model part of the main job: train (or continue) the run, then samples, interchange and interpolation
/// images and loss curves in the run folder. Returns the report's Markdown section.
pub fn quickstart_model(config: &str, run_dir: &Path, device: Device) -> Result<String> {
    let args =
        TrainArgs { config: config.into(), set: vec![], out: Some(run_dir.to_path_buf()), resume: true, steps: None };
    let t0 = Instant::now();
    let code = train_ldm(&args, device)?;
    if code != 0 {
        bail!("training was interrupted; run the same command again to continue");
    }
    let train_secs = t0.elapsed().as_secs_f64();
    let gen =
        GenArgs { checkpoint: run_dir.to_path_buf(), data: None, ddim_steps: None, eta: None, seed: 0, out: None };
    sample(&gen, &[], 8, device)?;
    interchange(&gen, None, None, 2, true, device)?;
    interpolate(&gen, None, None, 8, device)?;
    let ea = crate::eval_cli::EvalArgs {
        input: run_dir.to_path_buf(),
        data: None,
        preset: "quick".into(),
        metrics: None,
        seed: 0,
        aligned: false,
        batch: 256,
        out: Some(run_dir.join("eval")),
    };
    let report = crate::eval_cli::evaluate(&ea, device)?;
    let metrics = report.markdown();
    let metrics = metrics.split_once('\n').map(|x| x.1).unwrap_or(&metrics).to_string();
    let ldm_log = train::History::read(&run_dir.join("ldm/log.jsonl"))?;
    let first = ldm_log.steps.iter().take(50).map(|s| s.loss).sum::<f64>() / ldm_log.steps.len().clamp(1, 50) as f64;
    let last = ldm_log.last_loss(50).unwrap_or(f64::NAN);
    let ldm = Ldm::load(run_dir, device)?;
    let visuals = quickstart_visuals(run_dir, ldm.anchors.is_some(), device)?;
    Ok(format!(
        "## Model (`{config}`)\n\nTrained in {train_secs:.0} s this time (both stages; a finished run is reused). \
         Command: `dydis train --config {config} --out {dir} --resume`.\n\n```\n{summary}\n```\n\n\
         Diffusion loss: mean of the first 50 steps {first:.4}, of the last 50 {last:.4}.\n\n\
         ![first stage loss](ae/loss.svg) ![diffusion loss](ldm/loss.svg)\n\n\
         ### Samples conditioned on the latent units of dataset images (top: the images)\n\n![samples](samples.png)\n\n\
         ### Latent interchange (source, target, then the source with unit i from the target)\n\n![interchange](interchange.png)\n\n\
         ### Interpolation of all units between two images\n\n![interpolation](interpolation.png)\n\n\
         ### Disentanglement metrics (`dydis eval {dir} --preset quick`; files in eval/)\n{metrics}\n{visuals}",
        dir = run_dir.display(),
        summary = ldm.summary().to_text(),
    ))
}

/// The visual tools on the trained run: attention maps, latent-unit projections and, with DyGA, the anchor plots
/// and generation from anchor regions. Returns the report's Markdown section.
fn quickstart_visuals(run_dir: &Path, has_anchors: bool, device: Device) -> Result<String> {
    let gen =
        GenArgs { checkpoint: run_dir.to_path_buf(), data: None, ddim_steps: None, eta: None, seed: 0, out: None };
    crate::viz_cli::attention(&gen, &[], 3, &[], &[], &[], device)?;
    crate::viz_cli::project(run_dir, None, 1000, 0, None, device)?;
    let dir = run_dir.display();
    let mut md = format!(
        "### Attention maps per latent unit (Fig. 4; `dydis attention {dir}`)\n\nColumns: the image, its DDIM sample, then \
         where the U-Net's cross-attention reads each unit (averaged over layers, heads and steps; yellow = most \
         attended).\n\n![attention](attention.png)\n\n\
         ### Latent units projected (Fig. 1, 11; `dydis project {dir}`)\n\nPCA of each unit's features over 1,000 \
         images, coloured by the factor it shares the most information with (NMI); red crosses: DyGA anchors.\n\n\
         ![projections](projections.svg)\n\n"
    );
    if has_anchors {
        crate::viz_cli::anchors(run_dir, None)?;
        crate::viz_cli::anchor_samples(&gen, None, 0, 6, 8, device)?;
        md.push_str(&format!(
            "### DyGA anchors (`dydis anchors {dir}`)\n\n```\n{table}\n```\n\n\
             ![K over refits](anchors/k-over-refits.svg) ![splits and filters](anchors/splits-filters.svg)\n\n\
             ![log-likelihood](anchors/log-likelihood.svg) ![weights](anchors/weights.svg) ![sizes](anchors/sizes.svg)\n\n\
             ### Generation from anchor regions (Fig. 1b; `dydis anchor-samples {dir} --unit 0`)\n\nUnit 0 of one image \
             drawn from each anchor's Gaussian (one row per anchor, heaviest first), everything else fixed.\n\n\
             ![anchor samples](anchor-samples-unit0.png)\n",
            table = std::fs::read_to_string(run_dir.join("anchors/anchors.txt")).unwrap_or_default().trim_end()
        ));
    } else {
        md.push_str("DyGA is off in this run (or has not refit yet), so there are no anchor plots.\n");
    }
    Ok(md)
}

/// Synthetic unit features like an extractor's: a ReLU of a mixture of `k` anisotropic Gaussians in D = 32.
fn synthetic_features(n: i64, units: i64, k: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let per_unit: Vec<Tensor> = (0..units)
        .map(|_| {
            let means = Tensor::rand([k, 32], opts) * 2.0 - 0.5;
            let comp = Tensor::randint(k, [n], (Kind::Int64, Device::Cpu));
            let a = Tensor::randn([k, 4, 32], opts) * 0.15;
            let z = Tensor::randn([n, 1, 4], opts).bmm(&a.index_select(0, &comp)).squeeze_dim(1);
            (z + means.index_select(0, &comp) + Tensor::randn([n, 32], opts) * 0.05).relu()
        })
        .collect();
    Tensor::stack(&per_unit, 1)
}

/// Mean log-likelihood (f64) of a unit's fitted mixture on all of the unit's raw features (normalised as at fit time).
fn unit_log_likelihood(u: &dydis_core::dyga::UnitAnchors, raw: &Tensor) -> Result<f64> {
    let m = &u.mixture;
    let m64 = dydis_core::dyga::Mixture {
        weights: m.weights.to_kind(Kind::Double),
        means: m.means.to_kind(Kind::Double),
        covs: m.covs.to_kind(Kind::Double),
        dims: m.dims.clone(),
    };
    Ok(m64.e_step(&u.norm.apply(&raw.to_kind(Kind::Double)))?.1)
}

/// `dydis bench anchors`: anchor selection for N units × n features × D = 32, per unit and total, as JSON. With the
/// reference (default), the released implementation (bench/dyga_released_ref.py, PyTorch, same thread count) runs
/// on the same 10,000-feature unit in the same run, and the speed-up and log-likelihoods are reported side by side.
/// Our one-unit times are the median of three runs.
pub fn bench_anchors(units: i64, features: i64, reference: bool, python: &Path, out: &Path) -> Result<i32> {
    use dydis_core::dyga::{fit_units, CovModel, DygaConfig};
    let cfg = DygaConfig { enabled: true, ..Default::default() };
    let threads = tch::get_num_threads();
    let mut report = serde_json::json!({"benchmark": "dyga-anchor-selection", "threads": threads, "config": cfg});
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p)?;
    }
    // One unit of 10,000 features: ours (HDDC, the default; and the full-covariance model the released E-step uses)
    // against the released implementation on the same features.
    let one = synthetic_features(10_000, 1, 10, 1);
    let raw = one.select(1, 0);
    let mut one_json = serde_json::Map::new();
    for (name, model) in [("dydis_hddc", CovModel::default()), ("dydis_full", CovModel::Full)] {
        let c = DygaConfig { model, ..cfg.clone() };
        // The median of three runs (the fit is deterministic; the runs differ only in time, and single runs on a
        // shared VM varied by up to 1.5x).
        let mut times = Vec::new();
        let mut fitted = None;
        for _ in 0..3 {
            let t = Instant::now();
            fitted = Some(fit_units(&one, &c, 0, 0)?);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let (a, secs) = (fitted.expect("three runs"), times[1]);
        let ll = unit_log_likelihood(&a.units[0], &raw)?;
        let em_iterations = a.units[0].log_likelihood.len();
        println!("1 unit x 10,000 features, {name}: {secs:.2} s, K = {}, {em_iterations} EM iterations, mean log-likelihood {ll:.3}", a.units[0].k());
        one_json.insert(name.into(), serde_json::json!({"seconds": secs, "seconds_runs": times, "k": a.units[0].k(), "em_iterations": em_iterations, "mean_log_likelihood": ll, "events": a.units[0].events}));
    }
    if reference {
        let raw_path = out.with_extension("features.f32");
        let v: Vec<f32> = Vec::try_from(one.contiguous().flatten(0, -1))?;
        dydis_core::display::write_atomic(&raw_path, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
        let shape = one.size().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        let res = out.with_extension("reference.json");
        println!("released implementation (PyTorch, {threads} threads) on the same unit ...");
        let status = std::process::Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/dyga_released_ref.py"))
            .args([
                "--features",
                &raw_path.to_string_lossy(),
                "--shape",
                &shape,
                "--threads",
                &threads.to_string(),
                "--out",
                &res.to_string_lossy(),
            ])
            .env("PYTHONWARNINGS", "ignore")
            .status()
            .with_context(|| format!("running {}", python.display()));
        let _ = std::fs::remove_file(&raw_path); // 1.3 MB of input, not needed once the script has run
        if !status?.success() {
            bail!("the reference script failed (bench/dyga_released_ref.py)");
        }
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&res)?)?;
        let u = &r["units"][0];
        let ref_s = u["seconds"].as_f64().unwrap_or(f64::NAN);
        let ref_ll = u["mean_log_likelihood"].as_f64().unwrap_or(f64::NAN);
        println!("released: {ref_s:.2} s, K = {}, mean log-likelihood {ref_ll:.3}", u["k"]);
        for name in ["dydis_hddc", "dydis_full"] {
            let e = one_json.get_mut(name).unwrap();
            let (s, ll) =
                (e["seconds"].as_f64().unwrap_or(f64::NAN), e["mean_log_likelihood"].as_f64().unwrap_or(f64::NAN));
            e["speedup_vs_released"] = serde_json::json!(ref_s / s);
            e["log_likelihood_minus_released"] = serde_json::json!(ll - ref_ll);
            println!(
                "{name}: {:.1}x faster than the released implementation, log-likelihood {:+.3} against it",
                ref_s / s,
                ll - ref_ll
            );
        }
        one_json.insert("released".into(), u.clone());
    }
    report["one_unit_10k"] = serde_json::Value::Object(one_json);
    let feats = synthetic_features(features, units, 10, 2);
    println!("{units} units x {features} features x 32: fitting ...");
    let t = Instant::now();
    let a = fit_units(&feats, &cfg, 0, 0)?;
    let total = t.elapsed().as_secs_f64();
    let mut per = Vec::new();
    for u in &a.units {
        let ll = unit_log_likelihood(u, &feats.select(1, u.unit as i64))?;
        per.push(serde_json::json!({"unit": u.unit, "seconds": u.seconds, "k": u.k(), "n_fit": u.n_fit, "splits": u.splits(), "filtered": u.filtered(), "mean_log_likelihood_all_features": ll}));
    }
    println!("{}", a.table().to_text());
    println!("total {total:.1} s for {units} units (target: under 60 s on 2 CPU cores)");
    report["all_units"] = serde_json::json!({"units": units, "features": features, "seconds": total, "per_unit": per});
    // What the subsample costs in fit quality: unit 0 fitted on all of its features, log-likelihood on all of them.
    if features as usize > cfg.max_fit_samples {
        let all = DygaConfig { max_fit_samples: features as usize, ..cfg.clone() };
        let unit0 = feats.narrow(1, 0, 1);
        let t = Instant::now();
        let b = fit_units(&unit0, &all, 0, 0)?;
        let secs = t.elapsed().as_secs_f64();
        let ll_all = unit_log_likelihood(&b.units[0], &feats.select(1, 0))?;
        let ll_sub = per[0]["mean_log_likelihood_all_features"].as_f64().unwrap_or(f64::NAN);
        println!("unit 0 fitted on all {features} features: {secs:.1} s, K = {}, mean log-likelihood {ll_all:.3} (subsample of {}: {ll_sub:.3})", b.units[0].k(), cfg.max_fit_samples);
        report["unit0_all_features"] = serde_json::json!({"seconds": secs, "k": b.units[0].k(), "mean_log_likelihood": ll_all, "subsample_mean_log_likelihood": ll_sub});
    }
    dydis_core::display::write_atomic(out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(0)
}
