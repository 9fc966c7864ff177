//! `dydis navigate`: CL-Dis's self-supervised navigation on a finished run, then its report (the predictor's
//! accuracy per direction, the label-free content-tracking score, the directions as traversals, the loop's
//! feedback curve).
use anyhow::{Context, Result};
use clap::Args;
use dydis_core::method::cldis::{train_navigation, ClDis};
use dydis_core::run::{checkpoint, RunDir};
use dydis_core::train::History;
use dydis_core::viz::cldis as viz;
use std::path::PathBuf;
use tch::Device;

#[derive(Args)]
pub struct NavigateArgs {
    /// A CL-Dis run folder whose closed loop is finished.
    pub run: PathBuf,
    /// Override a navigation setting, e.g. --set cldis.navigation.steps=500.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Continue the newest navigation checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many more steps (continue later with --resume).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Fresh pairs per direction that score the predictor.
    #[arg(long, default_value_t = 64)]
    pub pairs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Train the navigation (exit 130 when interrupted), then write `nav/report.json`, `nav/directions.png` and
/// `feedback.svg` in the run folder.
pub fn navigate(a: &NavigateArgs, device: Device) -> Result<i32> {
    let dir = RunDir::new(&a.run);
    let outcome = train_navigation(&dir, &a.set, device, a.resume, a.steps)?;
    if outcome.outcome.interrupted {
        return Ok(130);
    }
    let ck_path = outcome.outcome.checkpoint.context("the navigation wrote no checkpoint")?;
    let model = ClDis::from_checkpoint(&checkpoint::load(&ck_path)?, device)?;
    let c = model.cfg();
    let images = dydis_core::data::open_images(&model.config.data, c.image_size as usize)?;
    let report = viz::navigation_report(&model, images.as_ref(), a.pairs, a.seed)?;
    println!("{}", dydis_core::display::Show::to_text(&report));
    let nav = dir.stage(ClDis::NAV_STAGE);
    let json = nav.join("report.json");
    dydis_core::fs::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    let first = viz::pick(images.as_ref(), 1, a.seed);
    let x = images.images(&first, device)?;
    let png = nav.join("directions.png");
    viz::directions_figure(&model, &x, &report.ranking, 7)?.save_png(&png)?;
    let svg = dir.file("feedback.svg");
    viz::feedback_plot(&History::read(&dir.log(ClDis::STAGES[2]))?)?.save(&svg)?;
    println!("wrote {}, {} and {}", json.display(), png.display(), svg.display());
    Ok(0)
}

#[derive(Args)]
pub struct GroundTruthArgs {
    /// A dataset with a factor grid (its renderer is the generator).
    #[arg(long, default_value = "shapes3d-like:quick")]
    pub data: String,
    /// Image size the grid is read at.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Base images N and frames M per traversal.
    #[arg(long, default_value_t = 20)]
    pub images: usize,
    #[arg(long, default_value_t = 5)]
    pub frames: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The content-tracking score beside FactorVAE and DCI on a factor grid's own renderer: directions that move one
/// factor against directions that move two.
pub fn ground_truth(a: &GroundTruthArgs) -> Result<i32> {
    let source = dydis_core::data::open_images(&a.data, a.size)?;
    let mut ct = dydis_core::cldis::ContentTrackingConfig::default();
    (ct.images, ct.frames) = (a.images, a.frames);
    let mut ecfg = dydis_core::eval::EvalConfig::quick();
    ecfg.metrics = vec!["factorvae".into(), "dci".into()];
    ecfg.seed = a.seed;
    let opts = dydis_core::eval::ModelEval {
        config: ecfg,
        units: dydis_core::eval::Units::Raw,
        batch: 256,
        fid: None,
        source: a.data.clone(),
        spec: a.data.clone(),
    };
    let r = viz::ground_truth_check(source.as_ref(), &ct, &opts, a.seed)?;
    println!("{}", dydis_core::display::Show::to_text(&r));
    if let Some(out) = &a.out {
        dydis_core::fs::write_atomic(out, serde_json::to_string_pretty(&r)?.as_bytes())?;
        println!("wrote {}", out.display());
    }
    Ok(0)
}
