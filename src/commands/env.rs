//! `dydis doctor | kernel | notebook | execute`: the environment: what is installed and working, the notebook
//! kernel, JupyterLab, and headless notebook runs.
use crate::common::{repo, REPO};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use dydis_core::device::{DeviceSpec, RuntimeInfo};
use dydis_core::display::{Show, Table};
use kernel_ext::{execute_all, notebooks_in, scan_executed, write_gallery, GalleryEntry, KernelStatus, Layout};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum KernelAction {
    /// Install (or refresh) the kernelspec so that it loads dydis-core from this checkout.
    Install,
    /// Print where the kernel and its configuration are.
    Status,
    /// Start the kernel once so that its build folder holds a compiled dydis-core (the first start takes minutes).
    Warm,
}

#[derive(Args)]
pub struct ExecuteArgs {
    pub notebooks: Vec<PathBuf>,
    /// Per-cell time limit in seconds.
    #[arg(long, default_value_t = 900)]
    pub cell_timeout: u64,
    /// Where executed copies are written.
    #[arg(long, default_value = "target/notebooks")]
    pub out: PathBuf,
    /// Also write each executed notebook as a static HTML page into this folder, with an index.html.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn kernel(action: KernelAction) -> Result<i32> {
    let layout = Layout::default();
    match action {
        KernelAction::Install => {
            let dir = kernel_ext::install_kernel(&layout, repo())?;
            println!("installed kernel 'dydis' (Rust (dydis)) at {}", dir.display());
            Ok(0)
        }
        KernelAction::Warm => {
            kernel_ext::install_kernel(&layout, repo())?;
            let nb = repo().join("tests/notebooks/warm.ipynb");
            let out = repo().join("target/notebooks/warm");
            println!("starting the dydis kernel once (the first time on a machine it compiles dydis-core: minutes)");
            let failed = execute_all(&layout, &[nb], &out, Duration::from_secs(1800))?;
            Ok(i32::from(failed > 0))
        }
        KernelAction::Status => {
            println!("{}", KernelStatus::check(&layout).table().to_text());
            Ok(0)
        }
    }
}

/// JupyterLab on notebooks/ with the dydis kernel; it takes this process's place.
pub fn notebook(args: Vec<String>) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let layout = Layout::default();
    kernel_ext::install_kernel(&layout, repo())?;
    // exec: JupyterLab takes this process's place, so stopping it (Ctrl-C, a signal) stops the server.
    let mut cmd = std::process::Command::new(layout.jupyter());
    cmd.arg("lab").arg(format!("--notebook-dir={}", repo().join("notebooks").display()));
    // SAFETY: geteuid has no preconditions. Jupyter refuses to start as root (containers, CI) without this.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--allow-root");
    }
    let err = cmd.args(args).exec();
    Err(err).with_context(|| format!("starting {}", layout.jupyter().display()))
}

/// Execute the named notebooks (all of notebooks/ when none are named); exit code 1 when one failed.
pub fn execute(a: &ExecuteArgs) -> Result<i32> {
    let list = if a.notebooks.is_empty() { notebooks_in(&repo().join("notebooks"))? } else { a.notebooks.clone() };
    let failed = execute_all(&Layout::default(), &list, &a.out, Duration::from_secs(a.cell_timeout))?;
    if let Some(dir) = &a.html {
        let mut entries = Vec::new();
        for nb in &list {
            let executed = a.out.join(nb.file_name().context("a notebook path without a file name")?);
            match kernel_ext::notebook::read_notebook(&executed) {
                Ok(v) => entries.push(GalleryEntry { ok: scan_executed(&v).is_empty(), executed }),
                Err(e) => println!("not in the gallery: {e}"),
            }
        }
        let index = write_gallery(dir, &entries)?;
        println!("gallery: {} ({} notebooks)", index.display(), entries.len());
    }
    Ok(i32::from(failed > 0))
}

/// Check libtorch, devices, the kernel and the data directory; exit code 2 with a fix per problem.
pub fn doctor(device: DeviceSpec, json: bool) -> Result<i32> {
    let layout = Layout::default();
    let info = RuntimeInfo::collect();
    let kernel = KernelStatus::check(&layout);
    let data = dydis_core::paths::data_dir();
    let mut problems = kernel.problems(repo());
    if let Err(e) = device.resolve() {
        problems.push(format!("{e}: use --device cpu, or run on a machine with a CUDA GPU"));
    }
    if !info.libtorch_version.starts_with("2.13.0") {
        problems.push(format!(
            "built against libtorch {}, dydis needs 2.13.0: run scripts/setup.sh",
            info.libtorch_version
        ));
    }
    println!("{}\n", info.to_text());
    println!("{}\n", kernel.table().to_text());
    let reference = dydis_core::paths::reference_data_dir();
    let reference_text = reference.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(unset)".into());
    let paths = Table::new(["item", "value"])
        .with_title("paths")
        .row(["checkout", REPO])
        .row(["cache (DYDIS_HOME)", &layout.cache.display().to_string()])
        .row(["data directory (DYDIS_DATA)", &data.display().to_string()])
        .row(["reference data (DYDIS_REFERENCE_DATA)", &reference_text])
        .row(["requested device", &device.to_string()]);
    println!("{}\n", paths.to_text());
    if json {
        let v = serde_json::json!({
            "runtime": info, "data_dir": data, "cache": layout.cache, "reference_data": reference,
            "problems": problems
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    if problems.is_empty() {
        println!("all good");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        Ok(2)
    }
}
