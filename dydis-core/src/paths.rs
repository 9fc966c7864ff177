//! Where dydis keeps what it installs and generates, outside any repository checkout.
//!
//! - cache root: `$DYDIS_HOME`, else `$XDG_CACHE_HOME/dydis`, else `~/.cache/dydis` (libtorch venv, evcxr,
//!   the kernel's build folders);
//! - data directory: `$DYDIS_DATA`, else `<cache root>/data` (rendered datasets, downloads).
//!
//! - reference data: `$DYDIS_REFERENCE_DATA` (optional real images to compare and test against).
//!
//! `scripts/setup.sh` applies the same rule for the cache root.
use std::path::PathBuf;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The user-level cache shared by every checkout on this machine.
pub fn cache_root() -> PathBuf {
    env_path("DYDIS_HOME").unwrap_or_else(|| {
        env_path("XDG_CACHE_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("dydis")
    })
}

/// Where datasets are rendered, cached and downloaded.
pub fn data_dir() -> PathBuf {
    env_path("DYDIS_DATA").unwrap_or_else(|| cache_root().join("data"))
}

/// Optional reference data (the real dSprites sub-grid, Shapes3D and MPI3D reference images) that the look-alike
/// comparisons, the `dsprites-real:subgrid` dataset and some tests read: the folder named by
/// `$DYDIS_REFERENCE_DATA` (the `dydis` binary and `cargo` in this checkout set it to the project's shared data folder
/// when one exists). None when unset.
pub fn reference_data_dir() -> Option<PathBuf> {
    env_path("DYDIS_REFERENCE_DATA")
}

/// A file under the reference data folder, if the folder is configured and the file exists.
pub fn reference_file(relative: &str) -> Option<PathBuf> {
    let p = reference_data_dir()?.join(relative);
    p.exists().then(|| p.canonicalize().unwrap_or(p))
}
