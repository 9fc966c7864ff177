//! Where dydis keeps what it installs and generates, outside any repository checkout.
//!
//! - cache root: `$DYDIS_HOME`, else `$XDG_CACHE_HOME/dydis`, else `~/.cache/dydis` (libtorch venv, evcxr,
//!   the kernel's build folders);
//! - data directory: `$DYDIS_DATA`, else `<cache root>/data` (rendered datasets, downloads).
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
