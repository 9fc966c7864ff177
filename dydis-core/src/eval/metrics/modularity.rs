//! Modularity (Ridgeway & Mozer 2018) and Explicitness.
use super::{gather, labels, mean_std, mi_matrix, rows, SplitRows};
use crate::data::FactorSpace;
use crate::eval::linear::{roc_auc, LogReg};
use crate::eval::Codes;
use crate::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ModularityResult {
    pub score: f64,
    pub per_code: Vec<f64>,
    /// Explicitness: macro one-vs-rest ROC AUC of a default logistic regression from all codes to each factor.
    pub explicitness_train: f64,
    pub explicitness_test: f64,
}

/// Modularity (Ridgeway & Mozer): per code 1 − (Σ_f m² − max m²)/(max m² (F − 1)) over its MI with the factors
/// (0 when the code shares no information with any factor), averaged over codes. Explicitness (Ridgeway & Mozer):
/// codes standardised with training statistics, `LogisticRegression()` per factor, macro one-vs-rest AUC on the
/// training and the test draw.
pub fn modularity(
    codes: &Codes,
    space: &FactorSpace,
    num_train: usize,
    num_test: usize,
    bins: usize,
    seed: u64,
) -> Result<ModularityResult> {
    modularity_on(codes, space, &SplitRows::draw(space, num_train, num_test, seed), bins)
}

/// Modularity and explicitness on given training and test rows.
pub fn modularity_on(codes: &Codes, space: &FactorSpace, plan: &SplitRows, bins: usize) -> Result<ModularityResult> {
    let nf = space.num_factors();
    if nf < 2 {
        return Err(Error::config("factors", "modularity needs at least two factors"));
    }
    plan.validate(space, true)?;
    let (c, f) = gather(codes, space, &plan.train)?;
    let (ct, ft) = gather(codes, space, &plan.test)?;
    let m = mi_matrix(&c, &f, bins);
    let per: Vec<f64> = m
        .iter()
        .map(|row| {
            let sq: Vec<f64> = row.iter().map(|v| v * v).collect();
            let max = sq.iter().cloned().fold(0.0, f64::max);
            if max <= 0.0 {
                0.0
            } else {
                1.0 - (sq.iter().sum::<f64>() - max) / (max * (nf as f64 - 1.0))
            }
        })
        .collect();
    // Explicitness
    let stats: Vec<(f64, f64)> = c.iter().map(|x| mean_std(x)).collect();
    let norm = |c: &[Vec<f64>]| -> Vec<Vec<f64>> {
        c.iter().zip(&stats).map(|(x, (m, sd))| x.iter().map(|v| (v - m) / sd).collect()).collect()
    };
    let (xtr, xte) = (rows(&norm(&c)), rows(&norm(&ct)));
    let auc = |model: &LogReg, x: &[f64], y: &[usize]| -> f64 {
        let k = model.classes.len();
        let p = model.predict_proba(x);
        let aucs: Vec<f64> = (0..k)
            .filter_map(|j| {
                let pos: Vec<bool> = y.iter().map(|&v| v as i64 == model.classes[j]).collect();
                let score: Vec<f64> = (0..y.len()).map(|i| p[i * k + j]).collect();
                roc_auc(&score, &pos)
            })
            .collect();
        if aucs.is_empty() {
            0.5
        } else {
            aucs.iter().sum::<f64>() / aucs.len() as f64
        }
    };
    let mut et = Vec::new();
    let mut ee = Vec::new();
    for k in 0..nf {
        let y = labels(&f[k]);
        let model = LogReg::fit(&xtr, codes.dims, &y, Some(1.0), None, 100, 1e-4)?;
        et.push(auc(&model, &xtr, &f[k]));
        ee.push(auc(&model, &xte, &ft[k]));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(ModularityResult {
        score: mean(&per),
        per_code: per,
        explicitness_train: mean(&et),
        explicitness_test: mean(&ee),
    })
}
