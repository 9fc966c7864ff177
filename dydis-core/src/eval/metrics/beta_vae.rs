//! β-VAE score (Higgins et al. 2017): for a random factor held fixed, the mean absolute difference of the codes of
//! two batches of 64 that share it; a logistic regression predicts the factor from that feature.
use crate::data::{FactorSampler, FactorSpace};
use crate::eval::linear::LogReg;
use crate::eval::Codes;
use crate::Result;
use rand::Rng;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BetaVaeResult {
    pub train_accuracy: f64,
    pub eval_accuracy: f64,
}

fn point(codes: &Codes, space: &FactorSpace, batch: usize, s: &mut FactorSampler) -> Result<(Vec<f64>, i64)> {
    let index = s.rng().random_range(0..space.num_factors());
    let f1 = s.uniform_classes(space, batch);
    let mut f2 = s.uniform_classes(space, batch);
    let mut feat = vec![0.0; codes.dims];
    for (a, b) in f1.iter().zip(f2.iter_mut()) {
        b[index] = a[index];
        let (ra, rb) = (codes.row(space.index_of(a)?), codes.row(space.index_of(b)?));
        feat.iter_mut().zip(ra.iter().zip(rb)).for_each(|(f, (x, y))| *f += (x - y).abs() / batch as f64);
    }
    Ok((feat, index as i64))
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
    let mut s = FactorSampler::new(seed);
    let mut draw = |n: usize| -> Result<(Vec<f64>, Vec<i64>)> {
        let mut x = Vec::with_capacity(n * codes.dims);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let (f, l) = point(codes, space, batch, &mut s)?;
            x.extend(f);
            y.push(l);
        }
        Ok((x, y))
    };
    let (xtr, ytr) = draw(num_train)?;
    let (xev, yev) = draw(num_eval)?;
    let model = LogReg::fit(&xtr, codes.dims, &ytr, Some(1.0), None, 100, 1e-4)?;
    Ok(BetaVaeResult { train_accuracy: model.accuracy(&xtr, &ytr), eval_accuracy: model.accuracy(&xev, &yev) })
}
