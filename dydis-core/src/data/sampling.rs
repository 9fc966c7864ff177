//! Seeded sampling of factor combinations and shuffled batch iteration.
use super::{batch, classes, FactorSpace, GroundTruth};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use tch::{Device, Tensor};

/// The first `n` of `0..total` after a shuffle seeded with `seed` (all of them when `n ≥ total`): a seeded sample
/// without replacement, the same on every platform.
pub fn shuffled_subset(total: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..total).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    idx.truncate(n.min(total));
    idx
}

/// Draws factor combinations from a [`FactorSpace`]; identical draws for identical seeds on every platform.
pub struct FactorSampler {
    rng: ChaCha8Rng,
}

impl FactorSampler {
    pub fn new(seed: u64) -> Self {
        FactorSampler { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `n` combinations, each factor's class uniform and independent, as class rows.
    pub fn uniform_classes(&mut self, space: &FactorSpace, n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|_| space.factors().iter().map(|f| self.rng.random_range(0..f.size())).collect()).collect()
    }

    /// `n` flat indices drawn uniformly over the grid (with replacement).
    pub fn uniform_indices(&mut self, space: &FactorSpace, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.rng.random_range(0..space.len())).collect()
    }

    /// `n` flat indices whose factor `factor` is `class` and whose other factors are uniform: the batches of the
    /// FactorVAE score.
    pub fn fixed_factor_indices(
        &mut self,
        space: &FactorSpace,
        factor: usize,
        class: usize,
        n: usize,
    ) -> Result<Vec<usize>> {
        if factor >= space.num_factors() {
            return Err(Error::config("factor", format!("{factor} is out of range 0..{}", space.num_factors())));
        }
        if class >= space.factor(factor).size() {
            return Err(Error::config(
                "class",
                format!("{class} is out of range for factor '{}'", space.factor(factor).name),
            ));
        }
        self.uniform_classes(space, n)
            .into_iter()
            .map(|mut c| {
                c[factor] = class;
                space.index_of(&c)
            })
            .collect()
    }

    /// A random factor and class, then `n` indices with that factor fixed. Returns (factor, indices).
    pub fn random_fixed_factor(&mut self, space: &FactorSpace, n: usize) -> (usize, Vec<usize>) {
        let factor = self.rng.random_range(0..space.num_factors());
        let class = self.rng.random_range(0..space.factor(factor).size());
        let idx = self.fixed_factor_indices(space, factor, class, n).expect("in range by construction");
        (factor, idx)
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

/// One training batch: images `[B, C, H, W]` in [-1, 1], their factor classes `[B, F]` and dataset indices.
pub struct Batch {
    pub images: Tensor,
    pub classes: Tensor,
    pub indices: Vec<usize>,
}

/// Shuffled (seeded) pass over a dataset or a subset of its indices, in batches, decoded in parallel.
/// It shares ownership of the dataset, so it can live across notebook cells.
pub struct BatchIter {
    ds: Arc<dyn GroundTruth>,
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    device: Device,
}

impl BatchIter {
    /// One epoch over the whole dataset, shuffled with `seed`. The last batch may be smaller.
    pub fn epoch(ds: Arc<dyn GroundTruth>, batch_size: usize, seed: u64, device: Device) -> Result<Self> {
        let all = (0..ds.len()).collect();
        Self::over(ds, all, batch_size, Some(seed), device)
    }

    /// A pass over the given indices; shuffled when `seed` is given, in the given order otherwise.
    pub fn over(
        ds: Arc<dyn GroundTruth>,
        mut order: Vec<usize>,
        batch_size: usize,
        seed: Option<u64>,
        device: Device,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if let Some(&bad) = order.iter().find(|&&i| i >= ds.len()) {
            return Err(Error::config(
                "indices",
                format!("{bad} is out of range for {} ({} images)", ds.name(), ds.len()),
            ));
        }
        if let Some(seed) = seed {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        Ok(BatchIter { ds, order, batch_size, pos: 0, device })
    }

    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let indices = self.order[self.pos..end].to_vec();
        self.pos = end;
        Some((|| {
            let images = batch(self.ds.as_ref(), &indices, self.device)?;
            let classes = classes(self.ds.as_ref(), &indices)?.to_device(self.device);
            Ok(Batch { images, classes, indices })
        })())
    }
}
