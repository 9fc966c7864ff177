//! FactorVAE score (Kim & Mnih 2018): batch 64, prune dims with std < 0.05, majority-vote classifier.
use super::{sample, var};
use crate::data::{FactorSampler, FactorSpace};
use crate::eval::Codes;
use crate::Result;
use rand::Rng;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct FactorVaeResult {
    pub train_accuracy: f64,
    pub eval_accuracy: f64,
    pub active_dims: Vec<usize>,
    pub votes_per_code: Vec<Vec<usize>>,
}

/// FactorVAE score: votes (argmin of normalised variance over active codes in a batch with one factor fixed) and
/// a majority-vote classifier from code to factor; accuracy on fresh votes. No active code gives 0 (as
/// disentanglement_lib does when every dimension collapsed).
pub fn factor_vae(
    codes: &Codes,
    space: &FactorSpace,
    batch: usize,
    num_train: usize,
    num_eval: usize,
    num_var: usize,
    seed: u64,
) -> Result<FactorVaeResult> {
    let mut s = FactorSampler::new(seed);
    let (c, _) = sample(codes, space, num_var, &mut s)?;
    let global: Vec<f64> = c.iter().map(|x| var(x)).collect();
    let active: Vec<usize> = (0..codes.dims).filter(|&j| global[j].sqrt() >= 0.05).collect();
    let nf = space.num_factors();
    if active.is_empty() {
        return Ok(FactorVaeResult {
            train_accuracy: 0.0,
            eval_accuracy: 0.0,
            active_dims: active,
            votes_per_code: vec![vec![0; nf]; codes.dims],
        });
    }
    let vote = |s: &mut FactorSampler| -> Result<(usize, usize)> {
        let factor = s.rng().random_range(0..nf);
        let class = s.rng().random_range(0..space.factor(factor).size());
        let idx = s.fixed_factor_indices(space, factor, class, batch)?;
        let best = active
            .iter()
            .map(|&j| {
                let col: Vec<f64> = idx.iter().map(|&i| codes.row(i)[j]).collect();
                (j, var(&col) / global[j])
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
            .unwrap();
        Ok((best, factor))
    };
    let mut train = vec![vec![0usize; nf]; codes.dims];
    for _ in 0..num_train {
        let (j, f) = vote(&mut s)?;
        train[j][f] += 1;
    }
    let classifier: Vec<usize> = train
        .iter()
        .map(|row| row.iter().enumerate().max_by_key(|(i, v)| (**v, usize::MAX - i)).map(|x| x.0).unwrap_or(0))
        .collect();
    let train_acc =
        train.iter().enumerate().map(|(j, row)| row[classifier[j]]).sum::<usize>() as f64 / num_train as f64;
    let mut eval = vec![vec![0usize; nf]; codes.dims];
    for _ in 0..num_eval {
        let (j, f) = vote(&mut s)?;
        eval[j][f] += 1;
    }
    let eval_acc = eval.iter().enumerate().map(|(j, row)| row[classifier[j]]).sum::<usize>() as f64 / num_eval as f64;
    Ok(FactorVaeResult {
        train_accuracy: train_acc,
        eval_accuracy: eval_acc,
        active_dims: active,
        votes_per_code: train,
    })
}
