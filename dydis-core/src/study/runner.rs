//! Running a study: every cell trained (its earlier stages shared between cells that would train them the same
//! way) and evaluated at each budget, each result written as soon as it exists, so that an interrupted study
//! continues where it stopped and a failed cell is recorded without stopping the others.
//!
//! Layout under the studies folder (`runs/studies` by default):
//! - `cells/<hash>/`: one run per distinct configuration (the hash of its TOML without the name), shared by every
//!   study that has that cell; `cells/<hash>/evals/<eval hash>-steps-<N>/` holds an evaluation's report and its
//!   `record.json`.
//! - `stages/<stage>-<hash>/`: finished earlier stages (the LDM's first stage), copied into each cell that needs one.
//! - `<study>/`: `study.toml`, `results.json`, `results.csv`, `summary.md`, `plots/`, and `runs/<arm>-s<seed>`
//!   links to the cells.
use super::results::{CellRecord, StudyResults};
use super::spec::{Cell, StudySpec};
use crate::eval::{evaluate_model_into, EvalConfig, ModelEval, Units};
use crate::method::{self, Method, TrainOptions};
use crate::run::{Run, RunConfig, RunDir};
use crate::{Error, Result};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// How [`run_study`] runs.
#[derive(Debug, Clone)]
pub struct StudyOptions {
    /// The studies folder (`runs/studies`).
    pub root: PathBuf,
    pub device: Device,
    /// The source revision, recorded with every cell ([`source_commit`]).
    pub commit: String,
    /// Stop after this many evaluations in this invocation (as a Ctrl-C between cells would); rerun to continue.
    pub max_cells: Option<usize>,
    /// Only these arms (default: all).
    pub only_arms: Option<Vec<String>>,
}

/// How a study invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every cell has a record (finished or failed).
    Complete,
    /// Ctrl-C: the cell in training saved a checkpoint; rerun to continue.
    Interrupted,
    /// `max_cells` were done; rerun to continue.
    Paused,
}

/// The study's folder under the studies folder.
pub fn study_dir(root: &Path, spec: &StudySpec) -> PathBuf {
    root.join(&spec.name)
}

/// The run folder of a cell: named by its configuration's hash, so studies with the same cell share it.
pub fn cell_dir(root: &Path, cell: &Cell) -> PathBuf {
    root.join("cells").join(config_hash(&cell.config))
}

/// The hash of a run configuration without its name and its final stage's length (12 hex digits of SHA-256 over
/// its TOML): the weights at step k do not depend on how long the run is configured to go on (constant learning
/// rates, no schedule over the total), so a cell trained further for one study serves the shorter budgets of
/// another.
pub fn config_hash(config: &RunConfig) -> String {
    let mut value = toml::Value::try_from(config).expect("a config always serialises");
    let root = value.as_table_mut().expect("a config is a table");
    root.remove("name");
    let path: Vec<&str> = method::method(config.method).length_key().split('.').collect();
    let (last, parents) = path.split_last().expect("a length key is not empty");
    let mut table = Some(root);
    for p in parents {
        table = table.and_then(|t| t.get_mut(*p)).and_then(toml::Value::as_table_mut);
    }
    if let Some(t) = table {
        t.remove(*last);
    }
    hex12(toml::to_string(&value).expect("a TOML value serialises").as_bytes())
}

fn hex12(bytes: &[u8]) -> String {
    let d = sha2::Sha256::digest(bytes);
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The folder of one evaluation of a cell at `steps` (its key hashes the evaluation's settings).
pub fn eval_dir(root: &Path, cell: &Cell, eval: &EvalConfig, units: Units, steps: usize) -> PathBuf {
    let key =
        hex12(format!("{}|{units:?}", serde_json::to_string(eval).expect("an eval config serialises")).as_bytes());
    cell_dir(root, cell).join("evals").join(format!("{key}-steps-{steps}"))
}

/// `git describe`-like revision of the checkout at `repo` (the commit, `-dirty` with uncommitted changes), or a
/// sentence saying why there is none; recorded, never guessed.
pub fn source_commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if s.is_empty() => head,
            Some(_) => format!("{head}-dirty"),
            None => format!("{head} (status unknown)"),
        },
        None => format!("unknown: {} is not a git checkout", repo.display()),
    }
}

/// Run (or continue) a study: every cell's missing evaluations, in order; then its results are collected and
/// written. Returns the results and how the invocation ended.
pub fn run_study(spec: &StudySpec, opts: &StudyOptions) -> Result<(StudyResults, Ending)> {
    spec.validate()?;
    if let Some(only) = &opts.only_arms {
        if let Some(a) = only.iter().find(|a| !spec.arms.iter().any(|b| &&b.name == a)) {
            return Err(Error::config("arms", format!("'{a}' is not an arm of study {}", spec.name)));
        }
    }
    let dir = study_dir(&opts.root, spec);
    let toml = toml::to_string_pretty(spec).map_err(|e| Error::failed("writing the study file", e.to_string()))?;
    crate::fs::write_atomic(&dir.join("study.toml"), toml.as_bytes())?;
    let (eval, units) = (spec.eval.config()?, spec.eval.units()?);
    let mut done = 0;
    let mut ending = Ending::Complete;
    'cells: for cell in spec.cells()? {
        if opts.only_arms.as_ref().is_some_and(|o| !o.contains(&cell.arm)) {
            continue;
        }
        link_cell(&dir, &cell)?;
        for &steps in &cell.budgets {
            let out = eval_dir(&opts.root, &cell, &eval, units, steps);
            if CellRecord::read(&out)?.is_some_and(|r| r.ok()) {
                continue;
            }
            if opts.max_cells.is_some_and(|m| done >= m) {
                ending = Ending::Paused;
                break 'cells;
            }
            println!("study {}: {} seed {} on {} to {steps} steps", spec.name, cell.arm, cell.seed, cell.dataset);
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                evaluate_cell(&cell, steps, &Context { root: &opts.root, eval: &eval, units, spec, opts }, &out)
            }));
            done += 1;
            let failure = match attempt {
                Ok(Ok(Some(record))) => {
                    record.write(&out)?;
                    None
                }
                Ok(Ok(None)) => {
                    ending = Ending::Interrupted;
                    break 'cells;
                }
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(panic) => Some(panic_message(panic)),
            };
            if let Some(error) = failure {
                println!("study {}: {} seed {} failed: {error}", spec.name, cell.arm, cell.seed);
                CellRecord::failed(&cell, steps, &opts.root, &opts.commit, opts.device, error).write(&out)?;
                // Later budgets continue the same training: they would fail the same way.
                break;
            }
            if crate::train::interrupted_now() {
                crate::train::clear_interrupt();
                ending = Ending::Interrupted;
                break 'cells;
            }
        }
    }
    let results = StudyResults::collect(spec, &opts.root)?;
    results.write(&dir)?;
    Ok((results, ending))
}

struct Context<'a> {
    root: &'a Path,
    eval: &'a EvalConfig,
    units: Units,
    spec: &'a StudySpec,
    opts: &'a StudyOptions,
}

/// Train a cell to `steps` (its earlier stages first) and evaluate it there. `None`: interrupted.
fn evaluate_cell(cell: &Cell, steps: usize, cx: &Context, out: &Path) -> Result<Option<CellRecord>> {
    let mut config = cell.config.clone();
    config.name = format!("cell-{}", config_hash(&config));
    let dir = RunDir::new(cell_dir(cx.root, cell));
    let m = method::method(config.method);
    let stages = m.stages(&config);
    let (last, earlier) = stages.split_last().expect("a method has at least one stage");
    let mut first_stage_seconds = 0.0;
    for stage in earlier {
        if !ensure_stage(m, stage, &config, &dir, cx)? {
            return Ok(None);
        }
        let (_, ck) = dir.newest(stage)?.ok_or_else(|| Error::failed("the study", format!("no {stage} checkpoint")))?;
        first_stage_seconds += elapsed_seconds(&ck)?;
    }
    // The stage's own step counter at this budget (FactorVAE counts updates).
    let at = m.stage_step_at(&config, steps);
    let current = dir.newest(last)?.map(|c| c.0).unwrap_or(0);
    if current < at {
        let opts = TrainOptions { resume: true, max_steps: Some(at - current), only_stage: None };
        if method::train(&config, &dir, cx.opts.device, &opts)?.iter().any(|o| o.outcome.interrupted) {
            return Ok(None);
        }
    }
    let ck = dir.checkpoints(last)?.into_iter().find(|(s, _)| *s == at).map(|c| c.1).ok_or_else(|| {
        Error::failed(
            format!("evaluating {} at {steps} steps", dir.root().display()),
            format!(
                "the run has no checkpoint at step {at} any more (it is at step {current}; raise the \
                 configuration's keep_last, or remove the cell's folder to train it again)"
            ),
        )
    })?;
    let train_seconds = elapsed_seconds(&ck)?;
    let t = Instant::now();
    let run = Run::open(&ck, cx.opts.device)?;
    let opts = ModelEval {
        config: cx.eval.clone(),
        units: cx.units,
        batch: cx.spec.eval.batch,
        fid: None,
        source: ck.display().to_string(),
        spec: run.data.clone(),
    };
    let report = evaluate_model_into(run.model.as_ref(), run.images.as_ref(), &opts, out)?;
    let mut record = CellRecord::from_report(cell, steps, &report, cx.root, &cx.opts.commit, cx.opts.device);
    record.train_seconds = Some(train_seconds);
    record.first_stage_seconds = (!earlier.is_empty()).then_some(first_stage_seconds);
    record.eval_seconds = Some(t.elapsed().as_secs_f64());
    Ok(Some(record))
}

/// Make sure the cell has a finished earlier `stage`: its own, a shared copy, or trained now (and then shared).
/// `false`: interrupted.
fn ensure_stage(m: &dyn Method, stage: &str, config: &RunConfig, dir: &RunDir, cx: &Context) -> Result<bool> {
    let steps = m.stage_steps(config, stage)?;
    let finished = |d: &RunDir| -> Result<bool> { Ok(d.newest(stage)?.is_some_and(|(s, _)| s >= steps)) };
    let shared = m.stage_inputs(config, stage).map(|inputs| {
        RunDir::new(cx.root.join("stages").join(format!("{stage}-{}", hex12(inputs.to_string().as_bytes()))))
    });
    if !finished(dir)? {
        match &shared {
            Some(s) if finished(s)? => {
                let own = dir.stage(stage);
                if own.exists() {
                    std::fs::remove_dir_all(&own).map_err(|e| Error::io(&own, e))?;
                }
                crate::fs::copy_tree(&s.stage(stage), &own)?;
                println!("{stage}: the finished stage of {} is shared with this cell", s.root().display());
            }
            _ => {
                let opts = TrainOptions { resume: true, max_steps: None, only_stage: Some(stage.to_string()) };
                if method::train(config, dir, cx.opts.device, &opts)?.iter().any(|o| o.outcome.interrupted) {
                    return Ok(false);
                }
            }
        }
    }
    if let Some(s) = &shared {
        if !s.stage(stage).exists() {
            crate::fs::copy_tree(&dir.stage(stage), &s.stage(stage))?;
        }
    }
    Ok(true)
}

/// The training seconds a checkpoint's metadata records (summed over every invocation that trained it).
fn elapsed_seconds(checkpoint: &Path) -> Result<f64> {
    let path = checkpoint.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::json(path.display().to_string(), e))?;
    v.get("elapsed_s")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| Error::File { path, message: "has no elapsed_s".into() })
}

/// `<study>/runs/<arm>-s<seed>[-<dataset>]` pointing at the cell's run folder, for browsing.
fn link_cell(study: &Path, cell: &Cell) -> Result<()> {
    let runs = study.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
    let link = runs.join(crate::fs::file_safe(&format!("{}-s{}-{}", cell.arm, cell.seed, cell.dataset)));
    let target = Path::new("../..").join("cells").join(config_hash(&cell.config));
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).map_err(|e| Error::io(&link, e))
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into());
    format!("panicked: {text}")
}
