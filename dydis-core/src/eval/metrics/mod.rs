//! The disentanglement metrics (disentanglement_lib semantics and defaults, docs/architecture.md), one module each,
//! and the helpers they share: seeded sampling of (code, factor) pairs, histogram discretisation, discrete mutual
//! information.
pub mod beta_vae;
pub mod content_tracking;
pub mod dci;
pub mod factor_vae;
pub mod infomec;
pub mod mig;
pub mod modularity;
pub mod plan;
pub mod sap;
pub mod tad;

use super::gbt::{Booster, GbtConfig};
use super::Codes;
use crate::data::{FactorSampler, FactorSpace};
use crate::Result;
pub use beta_vae::{beta_vae, beta_vae_on, BetaVaeResult};
pub use dci::{dci, dci_on, DciResult};
pub use factor_vae::{factor_vae, factor_vae_on, FactorVaeResult};
pub use infomec::{infomec, infomec_original, InfoMecResult};
pub use mig::{mig, mig_on, MigResult};
pub use modularity::{modularity, modularity_on, ModularityResult};
pub use plan::{BetaVaePlan, FactorVaePlan, FixedFactorBatch, PairedBatches, SplitRows};
pub use sap::{sap, sap_on, SapResult};
pub use tad::{tad, TadResult};

/// Equal-width histogram discretisation exactly as `np.digitize(x, np.histogram(x, bins)[1][:-1])`: bins 1..=bins.
/// The edges are numpy's (`linspace`: start + k·step), and a value counts the edges at or below it, so values on an
/// edge fall where numpy puts them.
pub fn discretise(x: &[f64], bins: usize) -> Vec<usize> {
    let lo = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    // numpy widens an empty range to [lo - 0.5, hi + 0.5].
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let step = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..bins).map(|k| k as f64 * step + lo).collect();
    x.iter().map(|&v| edges.partition_point(|&e| e <= v)).collect()
}

/// Mutual information (nats) of two discrete label vectors, as sklearn's `mutual_info_score`. Ordered maps: the sum
/// runs over the contingency table in row-major order (as scikit-learn's sparse table does) on every run, where a
/// hash map's random order changed the last bits from one run to the next.
pub fn mutual_info(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::BTreeMap;
    let n = a.len() as f64;
    let mut joint = BTreeMap::new();
    let mut pa = BTreeMap::new();
    let mut pb = BTreeMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_insert(0.0) += 1.0;
        *pa.entry(x).or_insert(0.0) += 1.0;
        *pb.entry(y).or_insert(0.0) += 1.0;
    }
    joint.iter().map(|(&(x, y), &c)| c / n * ((c * n) / (pa[&x] * pb[&y])).ln()).sum::<f64>().max(0.0)
}

pub fn entropy(a: &[usize]) -> f64 {
    mutual_info(a, a)
}

/// Per code dimension, its values over the sampled rows.
pub(crate) type CodeColumns = Vec<Vec<f64>>;
/// Per factor, its classes over the sampled rows.
pub(crate) type FactorColumns = Vec<Vec<usize>>;

/// `n` uniform samples: (codes, factor classes).
pub(crate) fn sample(
    codes: &Codes,
    space: &FactorSpace,
    n: usize,
    sampler: &mut FactorSampler,
) -> Result<(CodeColumns, FactorColumns)> {
    gather(codes, space, &sampler.uniform_indices(space, n))
}

/// The codes and factor classes of the given grid rows, as columns.
pub(crate) fn gather(codes: &Codes, space: &FactorSpace, idx: &[usize]) -> Result<(CodeColumns, FactorColumns)> {
    let n = idx.len();
    let mut c = vec![Vec::with_capacity(n); codes.dims];
    let mut f = vec![Vec::with_capacity(n); space.num_factors()];
    for &i in idx {
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
pub(crate) fn mi_matrix(c: &[Vec<f64>], f: &[Vec<usize>], bins: usize) -> Vec<Vec<f64>> {
    c.iter()
        .map(|cj| {
            let d = discretise(cj, bins);
            f.iter().map(|fk| mutual_info(&d, fk)).collect()
        })
        .collect()
}

pub(crate) fn var(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)
}

/// Per-dimension columns to row-major rows.
pub(crate) fn rows(c: &[Vec<f64>]) -> Vec<f64> {
    let n = c.first().map_or(0, Vec::len);
    (0..n).flat_map(|i| c.iter().map(move |col| col[i])).collect()
}

pub(crate) fn labels(f: &[usize]) -> Vec<i64> {
    f.iter().map(|&v| v as i64).collect()
}

/// One booster per factor on row-major `x` (`dims` per row), fitted in parallel; factor k's tie-breaking seed is
/// `gbt.seed + k` (DCI and the downstream task).
pub(crate) fn boosters(x: &[f64], dims: usize, factors: &[Vec<usize>], gbt: &GbtConfig) -> Result<Vec<Booster>> {
    use rayon::prelude::*;
    factors
        .par_iter()
        .enumerate()
        .map(|(k, f)| {
            Booster::fit(x, dims, &labels(f), &GbtConfig { seed: gbt.seed.wrapping_add(k as u64), ..gbt.clone() })
        })
        .collect()
}

/// Mean and population standard deviation; a constant column gets scale 1 (scikit-learn's `StandardScaler`).
pub(crate) fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
    (m, if sd < 10.0 * f64::EPSILON { 1.0 } else { sd })
}

/// The digamma function ψ (recurrence up to x ≥ 6, then the asymptotic series).
pub fn digamma(mut x: f64) -> f64 {
    let mut r = 0.0;
    while x < 6.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    r + x.ln() - 0.5 / x - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}
