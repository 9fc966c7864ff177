//! Running notebooks headlessly with the `dydis` kernel and deciding whether they really succeeded.
//!
//! `jupyter execute` exits 0 after a `panic!` or an `Err` returned with `?` in an evcxr cell, so the executed
//! notebook is scanned as well: any error output, any panic or error text in a cell's output, and any code cell
//! left unexecuted count as failures, as does a non-zero exit (a compile error, a timeout, `process::exit(1)`).
use crate::install::{Layout, KERNEL_NAME};
use crate::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The outcome of one headless notebook run.
#[derive(Debug, Clone)]
pub struct NotebookReport {
    pub notebook: PathBuf,
    /// The executed copy, with outputs, for inspection.
    pub executed: PathBuf,
    pub exit_code: Option<i32>,
    pub problems: Vec<String>,
    pub duration: Duration,
    /// The tail of `jupyter execute`'s own output.
    pub log_tail: String,
}

impl NotebookReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Markers that mean a cell failed even though the kernel reported success.
const FAILURE_MARKERS: [&str; 4] = ["panicked at", "Error: ", "error[E", "Child process terminated"];

fn cell_text(output: &Value) -> String {
    let join = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    let mut t = join(&output["text"]);
    t.push_str(&join(&output["data"]["text/plain"]));
    t
}

/// Failures recorded in an executed notebook (as JSON).
pub fn scan_executed(nb: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let cells = nb["cells"].as_array().cloned().unwrap_or_default();
    for (i, cell) in cells.iter().enumerate().filter(|(_, c)| c["cell_type"] == "code") {
        let n = i + 1;
        if cell["execution_count"].is_null() && !cell["source"].as_array().is_some_and(|s| s.is_empty()) {
            problems.push(format!("cell {n}: not executed (an earlier cell stopped the run)"));
        }
        for out in cell["outputs"].as_array().into_iter().flatten() {
            if out["output_type"] == "error" {
                let msg = format!("{}: {}", out["ename"].as_str().unwrap_or("error"), out["evalue"].as_str().unwrap_or(""));
                problems.push(format!("cell {n}: error output: {}", msg.trim()));
                continue;
            }
            let text = cell_text(out);
            if let Some(marker) = FAILURE_MARKERS.iter().find(|m| text.contains(*m)) {
                let line = text.lines().find(|l| l.contains(marker)).unwrap_or("").trim();
                problems.push(format!("cell {n}: '{marker}' in output: {line}"));
            }
        }
    }
    problems
}

/// Code cells of a notebook file that carry stored outputs or execution counts (notebooks are committed clean).
pub fn stored_outputs(path: &Path) -> Result<Vec<usize>> {
    let nb = read_notebook(path)?;
    Ok(nb["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c["cell_type"] == "code")
        .filter(|(_, c)| c["outputs"].as_array().is_some_and(|o| !o.is_empty()) || !c["execution_count"].is_null())
        .map(|(i, _)| i + 1)
        .collect())
}

pub fn read_notebook(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let nb: Value = serde_json::from_str(&text)
        .map_err(|e| Error::BadNotebook { path: path.to_path_buf(), message: e.to_string() })?;
    if !nb["cells"].is_array() {
        return Err(Error::BadNotebook { path: path.to_path_buf(), message: "no \"cells\" array".into() });
    }
    Ok(nb)
}

/// Execute `notebook` with the `dydis` kernel, write the executed copy into `out_dir`, and report every failure.
///
/// `timeout` limits each cell and also the kernel's start: the kernel builds dydis-core (`:dep` in init.evcxr)
/// before it answers, which takes minutes the first time on a machine and seconds afterwards.
pub fn execute_notebook(layout: &Layout, notebook: &Path, out_dir: &Path, timeout: Duration) -> Result<NotebookReport> {
    let jupyter = layout.jupyter();
    if !jupyter.exists() {
        return Err(Error::Missing { what: "jupyter (nbclient)".into(), path: jupyter, fix: "run scripts/setup.sh first".into() });
    }
    read_notebook(notebook)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let name = notebook.file_name().expect("notebook file name");
    let executed = out_dir.canonicalize().map_err(|e| Error::io(out_dir, e))?.join(name);
    let _ = std::fs::remove_file(&executed);
    let nb_dir = notebook.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let start = Instant::now();
    let out = std::process::Command::new(&jupyter)
        .arg("execute")
        .arg(format!("--kernel_name={KERNEL_NAME}"))
        .arg(format!("--timeout={}", timeout.as_secs().max(1)))
        .arg(format!("--startup_timeout={}", timeout.as_secs().max(1)))
        // nbclient appends ".ipynb" to this base name.
        .arg(format!("--output={}", executed.with_extension("").display()))
        .arg(name)
        .current_dir(nb_dir)
        .output()
        .map_err(|e| Error::io(&jupyter, e))?;
    let duration = start.elapsed();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log_tail: String = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    let mut problems = Vec::new();
    if !out.status.success() {
        problems.push(format!("jupyter execute exited with {}", out.status));
    }
    match read_notebook(&executed) {
        Ok(nb) => problems.extend(scan_executed(&nb)),
        Err(e) => problems.push(format!("no executed notebook was written: {e}")),
    }
    Ok(NotebookReport { notebook: notebook.to_path_buf(), executed, exit_code: out.status.code(), problems, duration, log_tail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(count: Value, outputs: Value) -> Value {
        json!({"cell_type": "code", "execution_count": count, "source": ["1"], "outputs": outputs, "metadata": {}})
    }

    #[test]
    fn clean_run_has_no_problems() {
        let nb = json!({"cells": [
            {"cell_type": "markdown", "source": ["# hi"], "metadata": {}},
            code(json!(1), json!([{"output_type": "stream", "name": "stdout", "text": ["ok\n"]}])),
            code(json!(2), json!([{"output_type": "execute_result", "data": {"text/plain": "3"}, "metadata": {}, "execution_count": 2}])),
        ]});
        assert!(scan_executed(&nb).is_empty());
    }

    #[test]
    fn panics_errors_and_skipped_cells_are_found() {
        let nb = json!({"cells": [
            code(json!(1), json!([{"output_type": "stream", "name": "stderr", "text": ["thread '<unnamed>' panicked at src/lib.rs:3:1:\n", "boom\n"]}])),
            code(json!(2), json!([{"output_type": "error", "ename": "Error", "evalue": "cannot find value `x`", "traceback": []}])),
            code(json!(3), json!([{"output_type": "stream", "name": "stderr", "text": "Error: file missing\n"}])),
            code(Value::Null, json!([])),
        ]});
        let p = scan_executed(&nb);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("cell 1") && p[0].contains("panicked at"));
        assert!(p[1].contains("cannot find value"));
        assert!(p[2].contains("file missing"));
        assert!(p[3].contains("not executed"));
    }
}
