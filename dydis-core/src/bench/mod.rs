//! Every benchmark, in one place: each measures dydis against a reference run in the same invocation (the
//! released implementation, PyTorch eager, or one thread against many) and returns its results as JSON, which
//! `dydis bench <what>` writes. Ratios, never absolute times, are what the docs compare.
pub mod anchors;
pub mod data;
pub mod eval;
pub mod train_step;
pub mod vae_step;

use crate::fs::write_atomic;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::Device;

/// What a training-step benchmark times (`train_step`, `vae_step`).
#[derive(Debug, Clone)]
pub struct StepOptions {
    /// Preset names or TOML files.
    pub presets: Vec<String>,
    pub warmup: usize,
    pub steps: usize,
    pub device: Device,
    /// The PyTorch reference (None: dydis only).
    pub reference: Option<Reference>,
    /// Where the reference's configuration and result files go.
    pub work_dir: PathBuf,
}

impl StepOptions {
    /// The reference scripts' timing flags: `--steps`, `--warmup`, `--threads` as this run uses them.
    pub fn timing_args(&self, threads: i32) -> Vec<String> {
        ["--steps", &self.steps.to_string(), "--warmup", &self.warmup.to_string(), "--threads", &threads.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// A reference implementation run as a separate process: a Python interpreter (the set-up's venv) and the
/// folder holding the reference scripts (`bench/` at the top of the repository).
#[derive(Debug, Clone)]
pub struct Reference {
    pub python: PathBuf,
    pub scripts: PathBuf,
}

impl Reference {
    /// Run `script` with `args`; its JSON result is read from `out`.
    fn run(&self, script: &str, args: &[String], out: &Path, quiet: bool) -> Result<serde_json::Value> {
        let path = self.scripts.join(script);
        let mut cmd = std::process::Command::new(&self.python);
        cmd.arg(&path).args(args).env("PYTHONWARNINGS", "ignore");
        if quiet {
            cmd.stdout(std::process::Stdio::null());
        }
        let status = cmd.status().map_err(|e| Error::io(&self.python, e))?;
        if !status.success() {
            return Err(Error::failed(format!("the reference script {}", path.display()), status.to_string()));
        }
        let text = std::fs::read(out).map_err(|e| Error::io(out, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::json(out.display().to_string(), e))
    }
}

/// Write a benchmark's JSON atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::json("the benchmark results", e))?;
    write_atomic(path, text.as_bytes())
}

/// Mean, median and minimum of a list of timings.
fn stats(v: &[f64]) -> serde_json::Value {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
    serde_json::json!({
        "mean": mean,
        "median": s.get(s.len() / 2).copied().unwrap_or(f64::NAN),
        "min": s.first().copied().unwrap_or(f64::NAN),
    })
}

/// Peak resident memory of this process.
fn peak_rss_bytes() -> Option<i64> {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0).then_some(ru.ru_maxrss * 1024)
}
