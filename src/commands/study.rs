//! `dydis study`: train and evaluate every cell of a study (skipping finished ones, continuing an interrupted
//! one), then write its results table, statistics and interval plots.
use anyhow::Result;
use clap::Args;
use dydis_core::display::Show;
use dydis_core::study::{self, Ending, StudyOptions, StudyResults, StudySpec};
use std::path::{Path, PathBuf};
use tch::Device;

#[derive(Args)]
pub struct StudyArgs {
    /// A study file, or the name of a shipped one in studies/ (table4-cpu, table1-cpu, table5-cpu, ...).
    pub study: String,
    /// The studies folder: the study's results go to <root>/<name>/, runs to <root>/cells/ (shared by every study
    /// there, so a cell two studies have in common is trained once).
    #[arg(long, default_value = "runs/studies")]
    pub root: PathBuf,
    /// Stop after this many evaluations (rerun to continue).
    #[arg(long)]
    pub max_cells: Option<usize>,
    /// Only these arms (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub arms: Option<Vec<String>>,
    /// Train nothing: collect what is recorded and write the results.
    #[arg(long)]
    pub report: bool,
}

/// A study file, or a shipped study's name (`studies/<name>.toml`); an error listing the shipped ones otherwise.
fn spec_path(name: &str) -> Result<PathBuf> {
    let dir = crate::common::repo().join("studies");
    let shipped = dir.join(format!("{name}.toml"));
    if Path::new(name).exists() {
        return Ok(PathBuf::from(name));
    }
    if shipped.exists() {
        return Ok(shipped);
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    names.sort();
    anyhow::bail!("'{name}' is neither a study file nor a shipped study ({})", names.join(", "))
}

/// Run (or only summarise) a study. Exit code 130 when interrupted, 1 when a cell failed.
pub fn run(a: &StudyArgs, device: Device) -> Result<i32> {
    let spec = StudySpec::load(&spec_path(&a.study)?)?;
    let dir = study::study_dir(&a.root, &spec);
    let (results, ending) = if a.report {
        let r = StudyResults::collect(&spec, &a.root)?;
        r.write(&dir)?;
        (r, Ending::Complete)
    } else {
        let opts = StudyOptions {
            root: a.root.clone(),
            device,
            commit: study::source_commit(crate::common::repo()),
            max_cells: a.max_cells,
            only_arms: a.arms.clone(),
        };
        study::run_study(&spec, &opts)?
    };
    println!("{}", results.overview().to_text());
    println!("wrote {}/results.json, results.csv, summary.md, plots/", dir.display());
    let failed = results.records.iter().filter(|r| !r.ok()).count();
    Ok(match ending {
        Ending::Interrupted => {
            println!("interrupted: run the same command again to continue");
            130
        }
        Ending::Paused => {
            println!("{} cells pending: run the same command again to continue", results.pending.len());
            0
        }
        Ending::Complete if failed > 0 => {
            println!("{failed} cells failed (their errors are above and in results.csv); rerun to retry them");
            1
        }
        Ending::Complete => 0,
    })
}
