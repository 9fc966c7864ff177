//! The record of one anchor refit (K, splits, filters and log-likelihood per unit), as the trainer appends it to
//! `<stage>/anchors.jsonl`; the anchor plots read the history back.
use super::Anchors;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One refit, as logged by the trainer (one JSON object per line of `anchors.jsonl`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RefitRecord {
    pub epoch: usize,
    pub step: usize,
    pub features: usize,
    pub seconds: f64,
    /// Per unit.
    pub k: Vec<usize>,
    pub splits: Vec<usize>,
    pub filtered: Vec<usize>,
    pub log_likelihood: Vec<f64>,
}

impl RefitRecord {
    /// The record of a refit.
    pub fn of(anchors: &Anchors, step: usize, features: usize) -> RefitRecord {
        RefitRecord {
            epoch: anchors.epoch,
            step,
            features,
            seconds: anchors.seconds,
            k: anchors.units.iter().map(|u| u.k()).collect(),
            splits: anchors.units.iter().map(|u| u.splits()).collect(),
            filtered: anchors.units.iter().map(|u| u.filtered()).collect(),
            log_likelihood: anchors
                .units
                .iter()
                .map(|u| u.log_likelihood.last().map(|x| x.1).unwrap_or(f64::NAN))
                .collect(),
        }
    }

    /// Read a refit log; a missing file is an empty history, an unreadable line an error naming it.
    pub fn read_log(path: &Path) -> Result<Vec<RefitRecord>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| Error::File { path: path.to_path_buf(), message: format!("line {}: {e}", i + 1) })
            })
            .collect()
    }
}
