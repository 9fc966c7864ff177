//! Running notebooks headlessly with the `dydis` kernel and deciding whether they really succeeded.
//!
//! `jupyter execute` exits 0 after a `panic!` or an `Err` returned with `?` in an evcxr cell, so the executed
//! notebook is scanned as well: any error output, any panic or error text in a cell's output, and any code cell
//! left unexecuted count as failures, as does a non-zero exit (a compile error, a timeout, `process::exit(1)`).
//!
//! evcxr forwards a cell's output lines asynchronously, stamped with the *latest* execution request, so text
//! printed at the end of a cell (such as the message of an `Err` returned with `?`) can arrive after the cell
//! reported idle, where `jupyter execute` drops it. The runner (nbclient, driven by a small script) keeps
//! listening for half a second after each cell and attaches what arrives, and it appends a sentinel cell that
//! prints [`SENTINEL_MARK`]: anything later still lands there, and a missing mark means the notebook did not
//! run to its end.
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
    /// The tail of the notebook client's own output.
    pub log_tail: String,
}

impl NotebookReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Printed by the sentinel cell appended to every run.
pub const SENTINEL_MARK: &str = "dydis-notebook-complete";
/// Tag of the sentinel cell in the executed copy.
pub const SENTINEL_TAG: &str = "dydis-sentinel";

/// Runs one notebook with nbclient: argv = input, output, working directory, timeout (s), kernel name.
/// The executed copy is written even when execution stops early, for inspection.
const DRIVER: &str = r#"
import sys, time, queue, nbformat
from nbclient import NotebookClient
from nbclient.util import ensure_async
from nbformat.v4 import output_from_msg
src, out, cwd, timeout, kernel, mark, tag = sys.argv[1:8]
LATE = 0.5  # seconds to keep listening after a cell went idle

class Client(NotebookClient):
    # evcxr forwards output lines asynchronously and may send them after the cell's idle status; nbclient drops
    # those, so an Err message from `?` can vanish. Keep listening briefly and attach them to the cell.
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        deadline = time.monotonic() + LATE
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.get_iopub_msg(timeout=left))
            except queue.Empty:
                break
            if msg["msg_type"] in ("stream", "error", "display_data", "execute_result"):
                cell.outputs.append(output_from_msg(msg))
        return cell

nb = nbformat.read(src, as_version=4)
cell = nbformat.v4.new_code_cell("std::thread::sleep(std::time::Duration::from_millis(300));\nprintln!(\"" + mark + "\");")
cell.metadata["tags"] = [tag]
nb.cells.append(cell)
client = Client(nb, timeout=int(timeout), startup_timeout=int(timeout), kernel_name=kernel,
                resources={"metadata": {"path": cwd}})
try:
    client.execute()
finally:
    nbformat.write(nb, out)
"#;

/// Cell tag that permits output on stderr (for example a library warning a notebook demonstrates on purpose).
pub const ALLOW_STDERR_TAG: &str = "allow-stderr";

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

/// Failures recorded in an executed notebook (as JSON), at most one per cell output:
/// - an `error` output (compile errors, kernel errors);
/// - `panicked at` anywhere in the output;
/// - anything written to stderr, unless the cell is tagged `allow-stderr`: evcxr reports an `Err` returned
///   with `?` only as stderr text, with no marker of its own;
/// - a code cell that was never executed.
pub fn scan_executed(nb: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let cells = nb["cells"].as_array().cloned().unwrap_or_default();
    for (i, cell) in cells.iter().enumerate().filter(|(_, c)| c["cell_type"] == "code") {
        let n = i + 1;
        let has_tag =
            |tag: &str| cell["metadata"]["tags"].as_array().is_some_and(|t| t.iter().any(|t| t.as_str() == Some(tag)));
        let source_empty = match &cell["source"] {
            Value::String(s) => s.trim().is_empty(),
            Value::Array(a) => a.iter().filter_map(Value::as_str).all(|l| l.trim().is_empty()),
            _ => true,
        };
        if cell["execution_count"].is_null() && !source_empty && !has_tag(SENTINEL_TAG) {
            problems.push(format!("cell {n}: not executed (an earlier cell stopped the run)"));
        }
        let allow_stderr = has_tag(ALLOW_STDERR_TAG);
        let sentinel = has_tag(SENTINEL_TAG);
        let n = if sentinel { "after the last cell".to_string() } else { format!("cell {n}") };
        if sentinel && !cell["outputs"].as_array().into_iter().flatten().any(|o| cell_text(o).contains(SENTINEL_MARK)) {
            problems.push("the notebook did not run to its end (the closing sentinel cell printed nothing)".into());
        }
        for out in cell["outputs"].as_array().into_iter().flatten() {
            let text = cell_text(out);
            let first_line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or("").trim().to_string();
            if out["output_type"] == "error" {
                let msg =
                    format!("{}: {}", out["ename"].as_str().unwrap_or("error"), out["evalue"].as_str().unwrap_or(""));
                problems.push(format!("{n}: error output: {}", msg.trim()));
            } else if text.contains("panicked at") {
                problems.push(format!("{n}: panic: {}", first_line("panicked at")));
            } else if out["name"] == "stderr" && !allow_stderr && !text.trim().is_empty() {
                problems.push(format!("{n}: wrote to stderr: {}", text.trim().lines().next().unwrap_or("")));
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
    let python = layout.venv().join("bin").join("python");
    if !layout.jupyter().exists() || !python.exists() {
        return Err(Error::Missing {
            what: "Jupyter (nbclient)".into(),
            path: layout.venv(),
            fix: "run scripts/setup.sh first".into(),
        });
    }
    read_notebook(notebook)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let name = notebook.file_name().expect("notebook file name");
    let executed = out_dir.canonicalize().map_err(|e| Error::io(out_dir, e))?.join(name);
    let _ = std::fs::remove_file(&executed);
    let nb_dir = notebook.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let nb_dir = nb_dir.canonicalize().map_err(|e| Error::io(nb_dir, e))?;
    let start = Instant::now();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(DRIVER)
        .arg(notebook)
        .arg(&executed)
        .arg(&nb_dir)
        .arg(timeout.as_secs().max(1).to_string())
        .arg(KERNEL_NAME)
        .arg(SENTINEL_MARK)
        .arg(SENTINEL_TAG)
        .output()
        .map_err(|e| Error::io(&python, e))?;
    let duration = start.elapsed();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log_tail: String =
        log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    let mut problems = Vec::new();
    if !out.status.success() {
        problems.push(format!("notebook execution stopped with {} (see the log below)", out.status));
    }
    match read_notebook(&executed) {
        Ok(nb) => problems.extend(scan_executed(&nb)),
        Err(e) => problems.push(format!("no executed notebook was written: {e}")),
    }
    Ok(NotebookReport {
        notebook: notebook.to_path_buf(),
        executed,
        exit_code: out.status.code(),
        problems,
        duration,
        log_tail,
    })
}

/// Execute each notebook in turn, printing one line per notebook (and, for a failure, its problems and the tail of
/// Jupyter's output); returns how many failed.
pub fn execute_all(layout: &Layout, notebooks: &[PathBuf], out_dir: &Path, timeout: Duration) -> Result<usize> {
    let mut failed = 0;
    for nb in notebooks {
        let report = execute_notebook(layout, nb, out_dir, timeout)?;
        let verdict = if report.ok() { "ok" } else { "FAILED" };
        println!(
            "{verdict:6} {} ({:.1} s) -> {}",
            nb.display(),
            report.duration.as_secs_f64(),
            report.executed.display()
        );
        if !report.ok() {
            failed += 1;
            for p in &report.problems {
                println!("         {p}");
            }
            println!("--- jupyter output (tail) ---\n{}", report.log_tail);
        }
    }
    Ok(failed)
}

/// The notebooks of a folder (`*.ipynb`), sorted by name.
pub fn notebooks_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    list.sort();
    Ok(list)
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
            code(json!(3), json!([{"output_type": "stream", "name": "stderr", "text": "Internal torch error: shape '[7]' is invalid\n"}])),
            code(Value::Null, json!([])),
        ]});
        let p = scan_executed(&nb);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("cell 1") && p[0].contains("panicked at"));
        assert!(p[1].contains("cannot find value"));
        assert!(p[2].contains("wrote to stderr: Internal torch error"));
        assert!(p[3].contains("not executed"));
    }

    #[test]
    fn late_output_lands_in_the_sentinel_and_a_missing_mark_is_a_failure() {
        let mut sentinel = code(
            json!(2),
            json!([
            {"output_type": "stream", "name": "stderr", "text": "file not found\n"},
            {"output_type": "stream", "name": "stdout", "text": format!("{SENTINEL_MARK}\n")}]),
        );
        sentinel["metadata"] = json!({"tags": [SENTINEL_TAG]});
        let p = scan_executed(&json!({"cells": [code(json!(1), json!([])), sentinel.clone()]}));
        assert_eq!(p, vec!["after the last cell: wrote to stderr: file not found".to_string()]);
        sentinel["outputs"] = json!([]);
        sentinel["execution_count"] = Value::Null;
        let p = scan_executed(&json!({"cells": [code(json!(1), json!([])), sentinel]}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("did not run to its end"));
    }

    #[test]
    fn tagged_cells_may_write_to_stderr_but_not_panic() {
        let mut warn = code(json!(1), json!([{"output_type": "stream", "name": "stderr", "text": "warning: slow\n"}]));
        warn["metadata"] = json!({"tags": [ALLOW_STDERR_TAG]});
        let mut panic = code(
            json!(2),
            json!([{"output_type": "stream", "name": "stderr", "text": "thread panicked at x.rs:1:1\n"}]),
        );
        panic["metadata"] = json!({"tags": [ALLOW_STDERR_TAG]});
        let p = scan_executed(&json!({"cells": [warn, panic]}));
        assert_eq!(p, vec!["cell 2: panic: thread panicked at x.rs:1:1".to_string()]);
    }
}
