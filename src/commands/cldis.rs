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
