//! Sample plans: the grid rows a sampled metric evaluates. Each metric draws its plan from a seed (disentanglement_lib's
//! sampling scheme over dydis's own seeded stream) or takes one given, so that a plan dumped by another
//! implementation (disentanglement_lib itself, in the tests) can be replayed row for row.
use crate::data::{FactorSampler, FactorSpace};
use crate::{Error, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Training and test rows drawn uniformly over the grid (MIG has no test rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRows {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl SplitRows {
    /// `num_train` then `num_test` uniform rows from one seeded stream.
    pub fn draw(space: &FactorSpace, num_train: usize, num_test: usize, seed: u64) -> SplitRows {
        let mut s = FactorSampler::new(seed);
        let train = s.uniform_indices(space, num_train);
        let test = s.uniform_indices(space, num_test);
        SplitRows { train, test }
    }

    pub fn validate(&self, space: &FactorSpace, need_test: bool) -> Result<()> {
        if self.train.is_empty() {
            return Err(Error::config("sample plan", "has no training rows"));
        }
        if need_test && self.test.is_empty() {
            return Err(Error::config("sample plan", "has no test rows"));
        }
        check_rows(space, self.train.iter().chain(&self.test))
    }
}

/// One batch in which a single factor is held fixed (a FactorVAE vote).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedFactorBatch {
    pub factor: usize,
    pub rows: Vec<usize>,
}

/// The FactorVAE score's draws: rows for the global variances, then the training and evaluation votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorVaePlan {
    pub variance_rows: Vec<usize>,
    pub train: Vec<FixedFactorBatch>,
    pub eval: Vec<FixedFactorBatch>,
}

impl FactorVaePlan {
    pub fn draw(
        space: &FactorSpace,
        batch: usize,
        num_train: usize,
        num_eval: usize,
        num_var: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut s = FactorSampler::new(seed);
        let variance_rows = s.uniform_indices(space, num_var);
        let mut votes = |n: usize| -> Result<Vec<FixedFactorBatch>> {
            (0..n)
                .map(|_| {
                    let factor = s.rng().random_range(0..space.num_factors());
                    let class = s.rng().random_range(0..space.factor(factor).size());
                    Ok(FixedFactorBatch { factor, rows: s.fixed_factor_indices(space, factor, class, batch)? })
                })
                .collect()
        };
        let train = votes(num_train)?;
        let eval = votes(num_eval)?;
        Ok(FactorVaePlan { variance_rows, train, eval })
    }

    /// Rows in range, and in every vote the named factor really is fixed: a plan that breaks this would score a
    /// different metric.
    pub fn validate(&self, space: &FactorSpace) -> Result<()> {
        if self.variance_rows.len() < 2 || self.train.is_empty() || self.eval.is_empty() {
            return Err(Error::config(
                "FactorVAE sample plan",
                "needs at least two variance rows, one training vote and one evaluation vote",
            ));
        }
        check_rows(space, &self.variance_rows)?;
        for v in self.train.iter().chain(&self.eval) {
            if v.rows.len() < 2 {
                return Err(Error::config(
                    "FactorVAE sample plan",
                    format!("a vote has {} row(s); its variances need at least two", v.rows.len()),
                ));
            }
            check_fixed(space, v.factor, &v.rows, None)?;
        }
        Ok(())
    }
}

/// One β-VAE score point: two batches that share the value of `factor` row by row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBatches {
    pub factor: usize,
    pub rows1: Vec<usize>,
    pub rows2: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BetaVaePlan {
    pub train: Vec<PairedBatches>,
    pub eval: Vec<PairedBatches>,
}

impl BetaVaePlan {
    pub fn draw(space: &FactorSpace, batch: usize, num_train: usize, num_eval: usize, seed: u64) -> Result<Self> {
        let mut s = FactorSampler::new(seed);
        let mut points = |n: usize| -> Result<Vec<PairedBatches>> {
            (0..n)
                .map(|_| {
                    let factor = s.rng().random_range(0..space.num_factors());
                    let f1 = s.uniform_classes(space, batch);
                    let mut f2 = s.uniform_classes(space, batch);
                    f2.iter_mut().zip(&f1).for_each(|(b, a)| b[factor] = a[factor]);
                    let rows1 = f1.iter().map(|c| space.index_of(c)).collect::<Result<_>>()?;
                    let rows2 = f2.iter().map(|c| space.index_of(c)).collect::<Result<_>>()?;
                    Ok(PairedBatches { factor, rows1, rows2 })
                })
                .collect()
        };
        let train = points(num_train)?;
        let eval = points(num_eval)?;
        Ok(BetaVaePlan { train, eval })
    }

    pub fn validate(&self, space: &FactorSpace) -> Result<()> {
        if self.train.is_empty() || self.eval.is_empty() {
            return Err(Error::config("β-VAE sample plan", "needs at least one training and one evaluation point"));
        }
        for p in self.train.iter().chain(&self.eval) {
            if p.rows1.is_empty() || p.rows1.len() != p.rows2.len() {
                return Err(Error::config(
                    "β-VAE sample plan",
                    format!("a point has batches of {} and {} rows", p.rows1.len(), p.rows2.len()),
                ));
            }
            check_fixed(space, p.factor, &p.rows1, Some(&p.rows2))?;
        }
        Ok(())
    }
}

fn check_rows<'a>(space: &FactorSpace, rows: impl IntoIterator<Item = &'a usize>) -> Result<()> {
    match rows.into_iter().find(|&&r| r >= space.len()) {
        Some(r) => Err(Error::config("sample plan", format!("row {r} is outside the grid of {} rows", space.len()))),
        None => Ok(()),
    }
}

/// `factor` is constant over `rows` (FactorVAE), or equal row by row between `rows` and `other` (β-VAE).
fn check_fixed(space: &FactorSpace, factor: usize, rows: &[usize], other: Option<&[usize]>) -> Result<()> {
    if factor >= space.num_factors() {
        return Err(Error::config(
            "sample plan",
            format!("factor {factor} is out of range 0..{}", space.num_factors()),
        ));
    }
    check_rows(space, rows.iter().chain(other.unwrap_or_default()))?;
    let class = |r: usize| space.classes_of(r).map(|c| c[factor]);
    // Each row against its partner: the batch's first row (FactorVAE) or the other batch's row (β-VAE).
    for (i, &r) in rows.iter().enumerate() {
        let partner = other.map_or(rows[0], |o| o[i]);
        if class(r)? != class(partner)? {
            return Err(Error::config(
                "sample plan",
                format!("a batch said to fix factor '{}' does not hold it fixed", space.factor(factor).name),
            ));
        }
    }
    Ok(())
}
