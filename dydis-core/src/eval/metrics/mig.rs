//! Mutual Information Gap (Chen et al. 2018): 20-bin histogram discretisation, MI in nats.
use super::{entropy, gather, mi_matrix, SplitRows};
use crate::data::FactorSpace;
use crate::eval::Codes;
use crate::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct MigResult {
    pub score: f64,
    /// Per factor: (name, normalised gap, entropy); factors with one value are excluded (their entropy is 0).
    pub per_factor: Vec<(String, f64, f64)>,
    pub num_train: usize,
    pub bins: usize,
}

/// MIG: mean over factors of (largest − second largest MI between the factor and a discretised code) / H(factor).
pub fn mig(codes: &Codes, space: &FactorSpace, num_train: usize, bins: usize, seed: u64) -> Result<MigResult> {
    mig_on(codes, space, &SplitRows::draw(space, num_train, 0, seed).train, bins)
}

/// MIG on given rows (a replayed sample plan).
pub fn mig_on(codes: &Codes, space: &FactorSpace, rows: &[usize], bins: usize) -> Result<MigResult> {
    if codes.dims < 2 {
        return Err(Error::config("codes", "MIG needs at least two code dimensions"));
    }
    SplitRows { train: rows.to_vec(), test: Vec::new() }.validate(space, false)?;
    let num_train = rows.len();
    let (c, f) = gather(codes, space, rows)?;
    let m = mi_matrix(&c, &f, bins);
    let mut per = Vec::new();
    for (k, fk) in f.iter().enumerate() {
        let h = entropy(fk);
        if h <= 0.0 {
            continue;
        }
        let mut col: Vec<f64> = m.iter().map(|row| row[k]).collect();
        col.sort_by(|a, b| b.total_cmp(a));
        per.push((space.factor(k).name.clone(), (col[0] - col[1]) / h, h));
    }
    if per.is_empty() {
        return Err(Error::config("factors", "every factor has a single value: MIG is undefined"));
    }
    let score = per.iter().map(|p| p.1).sum::<f64>() / per.len() as f64;
    Ok(MigResult { score, per_factor: per, num_train, bins })
}
