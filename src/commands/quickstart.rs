//! `dydis quickstart`: the main job on the embedded default data: the environment, the dataset, the environment
//! notebook, then a run trained (or continued) and shown: samples, interchange, interpolation, loss curves, the
//! metrics, attention maps, projections and, with DyGA, the anchors. Everything it calls is the library's; the
//! report in `runs/<name>/report.md` says which command makes each part.
use crate::common::repo;
use anyhow::{bail, Context, Result};
use clap::Args;
use dydis_core::device::{DeviceSpec, RuntimeInfo};
use dydis_core::display::Show;
use dydis_core::dyga::RefitRecord;
use dydis_core::eval::{self, EvalConfig, ModelEval, Units};
use dydis_core::fs::write_atomic;
use dydis_core::generate;
use dydis_core::method::{self, TrainOptions};
use dydis_core::run::{Run, RunConfig, RunDir};
use dydis_core::train::History;
use dydis_core::viz::{self, AnchorSamplesOptions, AttentionOptions};
use kernel_ext::{execute_all, Layout};
use std::time::{Duration, Instant};
use tch::Device;

#[derive(Args)]
pub struct QuickstartArgs {
    #[arg(long, default_value = "quickstart")]
    pub name: String,
    /// Run preset to train (smoke takes seconds; cpu-quick about 30 minutes on 2 cores).
    #[arg(long, default_value = "cpu-quick")]
    pub config: String,
}

/// The embedded default dataset.
const SPEC: &str = "shapes3d-like:quick";

pub fn quickstart(a: &QuickstartArgs, device: DeviceSpec) -> Result<i32> {
    let name = &a.name;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("invalid run name '{name}': use a plain folder name");
    }
    let dir = RunDir::new(repo().join("runs").join(name));
    std::fs::create_dir_all(dir.root()).with_context(|| format!("creating {}", dir.root().display()))?;
    let layout = Layout::default();
    kernel_ext::install_kernel(&layout, repo())?;
    let resolved = device.resolve()?;
    let info = RuntimeInfo::collect();
    println!("{}\n", info.to_text());
    let env_json = serde_json::json!({ "runtime": info, "device": format!("{resolved:?}") });
    write_atomic(&dir.file("environment.json"), serde_json::to_string_pretty(&env_json)?.as_bytes())?;
    // The embedded default dataset: rendered once into the cache, then inspected.
    let start = Instant::now();
    let ds = dydis_core::data::cached(dydis_core::data::open(SPEC)?)?;
    let render_secs = start.elapsed().as_secs_f64();
    let data_dir = dir.file("data");
    dydis_core::data::save_overview(ds.as_ref(), &data_dir, 2)?;
    println!(
        "dataset {} ({} images) ready in {render_secs:.1} s; samples in {}",
        ds.name(),
        ds.len(),
        data_dir.display()
    );

    let notebooks = vec![repo().join("notebooks/00-environment.ipynb")];
    let failed = execute_all(&layout, &notebooks, &dir.file("notebooks"), Duration::from_secs(900))?;
    // The executed notebook as a page of the static gallery (`dydis execute --html` renders them all).
    let executed = dir.file("notebooks").join("00-environment.ipynb");
    if executed.is_file() {
        kernel_ext::write_gallery(&dir.file("gallery"), &[kernel_ext::GalleryEntry { executed, ok: failed == 0 }])?;
    }
    let model = model_section(&a.config, &dir, resolved)?;
    let report = format!(
        "# dydis run `{name}`\n\n```\n{}\n```\n\n## Data\n\n`{SPEC}`: {}, {} images, cached and ready in \
         {render_secs:.1} s.\n\n```\n{}\n```\n\n![samples](data/samples.png)\n\nTraversals: \
         `data/traversal-*.png`.\n\n{model}\n## Notebooks\n\n`notebooks/00-environment.ipynb` {}; executed copy in \
         `notebooks/`, as a page in [gallery/index.html](gallery/index.html). The walkthroughs `01`–`11` (`./dydis \
         notebook`) open each part step by step; `./dydis execute --html <folder>` executes them all into such a \
         gallery, readable offline.\n",
        info.to_text(),
        ds.name(),
        ds.len(),
        ds.factors().table().to_text(),
        if failed == 0 { "ran cleanly" } else { "FAILED" }
    );
    write_atomic(&dir.file("report.md"), report.as_bytes())?;
    println!("\nreport: {}", dir.file("report.md").display());
    Ok(i32::from(failed > 0))
}

/// Train (or continue) the run, then samples, interchange and interpolation images, loss curves and the metrics.
/// Returns the report's Markdown section.
fn model_section(config: &str, dir: &RunDir, device: Device) -> Result<String> {
    let cfg = RunConfig::load(config)?;
    let t0 = Instant::now();
    let outcomes = method::train(&cfg, dir, device, &TrainOptions { resume: true, ..Default::default() })?;
    if outcomes.iter().any(|o| o.outcome.interrupted) {
        bail!("training was interrupted; run the same command again to continue");
    }
    let train_secs = t0.elapsed().as_secs_f64();
    let run = Run::open(dir.root(), device)?;
    let ldm = run.ldm()?;
    let ds = run.images.as_ref();
    let ddim = run.config().sample.ddim();
    let save = |img: dydis_core::display::Image, file: &str| -> Result<()> {
        let path = dir.file(file);
        img.save_png(&path)?;
        println!("wrote {}", path.display());
        Ok(())
    };
    save(generate::samples_figure(ldm, ds, &generate::pick(ds, 8, 0), ddim, 0)?, "samples.png")?;
    save(generate::interchange_figure(ldm, ds, &generate::pick_pairs(ds, 2, 0), ddim, 0, true)?, "interchange.png")?;
    let (from, to) = generate::pick_pairs(ds, 1, 0)[0];
    save(generate::interpolation_figure(ldm, ds, from, to, 8, ddim, 0)?, "interpolation.png")?;

    let opts = ModelEval {
        config: EvalConfig::quick(),
        units: Units::Paper,
        fid: None,
        batch: 256,
        source: run.checkpoint.display().to_string(),
        spec: run.data.clone(),
    };
    let report = eval::evaluate_model_into(run.model.as_ref(), ds, &opts, &dir.eval_dir())?;
    println!("{}", report.to_text());
    let metrics = report.markdown();
    let metrics = metrics.split_once('\n').map(|x| x.1).unwrap_or(&metrics).to_string();
    let ldm_log = History::read(&dir.log("ldm"))?;
    let first = ldm_log.steps.iter().take(50).map(|s| s.loss).sum::<f64>() / ldm_log.steps.len().clamp(1, 50) as f64;
    let last = ldm_log.last_loss(50).unwrap_or(f64::NAN);
    let visuals = visuals_section(&run, device)?;
    Ok(format!(
        "## Model (`{config}`)\n\nTrained in {train_secs:.0} s this time (both stages; a finished run is reused). \
         Command: `dydis train --config {config} --out {dirname} --resume`.\n\n```\n{summary}\n```\n\n\
         Diffusion loss: mean of the first 50 steps {first:.4}, of the last 50 {last:.4}.\n\n\
         ![first stage loss](ae/loss.svg) ![diffusion loss](ldm/loss.svg)\n\n\
         ### Samples conditioned on the latent units of dataset images (top: the images)\n\n![samples](samples.png)\n\n\
         ### Latent interchange (source, target, then the source with unit i from the target)\n\n\
         ![interchange](interchange.png)\n\n\
         ### Interpolation of all units between two images\n\n![interpolation](interpolation.png)\n\n\
         ### Disentanglement metrics (`dydis eval {dirname} --preset quick`; files in eval/)\n{metrics}\n{visuals}",
        dirname = dir.root().display(),
        summary = ldm.summary().to_text(),
    ))
}

/// The visual tools on the trained run: attention maps, latent-unit projections and, with DyGA, the anchor plots
/// and generation from anchor regions. Returns the report's Markdown section.
fn visuals_section(run: &Run, device: Device) -> Result<String> {
    let (ldm, ds, dir) = (run.ldm()?, run.images.as_ref(), &run.dir);
    let ddim = run.config().sample.ddim();
    let idx = generate::pick(ds, 3, 0);
    let maps = viz::attention_maps(ldm, &ds.images(&idx, device)?, &AttentionOptions { ddim, ..Default::default() })?;
    maps.save(&dir.file("attention.png"), &idx)?;
    let idx = generate::pick(ds, 1000, 0);
    let units = ldm.collect_units(ds, &idx, 256)?;
    viz::project_units(&units, &idx, run.factors()?, ldm.anchors.as_ref())?.save(
        &dir.file("projections.svg"),
        idx.len(),
        0,
    )?;
    let name = dir.root().display();
    let mut md = format!(
        "### Attention maps per latent unit (Fig. 4; `dydis attention {name}`)\n\nColumns: the image, its DDIM \
         sample, then where the U-Net's cross-attention reads each unit (averaged over layers, heads and steps; \
         yellow = most attended).\n\n![attention](attention.png)\n\n\
         ### Latent units projected (Fig. 1, 11; `dydis project {name}`)\n\nPCA of each unit's features over 1,000 \
         images, coloured by the factor it shares the most information with (NMI); red crosses: DyGA anchors.\n\n\
         ![projections](projections.svg)\n\n"
    );
    let Some(anchors) = &ldm.anchors else {
        md.push_str("DyGA is off in this run (or has not refit yet), so there are no anchor plots.\n");
        return Ok(md);
    };
    let plots = viz::anchor_plots(anchors, &RefitRecord::read_log(&dir.anchors_log("ldm"))?)?;
    plots.save(&dir.anchor_plots_dir())?;
    let image = generate::pick(ds, 1, 0)[0];
    let opts = AnchorSamplesOptions { per_anchor: 6, max_anchors: 8, ddim, seed: 0 };
    let samples = viz::anchor_samples(ldm, anchors, &ds.images(&[image], device)?, 0, &opts)?;
    samples.figure()?.save_png(dir.file("anchor-samples-unit0.png"))?;
    md.push_str(&format!(
        "### DyGA anchors (`dydis anchors {name}`)\n\n```\n{table}\n```\n\n\
         ![K over refits](anchors/k-over-refits.svg) ![splits and filters](anchors/splits-filters.svg)\n\n\
         ![log-likelihood](anchors/log-likelihood.svg) ![weights](anchors/weights.svg) ![sizes](anchors/sizes.svg)\n\n\
         ### Generation from anchor regions (Fig. 1b; `dydis anchor-samples {name} --unit 0`)\n\nUnit 0 of one \
         image drawn from each anchor's Gaussian (one row per anchor, heaviest first), everything else fixed.\n\n\
         ![anchor samples](anchor-samples-unit0.png)\n",
        table = plots.table.to_text().trim_end()
    ));
    Ok(md)
}
