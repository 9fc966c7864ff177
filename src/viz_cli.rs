//! Commands of the visual tools: `dydis attention | anchor-samples | project | anchors`. Each loads a checkpoint,
//! calls the dydis-core `viz` function a notebook calls (same defaults, same seeded image choice) and writes the
//! figure next to the run (or to --out) with a JSON summary.
use crate::model_cli::{load_for_generation, load_model, save, GenArgs};
use anyhow::{bail, Result};
use dydis_core::display::{write_atomic, Show};
use dydis_core::generate;
use dydis_core::viz::{self, AnchorSamplesOptions, AttentionOptions, RefitRecord};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// The images the attention command looks at: the given indices, else `n` seeded random ones.
pub fn attention(
    a: &GenArgs,
    images: &[usize],
    n: usize,
    layers: &[usize],
    heads: &[i64],
    steps: &[usize],
    device: Device,
) -> Result<i32> {
    let l = load_for_generation(a, device)?;
    let idx = if images.is_empty() { generate::pick(l.ds.as_ref(), n, a.seed) } else { images.to_vec() };
    let opts = AttentionOptions {
        ddim: l.ddim,
        layers: (!layers.is_empty()).then(|| layers.to_vec()),
        heads: (!heads.is_empty()).then(|| heads.to_vec()),
        steps: (!steps.is_empty()).then(|| steps.to_vec()),
        seed: a.seed,
        ..Default::default()
    };
    let t = Instant::now();
    let maps = viz::attention_maps(&l.ldm, &l.ds.images(&idx, device)?, &opts)?;
    println!("attention maps of {} image(s) in {:.1} s", idx.len(), t.elapsed().as_secs_f64());
    println!("{}", maps.to_text());
    let path = a.out.clone().unwrap_or_else(|| l.run_dir.join("attention.png"));
    save(&maps.figure()?, &None, path.clone())?;
    let mut json = maps.summary_json();
    json["images"] = serde_json::json!(idx);
    write_atomic(&path.with_extension("json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(0)
}

/// Generation from each anchor region of one unit (Fig. 1b).
pub fn anchor_samples(
    a: &GenArgs,
    image: Option<usize>,
    unit: usize,
    per_anchor: usize,
    max_anchors: usize,
    device: Device,
) -> Result<i32> {
    let l = load_for_generation(a, device)?;
    let Some(anchors) = &l.ldm.anchors else {
        bail!("{} has no DyGA anchors (train with dyga.enabled = true; anchors are fitted after every dyga.refit_every-th epoch)", a.checkpoint.display());
    };
    let idx = image.unwrap_or_else(|| generate::pick(l.ds.as_ref(), 1, a.seed)[0]);
    let opts = AnchorSamplesOptions { per_anchor, max_anchors, ddim: l.ddim, seed: a.seed };
    let s = viz::anchor_samples(&l.ldm, anchors, &l.ds.images(&[idx], device)?, unit, &opts)?;
    println!("{}", s.to_text());
    save(&s.figure()?, &a.out, l.run_dir.join(format!("anchor-samples-unit{unit}.png")))?;
    Ok(0)
}

/// Projections of every unit of `n` seeded random images.
pub fn project(
    checkpoint: &Path,
    data: Option<&str>,
    n: usize,
    seed: u64,
    out: Option<PathBuf>,
    device: Device,
) -> Result<i32> {
    let m = load_model(checkpoint, data, device)?;
    let space = dydis_core::data::open(&m.spec)?.factors().clone();
    let idx = generate::pick(m.ds.as_ref(), n, seed);
    let units = m.ldm.collect_units(m.ds.as_ref(), &idx, 256)?;
    let p = viz::project_units(&units, &idx, &space, m.ldm.anchors.as_ref())?;
    println!("{}", p.to_text());
    let path = out.unwrap_or_else(|| m.run_dir.join("projections.svg"));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    p.figure()?.save(&path)?;
    write_atomic(
        &path.with_extension("json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"images": idx.len(), "seed": seed, "table": p.table().to_json()}),
        )?
        .as_bytes(),
    )?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// The DyGA anchors of a checkpoint: table, plots of the latest anchors and of K / splits / filters /
/// log-likelihood over the refits logged in `<stage>/anchors.jsonl`.
pub fn anchors(checkpoint: &Path, out: Option<PathBuf>) -> Result<i32> {
    let ck = dydis_core::train::checkpoint::resolve(checkpoint)?;
    let ldm = dydis_core::model::Ldm::load(&ck, Device::Cpu)?;
    let stage = ck.parent().map(Path::to_path_buf).unwrap_or_default();
    let out =
        out.unwrap_or_else(|| stage.parent().map(|p| p.join("anchors")).unwrap_or_else(|| PathBuf::from("anchors")));
    let Some(a) = &ldm.anchors else {
        bail!("{} has no DyGA anchors (DyGA off, or no refit yet: anchors are fitted after every dyga.refit_every-th epoch)", ck.display());
    };
    let history = RefitRecord::read_log(&stage.join("anchors.jsonl"))?;
    let plots = viz::anchor_plots(a, &history)?;
    println!("{}", plots.table.to_text());
    for f in plots.save(&out)? {
        println!("wrote {}", f.display());
    }
    Ok(0)
}
