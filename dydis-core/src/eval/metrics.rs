//! MIG, FactorVAE score and Modularity (disentanglement_lib semantics, reference-spec §7.2).
use super::Codes;
use crate::data::{FactorSampler, FactorSpace};
use crate::display::{impl_show_via, Table};
use crate::{Error, Result};
use rand::Rng;
use serde::Serialize;

/// Equal-width histogram discretisation as `np.digitize(x, np.histogram(x, bins)[1][:-1])`: bins 1..=bins.
fn discretise(x: &[f64], bins: usize) -> Vec<usize> {
    let lo = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    // numpy widens an empty range to [lo - 0.5, hi + 0.5].
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let w = (hi - lo) / bins as f64;
    x.iter().map(|&v| (((v - lo) / w).floor() as usize + 1).clamp(1, bins)).collect()
}

/// Mutual information (nats) of two discrete label vectors, as sklearn's `mutual_info_score`.
pub fn mutual_info(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len() as f64;
    let mut joint = std::collections::HashMap::new();
    let mut pa = std::collections::HashMap::new();
    let mut pb = std::collections::HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_insert(0.0) += 1.0;
        *pa.entry(x).or_insert(0.0) += 1.0;
        *pb.entry(y).or_insert(0.0) += 1.0;
    }
    joint.iter().map(|(&(x, y), &c)| c / n * ((c * n) / (pa[&x] * pb[&y])).ln()).sum::<f64>().max(0.0)
}

fn entropy(a: &[usize]) -> f64 {
    mutual_info(a, a)
}

/// `n` uniform samples: (codes, factor classes).
fn sample(codes: &Codes, space: &FactorSpace, n: usize, sampler: &mut FactorSampler) -> Result<(Vec<Vec<f64>>, Vec<Vec<usize>>)> {
    let idx = sampler.uniform_indices(space, n);
    let mut c = vec![Vec::with_capacity(n); codes.dims];
    let mut f = vec![Vec::with_capacity(n); space.num_factors()];
    for &i in &idx {
        for (j, v) in codes.row(i).iter().enumerate() {
            c[j].push(*v);
        }
        for (k, v) in space.classes_of(i)?.into_iter().enumerate() {
            f[k].push(v);
        }
    }
    Ok((c, f))
}

/// Mutual information matrix `[codes][factors]` of discretised codes.
fn mi_matrix(c: &[Vec<f64>], f: &[Vec<usize>], bins: usize) -> Vec<Vec<f64>> {
    c.iter().map(|cj| {
        let d = discretise(cj, bins);
        f.iter().map(|fk| mutual_info(&d, fk)).collect()
    }).collect()
}

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
    if codes.dims < 2 {
        return Err(Error::config("codes", "MIG needs at least two code dimensions"));
    }
    let mut s = FactorSampler::new(seed);
    let (c, f) = sample(codes, space, num_train, &mut s)?;
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

#[derive(Debug, Clone, Serialize)]
pub struct FactorVaeResult {
    pub train_accuracy: f64,
    pub eval_accuracy: f64,
    pub active_dims: Vec<usize>,
    pub votes_per_code: Vec<Vec<usize>>,
}

fn var(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)
}

/// FactorVAE score: votes (argmin of normalised variance over active codes in a batch with one factor fixed) and
/// a majority-vote classifier from code to factor; accuracy on fresh votes. No active code gives 0 (as
/// disentanglement_lib does when every dimension collapsed).
pub fn factor_vae(codes: &Codes, space: &FactorSpace, batch: usize, num_train: usize, num_eval: usize, num_var: usize, seed: u64) -> Result<FactorVaeResult> {
    let mut s = FactorSampler::new(seed);
    let (c, _) = sample(codes, space, num_var, &mut s)?;
    let global: Vec<f64> = c.iter().map(|x| var(x)).collect();
    let active: Vec<usize> = (0..codes.dims).filter(|&j| global[j].sqrt() >= 0.05).collect();
    let nf = space.num_factors();
    if active.is_empty() {
        return Ok(FactorVaeResult { train_accuracy: 0.0, eval_accuracy: 0.0, active_dims: active, votes_per_code: vec![vec![0; nf]; codes.dims] });
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
    let classifier: Vec<usize> = train.iter().map(|row| row.iter().enumerate().max_by_key(|(i, v)| (**v, usize::MAX - i)).map(|x| x.0).unwrap_or(0)).collect();
    let train_acc = train.iter().enumerate().map(|(j, row)| row[classifier[j]]).sum::<usize>() as f64 / num_train as f64;
    let mut eval = vec![vec![0usize; nf]; codes.dims];
    for _ in 0..num_eval {
        let (j, f) = vote(&mut s)?;
        eval[j][f] += 1;
    }
    let eval_acc = eval.iter().enumerate().map(|(j, row)| row[classifier[j]]).sum::<usize>() as f64 / num_eval as f64;
    Ok(FactorVaeResult { train_accuracy: train_acc, eval_accuracy: eval_acc, active_dims: active, votes_per_code: train })
}

#[derive(Debug, Clone, Serialize)]
pub struct ModularityResult {
    pub score: f64,
    pub per_code: Vec<f64>,
}

/// Modularity (Ridgeway & Mozer): per code 1 − (Σ_f m² − max m²)/(max m² (F − 1)) over its MI with the factors
/// (0 when the code shares no information with any factor), averaged over codes.
pub fn modularity(codes: &Codes, space: &FactorSpace, num_train: usize, bins: usize, seed: u64) -> Result<ModularityResult> {
    let nf = space.num_factors();
    if nf < 2 {
        return Err(Error::config("factors", "modularity needs at least two factors"));
    }
    let mut s = FactorSampler::new(seed);
    let (c, f) = sample(codes, space, num_train, &mut s)?;
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
    Ok(ModularityResult { score: per.iter().sum::<f64>() / per.len() as f64, per_code: per })
}

/// The three scores side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub factor_vae: FactorVaeResult,
    pub mig: MigResult,
    pub modularity: ModularityResult,
}

impl Scores {
    pub fn table(&self) -> Table {
        Table::new(["metric", "score"])
            .with_title("disentanglement")
            .row(["FactorVAE score".to_string(), format!("{:.3}", self.factor_vae.eval_accuracy)])
            .row(["MIG".to_string(), format!("{:.3}", self.mig.score)])
            .row(["Modularity".to_string(), format!("{:.3}", self.modularity.score)])
    }
}

impl_show_via!(Scores, table);
