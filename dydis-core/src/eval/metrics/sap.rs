//! SAP score (Kumar et al. 2018): per (code, factor) a linear SVM on the single code; the gap between the two
//! most predictive codes per factor.
use super::{gather, labels, SplitRows};
use crate::data::FactorSpace;
use crate::eval::linear::LinearSvc1d;
use crate::eval::Codes;
use crate::Result;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SapResult {
    pub score: f64,
    /// Test accuracy `[code][factor]`.
    pub matrix: Vec<Vec<f64>>,
}

/// SAP with disentanglement_lib's parameters (10,000 / 5,000 points, `LinearSVC(C=0.01, class_weight="balanced")`
/// on the raw code, discrete factors): mean over factors of top-1 minus top-2 test accuracy over codes.
pub fn sap(
    codes: &Codes,
    space: &FactorSpace,
    num_train: usize,
    num_test: usize,
    c_svm: f64,
    seed: u64,
) -> Result<SapResult> {
    sap_on(codes, space, &SplitRows::draw(space, num_train, num_test, seed), c_svm)
}

/// SAP on given training and test rows.
pub fn sap_on(codes: &Codes, space: &FactorSpace, plan: &SplitRows, c_svm: f64) -> Result<SapResult> {
    plan.validate(space, true)?;
    let (c, f) = gather(codes, space, &plan.train)?;
    let (ct, ft) = gather(codes, space, &plan.test)?;
    let nf = space.num_factors();
    let matrix: Vec<Vec<f64>> = (0..codes.dims)
        .into_par_iter()
        .map(|j| -> Result<Vec<f64>> {
            (0..nf)
                .map(|k| Ok(LinearSvc1d::fit(&c[j], &labels(&f[k]), c_svm)?.accuracy(&ct[j], &labels(&ft[k]))))
                .collect()
        })
        .collect::<Result<_>>()?;
    let score = (0..nf)
        .map(|k| {
            let mut col: Vec<f64> = matrix.iter().map(|r| r[k]).collect();
            col.sort_by(|a, b| b.total_cmp(a));
            col[0] - col.get(1).copied().unwrap_or(0.0)
        })
        .sum::<f64>()
        / nf as f64;
    Ok(SapResult { score, matrix })
}
