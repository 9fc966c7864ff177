//! DCI (Eastwood & Williams 2018) with gradient-boosted trees: disentanglement, completeness, informativeness.
use super::{boosters, gather, labels, rows, SplitRows};
use crate::data::FactorSpace;
use crate::eval::gbt::GbtConfig;
use crate::eval::Codes;
use crate::Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DciResult {
    pub disentanglement: f64,
    pub completeness: f64,
    /// Mean accuracy of the per-factor boosters (disentanglement_lib's "informativeness").
    pub informativeness_train: f64,
    pub informativeness_test: f64,
    /// `importance[code][factor]`.
    pub importance: Vec<Vec<f64>>,
    pub per_factor_test_accuracy: Vec<f64>,
}

/// 1 − entropy of `p + 1e-11` (normalised) in base `base`.
fn one_minus_entropy(p: &[f64], base: usize) -> f64 {
    let q: Vec<f64> = p.iter().map(|v| v + 1e-11).collect();
    let s: f64 = q.iter().sum();
    1.0 - q.iter().map(|v| v / s).map(|v| -v * v.ln()).sum::<f64>() / (base as f64).ln()
}

/// DCI from an importance matrix `r[code][factor]` (disentanglement_lib's `disentanglement` / `completeness`).
pub fn dci_scores(r: &[Vec<f64>]) -> (f64, f64) {
    let nc = r.len();
    let nf = r.first().map_or(0, Vec::len);
    let total: f64 = r.iter().flatten().sum();
    let w: Vec<Vec<f64>> = if total == 0.0 { vec![vec![1.0; nf]; nc] } else { r.to_vec() };
    let wsum: f64 = w.iter().flatten().sum();
    let dis = (0..nc).map(|c| one_minus_entropy(&r[c], nf.max(2)) * w[c].iter().sum::<f64>() / wsum).sum();
    let com = (0..nf)
        .map(|f| {
            let col: Vec<f64> = r.iter().map(|row| row[f]).collect();
            one_minus_entropy(&col, nc.max(2)) * w.iter().map(|row| row[f]).sum::<f64>() / wsum
        })
        .sum();
    (dis, com)
}

/// DCI with disentanglement_lib's parameters (10,000 training and 5,000 test points): one
/// `GradientBoostingClassifier()` per factor (in parallel), importances |feature_importances_|.
pub fn dci(
    codes: &Codes,
    space: &FactorSpace,
    num_train: usize,
    num_test: usize,
    gbt: &GbtConfig,
    seed: u64,
) -> Result<DciResult> {
    dci_on(codes, space, &SplitRows::draw(space, num_train, num_test, seed), gbt)
}

/// DCI on given training and test rows.
pub fn dci_on(codes: &Codes, space: &FactorSpace, plan: &SplitRows, gbt: &GbtConfig) -> Result<DciResult> {
    plan.validate(space, true)?;
    let (c, f) = gather(codes, space, &plan.train)?;
    let (ct, ft) = gather(codes, space, &plan.test)?;
    let (xtr, xte) = (rows(&c), rows(&ct));
    let fits: Vec<(Vec<f64>, f64, f64)> = boosters(&xtr, codes.dims, &f, gbt)?
        .iter()
        .enumerate()
        .map(|(k, b)| {
            Ok((
                b.feature_importances.iter().map(|v| v.abs()).collect(),
                b.accuracy(&xtr, &labels(&f[k]))?,
                b.accuracy(&xte, &labels(&ft[k]))?,
            ))
        })
        .collect::<Result<_>>()?;
    let importance: Vec<Vec<f64>> = (0..codes.dims).map(|j| fits.iter().map(|x| x.0[j]).collect()).collect();
    let (disentanglement, completeness) = dci_scores(&importance);
    let nf = fits.len() as f64;
    Ok(DciResult {
        disentanglement,
        completeness,
        informativeness_train: fits.iter().map(|x| x.1).sum::<f64>() / nf,
        informativeness_test: fits.iter().map(|x| x.2).sum::<f64>() / nf,
        per_factor_test_accuracy: fits.iter().map(|x| x.2).collect(),
        importance,
    })
}
