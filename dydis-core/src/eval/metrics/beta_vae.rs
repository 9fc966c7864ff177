//! β-VAE score (Higgins et al. 2017): for a random factor held fixed, the mean absolute difference of the codes of
//! two batches of 64 that share it; a logistic regression predicts the factor from that feature.
use super::{BetaVaePlan, PairedBatches};
use crate::data::FactorSpace;
use crate::eval::linear::LogReg;
use crate::eval::Codes;
use crate::Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BetaVaeResult {
    pub train_accuracy: f64,
    pub eval_accuracy: f64,
}

/// β-VAE score with disentanglement_lib's parameters (batch 64, 10,000 training and 5,000 evaluation points):
/// `LogisticRegression()` (L2, C = 1) on the raw features.
pub fn beta_vae(
    codes: &Codes,
    space: &FactorSpace,
    batch: usize,
    num_train: usize,
    num_eval: usize,
    seed: u64,
) -> Result<BetaVaeResult> {
    beta_vae_on(codes, space, &BetaVaePlan::draw(space, batch, num_train, num_eval, seed)?)
}

/// The β-VAE score on a given plan.
pub fn beta_vae_on(codes: &Codes, space: &FactorSpace, plan: &BetaVaePlan) -> Result<BetaVaeResult> {
    plan.validate(space)?;
    let features = |points: &[PairedBatches]| -> (Vec<f64>, Vec<i64>) {
        let mut x = Vec::with_capacity(points.len() * codes.dims);
        for p in points {
            let n = p.rows1.len() as f64;
            let mut feat = vec![0.0; codes.dims];
            for (&a, &b) in p.rows1.iter().zip(&p.rows2) {
                let (ra, rb) = (codes.row(a), codes.row(b));
                feat.iter_mut().zip(ra.iter().zip(rb)).for_each(|(f, (x, y))| *f += (x - y).abs());
            }
            x.extend(feat.iter().map(|v| v / n));
        }
        (x, points.iter().map(|p| p.factor as i64).collect())
    };
    let (xtr, ytr) = features(&plan.train);
    let (xev, yev) = features(&plan.eval);
    let model = LogReg::fit(&xtr, codes.dims, &ytr, Some(1.0), None, 100, 1e-4)?;
    Ok(BetaVaeResult { train_accuracy: model.accuracy(&xtr, &ytr), eval_accuracy: model.accuracy(&xev, &yev) })
}
