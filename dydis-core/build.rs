//! Link set-up shared by every crate of the workspace that has binaries, tests or examples
//! (`build = "../dydis-core/build.rs"` in their manifests).
//!
//! torch-sys tells us, through its `links = "tch"` metadata, which libtorch it linked. We then
//! - give every binary an rpath to that directory, so nothing needs `LD_LIBRARY_PATH`;
//! - force `libtorch_cuda` (when the library has it) and `libtorch` to stay linked: with the default
//!   `--as-needed`, the linker drops them because no symbol is referenced directly, and CUDA is then
//!   silently unavailable at run time;
//! - record the libtorch directory and version so that `dydis doctor` can report what was built against.
use std::path::{Path, PathBuf};

fn torch_version(lib_dir: &Path) -> String {
    let top = lib_dir.parent().unwrap_or(lib_dir);
    if let Ok(text) = std::fs::read_to_string(top.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__ = ") {
                return rest.trim_matches(|c| c == '\'' || c == '"').to_string();
            }
        }
    }
    std::fs::read_to_string(top.join("build-version"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; binaries will need LD_LIBRARY_PATH");
        return;
    };
    // Canonical path: the in-repository link .dydis/libtorch must not end up in an rpath.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| PathBuf::from(&lib));
    let lib_str = lib.display().to_string();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_str}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    println!("cargo:rustc-env=DYDIS_LIBTORCH_LIB={lib_str}");
    println!("cargo:rustc-env=DYDIS_LIBTORCH_VERSION={}", torch_version(&lib));
}
