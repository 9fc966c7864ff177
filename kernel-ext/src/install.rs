//! Installing the `dydis` kernelspec and its evcxr configuration; reporting their state.
use crate::{Error, Result};
use dydis_core::display::Table;
use dydis_core::fs::write_atomic;
use std::path::{Path, PathBuf};

/// The evcxr_jupyter version dydis is tested with (scripts/setup.sh installs it).
pub const EVCXR_VERSION: &str = "0.22.0";
/// Kernel name used by `jupyter --kernel_name` and in notebook metadata.
pub const KERNEL_NAME: &str = "dydis";
pub const KERNEL_DISPLAY_NAME: &str = "Rust (dydis)";
/// Persistent build folders; one kernel per slot at a time. More concurrent kernels build in a temporary folder.
pub const BUILD_SLOTS: usize = 4;

/// Where the notebook environment's pieces are.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub cache: PathBuf,
    /// A libtorch chosen by the user (`LIBTORCH`) instead of the one in the venv.
    pub libtorch: Option<PathBuf>,
}

impl Default for Layout {
    fn default() -> Self {
        let libtorch = std::env::var_os("LIBTORCH").filter(|v| !v.is_empty()).map(PathBuf::from);
        Layout { cache: dydis_core::paths::cache_root(), libtorch }
    }
}

impl Layout {
    pub fn venv(&self) -> PathBuf {
        self.cache.join("venv")
    }
    pub fn jupyter(&self) -> PathBuf {
        self.venv().join("bin").join("jupyter")
    }
    pub fn evcxr(&self) -> PathBuf {
        self.cache.join("evcxr").join("bin").join("evcxr_jupyter")
    }
    pub fn kernelspec_dir(&self) -> PathBuf {
        self.venv().join("share").join("jupyter").join("kernels").join(KERNEL_NAME)
    }
    pub fn kernel_dir(&self) -> PathBuf {
        self.cache.join("kernel")
    }
    pub fn evcxr_config_dir(&self) -> PathBuf {
        self.kernel_dir().join("config")
    }
    pub fn build_dir(&self) -> PathBuf {
        self.kernel_dir().join("build")
    }
    /// The torch package directory inside the venv (its `lib/` is libtorch), if installed.
    pub fn torch_dir(&self) -> Option<PathBuf> {
        if let Some(t) = &self.libtorch {
            return Some(t.clone());
        }
        let lib = self.venv().join("lib");
        let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python3")))
            .collect();
        pythons.sort();
        pythons.into_iter().map(|p| p.join("site-packages").join("torch")).find(|t| t.join("lib").is_dir())
    }

    fn require(&self, what: &str, path: PathBuf) -> Result<PathBuf> {
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::Missing { what: what.into(), path, fix: "run scripts/setup.sh (or ./dydis setup) first".into() })
        }
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

/// Write the kernelspec, launcher and evcxr configuration so that the `dydis` kernel loads dydis-core from
/// `repo` (a dydis checkout). Idempotent; returns the kernelspec directory.
pub fn install_kernel(layout: &Layout, repo: &Path) -> Result<PathBuf> {
    let evcxr = layout.require("evcxr_jupyter", layout.evcxr())?;
    let torch = layout.torch_dir().ok_or_else(|| Error::Missing {
        what: "libtorch (PyPI torch 2.13.0)".into(),
        path: layout.venv(),
        fix: "run scripts/setup.sh first".into(),
    })?;
    // A stable, checkout-independent path: the kernelspec outlives any one checkout, and torch-sys rebuilds
    // (minutes) in the kernel's build folder whenever LIBTORCH changes.
    let torch = torch.canonicalize().map_err(|e| Error::io(&torch, e))?;
    let core = repo.join("dydis-core");
    layout.require("dydis-core", core.join("Cargo.toml"))?;
    let repo = repo.canonicalize().map_err(|e| Error::io(repo, e))?;
    let core = repo.join("dydis-core");

    // evcxr configuration: dydis-core (and through it tch) in every kernel from the first cell.
    let config = layout.evcxr_config_dir();
    write(
        &config.join("init.evcxr"),
        &format!(
            "// Written by `dydis kernel install`; rewritten on every install.\n\
             :dep dydis-core = {{ path = \"{}\" }}\n",
            core.display()
        ),
    )?;
    write(
        &config.join("prelude.rs"),
        "// Written by `dydis kernel install`: what every dydis notebook starts with.\n\
         use dydis_core::prelude::*;\n\
         dydis_core::device::preload_cuda();\n",
    )?;

    // Launcher: one persistent build folder per running kernel, so that a notebook after the first starts in
    // seconds and two kernels never write into the same generated crate.
    let build = layout.build_dir();
    let launcher = layout.kernel_dir().join("launch.sh");
    write(
        &launcher,
        &format!(
            "#!/usr/bin/env bash\n\
             # dydis kernel launcher, written by `dydis kernel install`.\n\
             # evcxr links each cell against the toolchain's libstd through an $ORIGIN-relative rpath that is only\n\
             # right for shallow temporary folders; name the toolchain's library folder explicitly instead.\n\
             export LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:$(rustc --print target-libdir)\"\n\
             build='{build}'\n\
             mkdir -p \"$build\"\n\
             for i in $(seq 0 {last}); do\n\
             \x20 exec 9>\"$build/slot$i.lock\"\n\
             \x20 if flock -n 9; then\n\
             \x20   export EVCXR_TMPDIR=\"$build/slot$i\"; mkdir -p \"$EVCXR_TMPDIR\"\n\
             \x20   exec '{evcxr}' --control_file \"$1\"\n\
             \x20 fi\n\
             done\n\
             exec 9>&-\n\
             export EVCXR_TMPDIR=\"$(mktemp -d)\"\n\
             exec '{evcxr}' --control_file \"$1\"\n",
            build = build.display(),
            last = BUILD_SLOTS - 1,
            evcxr = evcxr.display()
        ),
    )?;
    set_executable(&launcher)?;

    let torch_lib = torch.join("lib");
    let mut spec = serde_json::json!({
        "argv": ["bash", launcher.display().to_string(), "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "rust",
        "interrupt_mode": "message",
        "env": {
            "LIBTORCH": torch.display().to_string(),
            "LD_LIBRARY_PATH": torch_lib.display().to_string(),
            "EVCXR_CONFIG_DIR": config.display().to_string(),
            "DYDIS_HOME": layout.cache.display().to_string(),
            "DYDIS_REPO": repo.display().to_string(),
        },
        "metadata": { "dydis": { "repo": repo.display().to_string(), "evcxr_version": EVCXR_VERSION } }
    });
    // Optional reference data reaches the notebooks through the kernel's environment, as it reaches the CLI.
    if let Some(reference) = std::env::var_os("DYDIS_REFERENCE_DATA").filter(|v| !v.is_empty()) {
        spec["env"]["DYDIS_REFERENCE_DATA"] = PathBuf::from(reference).display().to_string().into();
    }
    let dir = layout.kernelspec_dir();
    write(&dir.join("kernel.json"), &serde_json::to_string_pretty(&spec).expect("json"))?;
    Ok(dir)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(path, e))
}

/// State of the notebook environment, for `dydis doctor`.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelStatus {
    pub evcxr: Option<PathBuf>,
    pub jupyter: Option<PathBuf>,
    pub kernelspec: Option<PathBuf>,
    /// The checkout whose dydis-core the installed kernel loads.
    pub kernel_repo: Option<PathBuf>,
    /// The build slots holding a dydis-core compiled after the last change to that checkout's dydis-core sources
    /// (by modification times): a kernel started in one of them answers in seconds, otherwise the first start
    /// compiles dydis-core (minutes).
    pub warm_slots: Vec<String>,
}

/// The newest modification time of the files under `path` (itself when a file) whose names `keep` accepts.
fn newest_mtime(path: &Path, keep: &dyn Fn(&str) -> bool) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        return if keep(name) { meta.modified().ok() } else { None };
    }
    std::fs::read_dir(path).ok()?.filter_map(|e| e.ok()).filter_map(|e| newest_mtime(&e.path(), keep)).max()
}

/// The slots of `build_dir` whose newest compiled dydis-core (`libdydis_core-*.rlib` under the slot's `target/`) is
/// newer than every source file of `repo`'s dydis-core.
fn warm_slots(build_dir: &Path, repo: &Path) -> Vec<String> {
    // The kernel's crate has its own lock file in the slot, so only dydis-core's own files decide.
    let sources = [repo.join("dydis-core/src"), repo.join("dydis-core/Cargo.toml"), repo.join("dydis-core/build.rs")];
    let Some(changed) = sources.iter().filter_map(|p| newest_mtime(p, &|_| true)).max() else { return vec![] };
    let core = |n: &str| n.starts_with("libdydis_core-") && n.ends_with(".rlib");
    let Ok(slots) = std::fs::read_dir(build_dir) else { return vec![] };
    let mut warm: Vec<String> = slots
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && newest_mtime(&e.path().join("target"), &core).is_some_and(|t| t > changed))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    warm.sort();
    warm
}

impl KernelStatus {
    pub fn check(layout: &Layout) -> Self {
        let exists = |p: PathBuf| p.exists().then_some(p);
        let kernelspec = exists(layout.kernelspec_dir().join("kernel.json"));
        let kernel_repo = kernelspec
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["env"]["DYDIS_REPO"].as_str().map(PathBuf::from));
        let warm_slots = kernel_repo.as_ref().map(|r| warm_slots(&layout.build_dir(), r)).unwrap_or_default();
        KernelStatus {
            evcxr: exists(layout.evcxr()),
            jupyter: exists(layout.jupyter()),
            kernelspec,
            kernel_repo,
            warm_slots,
        }
    }

    /// What is wrong and the command that fixes it; empty when the environment is complete for `repo`.
    pub fn problems(&self, repo: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if self.evcxr.is_none() || self.jupyter.is_none() {
            out.push("the notebook tools (evcxr_jupyter, Jupyter) are not installed: run `scripts/setup.sh`".into());
        }
        if self.kernelspec.is_none() {
            out.push("the `dydis` Jupyter kernel is not installed: run `./dydis kernel install`".into());
        } else {
            let here = repo.canonicalize().unwrap_or_else(|_| repo.to_path_buf());
            if self.kernel_repo.as_deref() != Some(here.as_path()) {
                out.push(format!(
                    "the `dydis` kernel loads dydis-core from {}, not from this checkout ({}): run `./dydis kernel install` here",
                    self.kernel_repo.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "an unknown place".into()),
                    here.display()
                ));
            }
        }
        out
    }

    pub fn table(&self) -> Table {
        let show =
            |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "missing".into());
        Table::new(["item", "value"])
            .with_title("notebook environment")
            .row(["evcxr_jupyter", &show(&self.evcxr)])
            .row(["jupyter", &show(&self.jupyter)])
            .row(["dydis kernelspec", &show(&self.kernelspec)])
            .row(["kernel loads dydis-core from", &show(&self.kernel_repo)])
            .row(["kernel warm (dydis-core compiled for these sources)", &self.warm_text()])
    }

    fn warm_text(&self) -> String {
        if self.warm_slots.is_empty() {
            "no: the first notebook compiles dydis-core (minutes); `./dydis kernel warm` does it now".into()
        } else {
            format!("yes ({}): the first notebook starts in seconds", self.warm_slots.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_layout(tag: &str) -> (Layout, PathBuf) {
        let root = std::env::temp_dir().join(format!("dydis-kext-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let layout = Layout { cache: root.join("cache"), libtorch: None };
        (layout, root)
    }

    #[test]
    fn install_requires_evcxr_and_names_the_fix() {
        let (layout, root) = fake_layout("missing");
        let err = install_kernel(&layout, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err().to_string();
        assert!(err.contains("evcxr_jupyter is missing") && err.contains("scripts/setup.sh"), "{err}");
        let status = KernelStatus::check(&layout);
        let problems = status.problems(Path::new("."));
        assert!(problems.iter().any(|p| p.contains("./dydis kernel install")), "{problems:?}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn install_writes_a_kernelspec_pointing_at_the_checkout() {
        let (layout, root) = fake_layout("ok");
        let evcxr = layout.evcxr();
        std::fs::create_dir_all(evcxr.parent().unwrap()).unwrap();
        std::fs::write(&evcxr, "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(layout.venv().join("lib/python3.11/site-packages/torch/lib")).unwrap();
        std::fs::create_dir_all(layout.venv().join("bin")).unwrap();
        std::fs::write(layout.jupyter(), "#!/bin/sh\n").unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = install_kernel(&layout, repo).unwrap();
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
        assert_eq!(spec["display_name"], KERNEL_DISPLAY_NAME);
        assert!(spec["env"]["LD_LIBRARY_PATH"].as_str().unwrap().ends_with("torch/lib"));
        let init = std::fs::read_to_string(layout.evcxr_config_dir().join("init.evcxr")).unwrap();
        assert!(init.contains(&format!("{}/dydis-core", repo.canonicalize().unwrap().display())), "{init}");
        let status = KernelStatus::check(&layout);
        assert!(status.problems(repo).is_empty(), "{:?}", status.problems(repo));
        assert_eq!(status.problems(Path::new("/")).len(), 1);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_slot_is_warm_until_the_sources_change() {
        use std::time::{Duration, SystemTime};
        let (_, root) = fake_layout("warm");
        let (repo, build) = (root.join("repo"), root.join("build"));
        let src = repo.join("dydis-core/src/lib.rs");
        let rlib = build.join("slot0/target/x86_64-unknown-linux-gnu/debug/deps/libdydis_core-0123.rlib");
        for f in [&src, &rlib] {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "x").unwrap();
        }
        std::fs::create_dir_all(build.join("slot1")).unwrap();
        let at = |f: &Path, secs: u64| {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            std::fs::File::options().write(true).open(f).unwrap().set_modified(t).unwrap();
        };
        at(&src, 1_000);
        at(&rlib, 2_000);
        assert_eq!(warm_slots(&build, &repo), vec!["slot0".to_string()]);
        at(&src, 3_000);
        assert!(warm_slots(&build, &repo).is_empty(), "a source changed after the build");
        let _ = std::fs::remove_dir_all(root);
    }
}
