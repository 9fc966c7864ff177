//! FactorVAE score (Kim & Mnih 2018): batch 64, prune dims with std < 0.05, majority-vote classifier.
use super::{var, FactorVaePlan, FixedFactorBatch};
use crate::data::FactorSpace;
use crate::eval::Codes;
use crate::Result;
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
    factor_vae_on(codes, space, &FactorVaePlan::draw(space, batch, num_train, num_eval, num_var, seed)?)
}

/// The FactorVAE score on a given plan.
pub fn factor_vae_on(codes: &Codes, space: &FactorSpace, plan: &FactorVaePlan) -> Result<FactorVaeResult> {
    plan.validate(space)?;
    let column = |rows: &[usize], j: usize| -> Vec<f64> { rows.iter().map(|&i| codes.row(i)[j]).collect() };
    let global: Vec<f64> = (0..codes.dims).map(|j| var(&column(&plan.variance_rows, j))).collect();
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
    // The first of equal ratios wins, as numpy's argmin.
    let vote = |b: &FixedFactorBatch| -> usize {
        let mut best = (active[0], f64::INFINITY);
        for &j in &active {
            let r = var(&column(&b.rows, j)) / global[j];
            if r < best.1 {
                best = (j, r);
            }
        }
        best.0
    };
    let tally = |votes: &[FixedFactorBatch]| -> Vec<Vec<usize>> {
        let mut t = vec![vec![0usize; nf]; codes.dims];
        votes.iter().for_each(|b| t[vote(b)][b.factor] += 1);
        t
    };
    let train = tally(&plan.train);
    let classifier: Vec<usize> = train
        .iter()
        .map(|row| row.iter().enumerate().max_by_key(|(i, v)| (**v, usize::MAX - i)).map(|x| x.0).unwrap_or(0))
        .collect();
    let accuracy = |t: &[Vec<usize>], n: usize| -> f64 {
        t.iter().enumerate().map(|(j, row)| row[classifier[j]]).sum::<usize>() as f64 / n as f64
    };
    let eval = tally(&plan.eval);
    Ok(FactorVaeResult {
        train_accuracy: accuracy(&train, plan.train.len()),
        eval_accuracy: accuracy(&eval, plan.eval.len()),
        active_dims: active,
        votes_per_code: train,
    })
}
