//! Evaluation (docs/architecture.md): representations of any model family reduced to one scalar per latent unit,
//! and disentanglement metrics with disentanglement_lib's semantics. Every metric takes a ground-truth factor space and
//! a code per grid
//! index, so it can be checked on synthetic codes first.
//!
//! Sampling is seeded (ChaCha8); it does not
//! reproduce numpy's random stream, so numbers agree with the Python code in distribution, not draw for draw.
pub mod downstream;
pub mod fid;
pub mod gbt;
pub mod linear;
pub mod metrics;
pub mod model_eval;
pub mod report;
pub mod represent;

pub use downstream::{downstream, DownstreamResult};
pub use gbt::{Booster, GbtConfig};
pub use metrics::*;
pub use model_eval::{evaluate_model, evaluate_model_into, evaluate_representation, FidRequest, ModelEval, Units};
pub use report::{compare, compare_columns, evaluate, paper_results, EvalConfig, PaperRow, Report};

use crate::data::FactorSpace;

/// The distinct labels of `y`, sorted (the class order of every classifier here, as scikit-learn's `classes_`).
pub(crate) fn sorted_classes(y: &[i64]) -> Vec<i64> {
    let mut c = y.to_vec();
    c.sort_unstable();
    c.dedup();
    c
}

/// Index of the first largest value (ties go to the lowest index, as numpy's `argmax`).
pub(crate) fn argmax(v: &[f64]) -> usize {
    let mut b = 0;
    for (j, x) in v.iter().enumerate() {
        if *x > v[b] {
            b = j;
        }
    }
    b
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Row-wise softmax of row-major `[n, k]` scores.
pub(crate) fn softmax_rows(raw: &[f64], k: usize) -> Vec<f64> {
    let mut p = raw.to_vec();
    for row in p.chunks_mut(k) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row
            .iter_mut()
            .map(|v| {
                *v = (*v - m).exp();
                *v
            })
            .sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    p
}
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// One code vector per dataset index: `values[index * dims + j]`.
#[derive(Debug, Clone)]
pub struct Codes {
    pub values: Vec<f64>,
    pub dims: usize,
}

impl Codes {
    /// From a `[n, N]` tensor whose row i is the code of dataset index i. NaN or infinite codes are an error (the
    /// released code silently replaced NaN by 0; do that explicitly with `nan_to_num` if you want it).
    pub fn from_tensor(t: &Tensor, space: &FactorSpace) -> Result<Self> {
        let (n, d) = t.size2().map_err(|_| Error::Shape { got: t.size(), expected: "[n, N] codes".into() })?;
        if n as usize != space.len() {
            return Err(Error::Shape {
                got: t.size(),
                expected: format!("one code per grid index ({} rows)", space.len()),
            });
        }
        if t.isfinite().all().int64_value(&[]) == 0 {
            return Err(Error::config("codes", "contain NaN or infinite values"));
        }
        let values: Vec<f64> =
            Vec::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu).flatten(0, -1)).map_err(Error::Torch)?;
        Ok(Codes { values, dims: d as usize })
    }

    pub fn row(&self, index: usize) -> &[f64] {
        &self.values[index * self.dims..(index + 1) * self.dims]
    }
}

/// Reduce unit features `[n, N, D]` to one scalar per unit `[n, N]`: PCA with one component fitted on all rows of
/// each unit (centred, not whitened; the component's sign is arbitrary). NaN features become 0 first, as in the
/// released evaluation.
pub fn pca_codes(latents: &Tensor) -> Result<Tensor> {
    let (_, units, d) = latents
        .size3()
        .map_err(|_| Error::Shape { got: latents.size(), expected: "[n, N, D] unit features".into() })?;
    let x = latents.to_kind(Kind::Double).nan_to_num(0.0, 0.0, 0.0);
    let mut out = Vec::new();
    for u in 0..units {
        let xu = x.select(1, u);
        let c = &xu - xu.mean_dim(0, true, Kind::Double);
        let cov = c.transpose(0, 1).matmul(&c);
        let (_, vecs) = cov.linalg_eigh("L");
        let top = vecs.select(1, d - 1);
        out.push(c.matmul(&top));
    }
    Ok(Tensor::stack(&out, 1))
}
