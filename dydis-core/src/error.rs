//! The library's error type. Messages name the value, file or field at fault.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid device '{0}': expected auto, cpu, cuda or cuda:<index>")]
    InvalidDevice(String),
    #[error("device {requested} was requested but {reason}")]
    DeviceUnavailable { requested: String, reason: String },
    #[error("invalid value for {field}: {message}")]
    InvalidConfig { field: String, message: String },
    #[error("{what}: {message}")]
    InvalidData { what: String, message: String },
    #[error("{what} failed: {message}")]
    Failed { what: String, message: String },
    #[error("JSON of {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("tensor has shape {got:?}, expected {expected}")]
    Shape { got: Vec<i64>, expected: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// A configuration value that is wrong: `field` names it (`dyga.k0`, `train.lr`).
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig { field: field.into(), message: message.into() }
    }
    /// Input data that cannot be used (empty, NaN, degenerate): `what` names the data.
    pub fn data(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidData { what: what.into(), message: message.into() }
    }
    /// A computation or an external step that failed on valid input: `what` names the step.
    pub fn failed(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Failed { what: what.into(), message: message.into() }
    }
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json { what: what.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
