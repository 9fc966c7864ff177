//! Every notebook in notebooks/ runs top to bottom with the `dydis` kernel, headlessly, without any error; and
//! the checker really catches failures that `jupyter execute` itself lets through (panics, `Err` via `?`).
//!
//! Executed copies are kept in target/notebooks/ for inspection, and rendered as the static gallery in
//! target/gallery/ (a page per notebook and an index).
use kernel_ext::{
    execute_notebook, external_references, install_kernel, stored_outputs, write_gallery, GalleryEntry, Layout,
    NotebookReport,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Kernels are started one at a time: two cold kernels would each compile dydis-core on a 2-core machine.
static KERNEL: Mutex<()> = Mutex::new(());

/// Per-cell (and kernel start-up) limit. The first kernel start on a machine compiles dydis-core (~2-4 min).
const TIMEOUT: Duration = Duration::from_secs(1200);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn notebooks_in(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    list.sort();
    list
}

fn run(nb: &Path, out: &str) -> NotebookReport {
    let _guard = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let layout = Layout::default();
    install_kernel(&layout, repo()).expect("installing the dydis kernel (run scripts/setup.sh first)");
    let report = execute_notebook(&layout, nb, &repo().join("target/notebooks").join(out), TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", nb.display()));
    eprintln!("{} ran in {:.1} s: {:?}", nb.display(), report.duration.as_secs_f64(), report.problems);
    report
}

#[test]
fn notebooks_are_committed_without_outputs() {
    let mut all = notebooks_in(&repo().join("notebooks"));
    all.extend(notebooks_in(&repo().join("tests/notebooks")));
    assert!(all.iter().any(|p| p.ends_with("notebooks/00-environment.ipynb")));
    for nb in all {
        let cells = stored_outputs(&nb).unwrap();
        assert!(
            cells.is_empty(),
            "{} has stored outputs in code cells {cells:?}: clear them before committing",
            nb.display()
        );
    }
}

#[test]
fn every_notebook_runs_cleanly_with_the_dydis_kernel() {
    let list = notebooks_in(&repo().join("notebooks"));
    assert!(!list.is_empty());
    let mut failures = Vec::new();
    let mut gallery = Vec::new();
    for nb in &list {
        let report = run(nb, ".");
        if !report.ok() {
            failures.push(format!("{}:\n  {}\n{}", nb.display(), report.problems.join("\n  "), report.log_tail));
        }
        gallery.push(GalleryEntry { executed: report.executed.clone(), ok: report.ok() });
    }
    assert!(failures.is_empty(), "notebooks failed:\n{}", failures.join("\n\n"));
    // The executed gallery: a page per notebook, each readable offline (nothing fetched when it is opened).
    let out = repo().join("target/gallery");
    write_gallery(&out, &gallery).unwrap();
    for e in &gallery {
        let page = out.join(e.executed.file_stem().unwrap()).with_extension("html");
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(external_references(&html).is_empty(), "{}: {:?}", page.display(), external_references(&html));
        assert!(html.contains("<pre class=\"source\">"), "{}", page.display());
    }
}

#[test]
fn a_panicking_cell_fails_the_notebook_check() {
    let report = run(&repo().join("tests/notebooks/broken-panic.ipynb"), "broken");
    // jupyter execute itself reports success here: only the scan of the outputs catches it.
    assert_eq!(report.exit_code, Some(0), "{report:?}");
    assert!(!report.ok());
    assert!(report.problems.iter().any(|p| p.starts_with("cell 2: panic")), "{:?}", report.problems);
}

#[test]
fn an_error_returned_with_question_mark_fails_the_notebook_check() {
    let report = run(&repo().join("tests/notebooks/broken-error.ipynb"), "broken");
    assert!(!report.ok());
    assert_eq!(report.exit_code, Some(0), "{report:?}");
    assert!(
        report.problems.iter().any(|p| p.starts_with("cell 2: wrote to stderr") && p.contains("invalid")),
        "{:?}",
        report.problems
    );
}
