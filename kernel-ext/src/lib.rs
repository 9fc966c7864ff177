//! The dydis notebook environment: the `dydis` Jupyter kernel (evcxr_jupyter with dydis-core preloaded), its
//! installation, and headless notebook execution with failure detection.
//!
//! Everything lives under the user-level cache ([`dydis_core::paths::cache_root`]), shared by every checkout:
//! ```text
//! <cache>/venv/                      Python: torch 2.13.0 (libtorch), nbclient, jupyterlab   (scripts/setup.sh)
//! <cache>/evcxr/bin/evcxr_jupyter    the Rust kernel                                          (scripts/setup.sh)
//! <cache>/venv/share/jupyter/kernels/dydis/   kernelspec "Rust (dydis)"                        (dydis kernel install)
//! <cache>/kernel/config/             EVCXR_CONFIG_DIR: init.evcxr (:dep dydis-core) and prelude.rs
//! <cache>/kernel/launch.sh           picks a free persistent build slot, then runs evcxr_jupyter
//! <cache>/kernel/build/slotN/        persistent EVCXR_TMPDIR (one per concurrently running kernel)
//! ```
pub mod gallery;
pub mod install;
pub mod notebook;

pub use gallery::{external_references, notebook_html, write_gallery, GalleryEntry};
pub use install::{install_kernel, KernelStatus, Layout};
pub use notebook::{execute_all, execute_notebook, notebooks_in, scan_executed, stored_outputs, NotebookReport};

/// Errors of the notebook environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} is missing at {path}: {fix}")]
    Missing { what: String, path: std::path::PathBuf, fix: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid notebook: {message}")]
    BadNotebook { path: std::path::PathBuf, message: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
