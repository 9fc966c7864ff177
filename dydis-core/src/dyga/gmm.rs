//! Gaussian mixtures on tensors, batched over components: full-covariance EM and the HDDC subspace model of
//! Bouveyron et al. (2007), [a_kj b_k Q_k d_k]: per component the d_k leading eigen-directions keep their
//! eigenvalues, the remaining D − d_k are tied to one value b_k. Works on any device and float kind.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which covariance model the E-step uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CovModel {
    /// A full covariance per component (what the released code's E-step uses).
    Full,
    /// HDDC: `dims` = "cattell" (scree test with `threshold` × the largest eigenvalue gap) or a fixed d.
    Hddc {
        #[serde(default)]
        fixed_dim: Option<i64>,
        #[serde(default = "default_cattell")]
        threshold: f64,
    },
}

fn default_cattell() -> f64 {
    0.2
}

impl Default for CovModel {
    fn default() -> Self {
        CovModel::Hddc { fixed_dim: None, threshold: 0.2 }
    }
}

/// A mixture: weights `[K]`, means `[K, D]`, covariances `[K, D, D]` (for HDDC: the model covariance
/// Q diag(a_1..a_d, b, …, b) Qᵀ), and per component the intrinsic dimension d_k (D for the full model).
#[derive(Debug)]
pub struct Mixture {
    pub weights: Tensor,
    pub means: Tensor,
    pub covs: Tensor,
    pub dims: Vec<i64>,
}

impl Clone for Mixture {
    fn clone(&self) -> Self {
        Mixture {
            weights: self.weights.copy(),
            means: self.means.copy(),
            covs: self.covs.copy(),
            dims: self.dims.clone(),
        }
    }
}

/// The eigen-decomposition of HDDC model covariances as the M-step built them (float64): per component the
/// eigenvalues in descending order (d_k leading ones, then b_k repeated) and the eigenvectors `[K, D, D]` in the same
/// order. EM hands it from each M-step to the next E-step, which then needs no eigen-decomposition of its own.
struct Spectrum {
    values: Vec<f64>,
    vectors: Tensor,
}

/// EM settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmOptions {
    pub max_iter: usize,
    /// Stop when the mean log-likelihood improves by less than this (None: always `max_iter` iterations).
    pub tol: Option<f64>,
    /// Added to every covariance diagonal in the M-step (the covariance floor).
    pub reg: f64,
    pub model: CovModel,
}

/// What an EM run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmTrace {
    /// Mean log-likelihood of each iteration's E-step (under the parameters before that iteration's M-step).
    pub log_likelihood: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    /// Components dropped because they lost all their mass.
    pub dropped: usize,
    /// For each component of the fitted mixture, its index in the mixture EM started from (so that whatever
    /// identifies a component, such as an anchor id, stays with it when others are dropped).
    #[serde(default)]
    pub kept: Vec<usize>,
}

/// Elements per chunk of `[k, n, D]` intermediates (bounds memory for large n and K).
const CHUNK_ELEMS: i64 = 1 << 19;

/// Responsibilities at or below this are left out of a component's scatter matrix in the M-step.
const RESP_FLOOR: f64 = 1e-12;

impl Mixture {
    pub fn k(&self) -> i64 {
        self.weights.size()[0]
    }

    pub fn dim(&self) -> i64 {
        self.means.size()[1]
    }

    /// Select components by index (in the given order).
    pub fn select(&self, idx: &[i64]) -> Mixture {
        let t = Tensor::from_slice(idx).to_device(self.weights.device());
        Mixture {
            weights: self.weights.index_select(0, &t),
            means: self.means.index_select(0, &t),
            covs: self.covs.index_select(0, &t),
            dims: idx.iter().map(|&i| self.dims[i as usize]).collect(),
        }
    }

    /// Renormalise the weights to sum to one.
    pub fn normalise_weights(&mut self) {
        self.weights = &self.weights / self.weights.sum(self.weights.kind());
    }

    /// Lower Cholesky factors of the covariances; a component that is not numerically positive definite gets
    /// growing jitter (up to 5 tries) before it is reported.
    pub fn cholesky(&self) -> Result<Tensor> {
        let d = self.dim();
        let eye = Tensor::eye(d, (self.covs.kind(), self.covs.device()));
        let scale =
            self.covs.diagonal(0, -2, -1).mean_dim(-1, true, self.covs.kind()).abs().clamp_min(1e-12).unsqueeze(-1);
        let mut covs = self.covs.shallow_clone();
        for attempt in 0..6 {
            let (l, info) = covs.linalg_cholesky_ex(false, false);
            let bad: Vec<i64> = Vec::<i64>::try_from(
                info.to_kind(Kind::Int64).to_device(tch::Device::Cpu).gt(0).nonzero().flatten(0, -1),
            )
            .unwrap_or_default();
            if bad.is_empty() && l.isfinite().all().int64_value(&[]) == 1 {
                return Ok(l);
            }
            if attempt == 5 {
                return Err(Error::config(
                    "dyga",
                    format!("covariance of component(s) {bad:?} is not positive definite even with jitter"),
                ));
            }
            let jitter = 10f64.powi(attempt - 6);
            covs = &self.covs + &scale * &eye * jitter;
        }
        unreachable!()
    }

    /// Per-sample, per-component log π_k + log N(x | μ_k, Σ_k): `[n, K]`. Components in the HDDC family (d_k < D)
    /// are evaluated through their subspace form, in O(D·(d_k + 1)) per sample instead of O(D²).
    pub fn log_joint(&self, x: &Tensor) -> Result<Tensor> {
        self.log_joint_with(x, None)
    }

    /// `log_joint`, with the HDDC covariances' eigen-decomposition when the caller already has it.
    fn log_joint_with(&self, x: &Tensor, spectrum: Option<&Spectrum>) -> Result<Tensor> {
        let x = &x.to_kind(self.means.kind());
        let (_, d) = x.size2().map_err(|_| Error::Shape { got: x.size(), expected: "[n, D] features".into() })?;
        if d != self.dim() {
            return Err(Error::Shape { got: x.size(), expected: format!("[n, {}] features", self.dim()) });
        }
        if !self.dims.is_empty() && self.dims.iter().all(|&dk| dk < d) {
            return self.log_joint_subspace(x, spectrum);
        }
        self.log_joint_full(x)
    }

    /// The full-covariance log π_k + log N(x | μ_k, Σ_k), whatever the covariance model.
    pub fn log_joint_full(&self, x: &Tensor) -> Result<Tensor> {
        let x = &x.to_kind(self.means.kind());
        let (n, d) = x.size2().map_err(|_| Error::Shape { got: x.size(), expected: "[n, D] features".into() })?;
        let l = self.cholesky()?;
        let logdet = l.diagonal(0, -2, -1).log().sum_dim_intlist(-1, false, x.kind()) * 2.0;
        let k = self.k();
        // ||L⁻¹(x − μ)||² = ||xᵀA − μᵀA||² with A = L⁻ᵀ: one GEMM against all components' A side by side.
        let eye = Tensor::eye(d, (x.kind(), x.device())).unsqueeze(0).expand([k, d, d], false);
        let a = l.linalg_solve_triangular(&eye, false, true, false).transpose(1, 2); // [K, D, D] = L⁻ᵀ
        let w = a.permute([1, 0, 2]).reshape([d, k * d]);
        let b = self.means.unsqueeze(1).bmm(&a).reshape([1, k * d]);
        let rows = (CHUNK_ELEMS / (k * d).max(1)).clamp(1, n.max(1));
        let mut parts = Vec::new();
        let mut s = 0;
        while s < n {
            let e = (s + rows).min(n);
            let z = x.slice(0, s, e, 1).matmul(&w) - &b;
            parts.push(z.square().view([e - s, k, d]).sum_dim_intlist(-1, false, x.kind()).transpose(0, 1)); // [K, m]
            s = e;
        }
        let maha = Tensor::cat(&parts, 1);
        let c = d as f64 * (2.0 * std::f64::consts::PI).ln();
        let lp = (maha + logdet.unsqueeze(1) + c) * -0.5 + self.weights.log().unsqueeze(1);
        Ok(lp.transpose(0, 1))
    }

    /// HDDC log-densities (Bouveyron et al. 2007, the cost function of their E-step): with Σ_k = Q diag(a_1..a_dk,
    /// b, …, b) Qᵀ, (x−μ)ᵀΣ⁻¹(x−μ) = ‖x−μ‖²/b + Σ_{j≤d_k} (1/a_j − 1/b)(q_jᵀ(x−μ))² and log|Σ| = Σ log a_j +
    /// (D − d_k) log b. The distances are computed in f64 (‖x‖² − 2xᵀμ + ‖μ‖² cancels when b is small).
    fn log_joint_subspace(&self, x: &Tensor, spectrum: Option<&Spectrum>) -> Result<Tensor> {
        let (n, d) = x.size2()?;
        let k = self.k();
        let dmax = *self.dims.iter().max().unwrap_or(&1);
        let computed;
        let spec = match spectrum {
            Some(s) => s,
            None => {
                let (evals, evecs) = self.covs.to_kind(Kind::Double).linalg_eigh("L");
                let values =
                    Vec::try_from(evals.flip([-1]).to_device(tch::Device::Cpu).flatten(0, -1)).map_err(Error::Torch)?;
                computed = Spectrum { values, vectors: evecs.flip([-1]) };
                &computed
            }
        };
        let q = spec.vectors.narrow(2, 0, dmax); // [K, D, dmax], leading directions first
        let evs = &spec.values;
        // a_j ≥ b (b is the mean of the trailing eigenvalues), so 1/a_j − 1/b = −s_j² with s_j = √(1/b − 1/a_j):
        // the subspace term is −‖S Qᵀ(x − μ)‖², one GEMM against every component's scaled directions side by side.
        let mut scale = vec![0.0; (k * dmax) as usize];
        let mut inv_b = Vec::with_capacity(k as usize);
        let mut logdet = Vec::with_capacity(k as usize);
        for (c, comp) in evs.chunks(d as usize).enumerate() {
            let dk = self.dims[c] as usize;
            let rest = &comp[dk..];
            let b = (rest.iter().sum::<f64>() / rest.len() as f64).max(f64::MIN_POSITIVE);
            if comp[..dk].iter().any(|&a| a.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)) {
                return Err(Error::config(
                    "dyga",
                    format!("covariance of component {c} has a non-positive leading eigenvalue"),
                ));
            }
            for (j, &a) in comp[..dk].iter().enumerate() {
                scale[c * dmax as usize + j] = (1.0 / b - 1.0 / a).max(0.0).sqrt();
            }
            inv_b.push(1.0 / b);
            logdet.push(comp[..dk].iter().map(|a| a.ln()).sum::<f64>() + (d as usize - dk) as f64 * b.ln());
        }
        let dev = x.device();
        let t = |v: &[f64]| Tensor::from_slice(v).to_device(dev);
        let mu = self.means.to_kind(Kind::Double);
        let mu_sq = mu.square().sum_dim_intlist(1, false, Kind::Double).unsqueeze(0);
        let qs = q * t(&scale).view([k, 1, dmax]);
        let qf = qs.permute([1, 0, 2]).reshape([d, k * dmax]);
        let shift = mu.unsqueeze(1).bmm(&qs).reshape([1, k * dmax]);
        let c = d as f64 * (2.0 * std::f64::consts::PI).ln();
        let inv_b = t(&inv_b).unsqueeze(0);
        let offset = (t(&logdet).unsqueeze(0) + c) * -0.5 + self.weights.to_kind(Kind::Double).log().unsqueeze(0);
        // In row chunks: whole-row intermediates ([n, K·d_max] in f64) outgrow the allocator's reuse threshold at
        // 100,000 rows and every E-step paid for fresh pages (a third of a unit's fit time in perf).
        let rows = (CHUNK_ELEMS / (k * dmax.max(1)).max(1)).clamp(1, n.max(1));
        let mut parts = Vec::new();
        let mut s = 0;
        while s < n {
            let e = (s + rows).min(n);
            let x64 = x.slice(0, s, e, 1).to_kind(Kind::Double);
            let sq = (x64.square().sum_dim_intlist(1, true, Kind::Double) - x64.matmul(&mu.tr()) * 2.0 + &mu_sq)
                .clamp_min(0.0);
            let proj =
                (x64.matmul(&qf) - &shift).square().view([e - s, k, dmax]).sum_dim_intlist(-1, false, Kind::Double);
            let maha = sq * &inv_b - proj;
            parts.push((maha * -0.5 + &offset).to_kind(self.means.kind()));
            s = e;
        }
        Ok(Tensor::cat(&parts, 0))
    }

    /// E-step: responsibilities `[n, K]` and the mean log-likelihood.
    pub fn e_step(&self, x: &Tensor) -> Result<(Tensor, f64)> {
        self.e_step_spectral(x, None)
    }

    fn e_step_spectral(&self, x: &Tensor, spectrum: Option<&Spectrum>) -> Result<(Tensor, f64)> {
        let lj = self.log_joint_with(x, spectrum)?;
        // log Σ_k exp(l_k) = m + log Σ_k exp(l_k − m), with one exp for both the sum and the responsibilities.
        // Terms below exp(−cut) of the largest are set to zero instead of being evaluated: they are far below the
        // kind's epsilon next to it, and MKL's exp takes a slow path for every underflowing argument (10x slower in
        // perf on these shapes).
        let m = lj.amax([1], true);
        let d = &lj - &m;
        let cut = if lj.kind() == Kind::Double { 700.0 } else { 80.0 };
        let e = d.clamp_min(-cut).exp().masked_fill(&d.le(-cut), 0.0);
        let s = e.sum_dim_intlist(1, true, e.kind());
        let ll = (s.log() + &m).mean(Kind::Double).double_value(&[]);
        if !ll.is_finite() {
            return Err(Error::failed("EM", format!("the mixture's log-likelihood is {ll}")));
        }
        Ok((e / s, ll))
    }

    /// Hard assignment: argmax of the posterior `[n]`.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.log_joint(x)?.argmax(1, false))
    }

    /// M-step from responsibilities (weights N_k / n, means, covariances + `reg`·I, then the HDDC projection).
    pub fn m_step(x: &Tensor, resp: &Tensor, reg: f64, model: &CovModel) -> Result<Mixture> {
        Self::m_step_dims(x, resp, reg, model, None)
    }

    /// M-step; for HDDC, `dims` fixes each component's d_k instead of choosing it afresh.
    pub fn m_step_dims(x: &Tensor, resp: &Tensor, reg: f64, model: &CovModel, dims: Option<&[i64]>) -> Result<Mixture> {
        Ok(Self::m_step_spectral(x, resp, reg, model, dims)?.0)
    }

    fn m_step_spectral(
        x: &Tensor,
        resp: &Tensor,
        reg: f64,
        model: &CovModel,
        dims: Option<&[i64]>,
    ) -> Result<(Mixture, Option<Spectrum>)> {
        let (n, d) = x.size2().unwrap();
        let nk = resp.sum_dim_intlist(0, false, x.kind()) + 10.0 * f64::EPSILON;
        let means = resp.transpose(0, 1).matmul(x) / nk.unsqueeze(1);
        let k = nk.size()[0];
        // Responsibilities are mostly zero far from a component: when they are, Σ_k = Σ_n r_nk (x−μ_k)(x−μ_k)ᵀ / N_k
        // is summed over the rows with r_nk > RESP_FLOOR only (a row below it would move Σ_k by less than 1e-12 of a
        // unit-scale entry), one GEMM per component: O(Σ_k n_k D²) instead of O(n K D²).
        let support = resp.gt(RESP_FLOOR);
        let total = support.sum(Kind::Int64).int64_value(&[]);
        let c = if k > 1 && total * 3 < n * k {
            let mut covs = Vec::with_capacity(k as usize);
            for c in 0..k {
                let rows = support.select(1, c).nonzero().flatten(0, -1);
                let xs = x.index_select(0, &rows) - means.get(c).unsqueeze(0);
                let w = resp.select(1, c).index_select(0, &rows).unsqueeze(1);
                covs.push((&xs * w).transpose(0, 1).matmul(&xs));
            }
            Tensor::stack(&covs, 0) / nk.view([-1, 1, 1])
        } else {
            // Σ_k = Σ_n r_nk (x − μ_k)(x − μ_k)ᵀ / N_k over row chunks, one batched GEMM per chunk. Centred first:
            // the shortcut Σ r x xᵀ / N_k − μ_k μ_kᵀ cancels catastrophically in float32 when a component's spread is
            // small next to its distance from the origin (features of the released code's [−1, 0] normalisation,
            // constant in some dimensions, gave covariances that were not positive definite).
            let rows = (CHUNK_ELEMS / (k * d).max(1)).clamp(1, n.max(1));
            let mut acc = Tensor::zeros([k, d, d], (x.kind(), x.device()));
            let mut s = 0;
            while s < n {
                let e = (s + rows).min(n);
                let xc = x.slice(0, s, e, 1).unsqueeze(0) - means.unsqueeze(1); // [K, m, D]
                let w = resp.slice(0, s, e, 1).transpose(0, 1).unsqueeze(-1); // [K, m, 1]
                acc += (&xc * w).transpose(1, 2).bmm(&xc);
                s = e;
            }
            acc / nk.view([-1, 1, 1])
        };
        let eye = Tensor::eye(d, (x.kind(), x.device()));
        let covs = (&c + c.transpose(1, 2)) * 0.5 + eye * reg;
        let weights = &nk / n as f64;
        let mut m = Mixture { weights, means, covs, dims: vec![d; k as usize] };
        let spectrum = match model {
            CovModel::Hddc { fixed_dim, threshold } => Some(m.project_hddc_dims(*fixed_dim, *threshold, dims)?),
            CovModel::Full => None,
        };
        Ok((m, spectrum))
    }

    /// Replace each covariance by its HDDC model: keep the d_k leading eigenvalues, tie the rest to their mean.
    pub fn project_hddc(&mut self, fixed_dim: Option<i64>, threshold: f64) -> Result<()> {
        self.project_hddc_dims(fixed_dim, threshold, None).map(|_| ())
    }

    /// The projection, returning the model covariances' eigen-decomposition in float64.
    fn project_hddc_dims(&mut self, fixed_dim: Option<i64>, threshold: f64, given: Option<&[i64]>) -> Result<Spectrum> {
        let d = self.dim();
        let (evals, evecs) = self.covs.to_kind(Kind::Double).linalg_eigh("L"); // ascending
        let ev = evals.flip([-1]); // descending
        let q = evecs.flip([-1]);
        let evs: Vec<f64> =
            Vec::<f64>::try_from(ev.to_device(tch::Device::Cpu).flatten(0, -1)).map_err(Error::Torch)?;
        let mut dims = Vec::new();
        let mut newv = Vec::with_capacity(evs.len());
        for (k, comp) in evs.chunks(d as usize).enumerate() {
            let dk = match (given, fixed_dim) {
                (_, Some(f)) => f.clamp(1, d - 1),
                (Some(g), None) => cattell(comp, threshold).max(g[k]).clamp(1, d - 1),
                (None, None) => cattell(comp, threshold),
            };
            let rest = &comp[dk as usize..];
            let b = (rest.iter().sum::<f64>() / rest.len() as f64).max(comp[0] * 1e-12).max(f64::MIN_POSITIVE);
            newv.extend(comp.iter().enumerate().map(|(j, &a)| if (j as i64) < dk { a } else { b }));
            dims.push(dk);
        }
        let v = Tensor::from_slice(&newv).view([-1, d]).to_device(self.covs.device());
        let covs = (&q * v.unsqueeze(1)).matmul(&q.transpose(-2, -1));
        self.covs = ((&covs + covs.transpose(-2, -1)) * 0.5).to_kind(self.covs.kind());
        self.dims = dims;
        Ok(Spectrum { values: newv, vectors: q })
    }

    /// EM from this mixture. Components whose mass falls below one sample are dropped (and counted). With HDDC
    /// and Cattell's test, d_k is chosen at the first M-step and may only grow after it (the larger model nests the
    /// smaller), so the likelihood never decreases from the second iteration on.
    pub fn em(mut self, x: &Tensor, opt: &EmOptions) -> Result<(Mixture, EmTrace)> {
        let mut trace = EmTrace::default();
        let mut survivors: Vec<usize> = (0..self.k() as usize).collect();
        let mut prev = f64::NEG_INFINITY;
        let mut spectrum: Option<Spectrum> = None;
        for _ in 0..opt.max_iter {
            let (resp, ll) = self.e_step_spectral(x, spectrum.as_ref())?;
            trace.log_likelihood.push(ll);
            trace.iterations += 1;
            let mass: Vec<f64> =
                Vec::<f64>::try_from(resp.sum_dim_intlist(0, false, Kind::Double).to_device(tch::Device::Cpu))
                    .map_err(Error::Torch)?;
            let keep: Vec<i64> = (0..mass.len() as i64).filter(|&k| mass[k as usize] >= 1.0).collect();
            if keep.is_empty() {
                return Err(Error::failed("EM", "every mixture component lost its mass"));
            }
            let kept_dims: Vec<i64> = keep.iter().map(|&k| self.dims[k as usize]).collect();
            let resp = if keep.len() < mass.len() {
                trace.dropped += mass.len() - keep.len();
                survivors = keep.iter().map(|&k| survivors[k as usize]).collect();
                let r = resp.index_select(1, &Tensor::from_slice(&keep).to_device(x.device()));
                &r / r.sum_dim_intlist(1, true, r.kind()).clamp_min(1e-300)
            } else {
                resp
            };
            let fixed = (trace.iterations > 1).then_some(kept_dims.as_slice());
            (self, spectrum) = Mixture::m_step_spectral(x, &resp, opt.reg, &opt.model, fixed)?;
            if let Some(tol) = opt.tol {
                if (ll - prev).abs() < tol {
                    trace.converged = true;
                    break;
                }
            }
            prev = ll;
        }
        trace.kept = survivors;
        Ok((self, trace))
    }
}

/// Free parameters of one component of dimension `d` with intrinsic dimension `dk` (HDDC [a_kj b_k Q_k d_k]:
/// mean, orientation, d_k + 1 variances) or full covariance.
pub fn component_params(model: &CovModel, d: i64, dk: i64) -> f64 {
    let (d, dk) = (d as f64, dk as f64);
    match model {
        CovModel::Full => d + d * (d + 1.0) / 2.0,
        CovModel::Hddc { .. } => d + dk * d - dk * (dk + 1.0) / 2.0 + dk + 1.0,
    }
}

/// Cattell's scree test: the last index j (1-based count) whose eigenvalue gap λ_j − λ_{j+1} is at least
/// `threshold` × the largest gap. `evals` descending.
pub fn cattell(evals: &[f64], threshold: f64) -> i64 {
    let gaps: Vec<f64> = evals.windows(2).map(|w| w[0] - w[1]).collect();
    let max = gaps.iter().cloned().fold(0.0, f64::max);
    if max <= 0.0 {
        return 1;
    }
    let last = gaps.iter().rposition(|&g| g >= threshold * max).unwrap_or(0);
    (last as i64 + 1).clamp(1, evals.len() as i64 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_their_identity_when_another_is_dropped() {
        // Two clusters at ±5 in 2-D, deterministic; component 0 sits far away and loses its mass at once, so the
        // fitted mixture holds the input's components 1 and 2, in that order.
        let rows: Vec<f64> = (0..40)
            .flat_map(|i| {
                let c = if i % 2 == 0 { -5.0 } else { 5.0 };
                let j = (i / 2) as f64 * 0.05;
                [c + j, c - j]
            })
            .collect();
        let x = Tensor::from_slice(&rows).view([40, 2]);
        let eye = Tensor::eye(2, (Kind::Double, tch::Device::Cpu));
        let m = Mixture {
            weights: Tensor::from_slice(&[0.2f64, 0.4, 0.4]),
            means: Tensor::from_slice(&[100.0f64, 100.0, -5.0, -5.0, 5.0, 5.0]).view([3, 2]),
            covs: Tensor::stack(&[&eye * 0.01, eye.shallow_clone(), eye.shallow_clone()], 0),
            dims: vec![2, 2, 2],
        };
        let opts = EmOptions { max_iter: 5, tol: None, reg: 1e-6, model: CovModel::Full };
        let (fitted, trace) = m.em(&x, &opts).unwrap();
        assert_eq!(trace.dropped, 1);
        assert_eq!(trace.kept, vec![1, 2]);
        let means: Vec<f64> = Vec::try_from(fitted.means.flatten(0, -1)).unwrap();
        assert!(means[0] < 0.0 && means[2] > 0.0, "the survivors keep their order: {means:?}");
    }

    #[test]
    fn cattell_finds_the_elbow() {
        assert_eq!(cattell(&[10.0, 9.0, 1.0, 0.9, 0.8, 0.7], 0.2), 2);
        assert_eq!(cattell(&[5.0, 0.1, 0.1, 0.1], 0.2), 1);
        assert_eq!(cattell(&[1.0, 1.0, 1.0], 0.2), 1);
    }

    #[test]
    fn subspace_log_densities_equal_the_full_covariance_ones() {
        let _rng = crate::device::global_rng_lock();
        let opts = (Kind::Double, tch::Device::Cpu);
        let x =
            (Tensor::arange(6000, opts).view([500, 12]) * 0.7548776662).sin() * Tensor::linspace(0.01, 2.0, 12, opts);
        let resp = (Tensor::arange(2000, opts).view([500, 4]) * 0.5698402910).sin().abs() + 0.01;
        let resp = &resp / resp.sum_dim_intlist(1, true, Kind::Double);
        for fixed in [Some(1), Some(3), None] {
            let m = Mixture::m_step(&x, &resp, 1e-6, &CovModel::Hddc { fixed_dim: fixed, threshold: 0.2 }).unwrap();
            assert!(m.dims.iter().all(|&dk| dk < 12));
            let fast = m.log_joint(&x).unwrap();
            let full = m.log_joint_full(&x).unwrap();
            let err = (&fast - &full).abs().max().double_value(&[]);
            assert!(err < 1e-7 * (1.0 + full.abs().max().double_value(&[])), "{fixed:?}: {err}");
            // Many rows are evaluated in chunks: every chunk gives each row what it gets alone (up to the GEMM's
            // size-dependent blocking).
            let many = m.log_joint(&x.repeat([100, 1])).unwrap();
            let chunked = (many.view([100, 500, 4]) - fast.unsqueeze(0)).abs().max().double_value(&[]);
            assert!(chunked < 1e-9 * (1.0 + full.abs().max().double_value(&[])), "{fixed:?}: chunks {chunked}");
            let xf = x.to_kind(Kind::Float);
            let mf = Mixture {
                weights: m.weights.to_kind(Kind::Float),
                means: m.means.to_kind(Kind::Float),
                covs: m.covs.to_kind(Kind::Float),
                dims: m.dims.clone(),
            };
            // In float32 both forms inherit the rounding of the stored covariances (amplified by 1/b): the subspace
            // form must be no less accurate than the Cholesky one.
            let errf = (mf.log_joint(&xf).unwrap().to_kind(Kind::Double) - &full).abs().max().double_value(&[]);
            let err_chol =
                (mf.log_joint_full(&xf).unwrap().to_kind(Kind::Double) - &full).abs().max().double_value(&[]);
            assert!(
                errf <= 2.0 * err_chol + 1e-4 * (1.0 + full.abs().max().double_value(&[])),
                "float32 {fixed:?}: {errf} vs Cholesky {err_chol}"
            );
        }
    }

    #[test]
    fn hddc_keeps_leading_eigenvalues_and_ties_the_rest() {
        let _rng = crate::device::global_rng_lock();
        let q = Tensor::linalg_qr(&Tensor::randn([6, 6], (Kind::Double, tch::Device::Cpu)), "reduced").0;
        let lam = Tensor::from_slice(&[9.0f64, 4.0, 0.3, 0.2, 0.15, 0.1]);
        let cov = (&q * lam.unsqueeze(0)).matmul(&q.tr()).unsqueeze(0);
        let mut m = Mixture {
            weights: Tensor::ones([1], (Kind::Double, tch::Device::Cpu)),
            means: Tensor::zeros([1, 6], (Kind::Double, tch::Device::Cpu)),
            covs: cov,
            dims: vec![6],
        };
        m.project_hddc(None, 0.2).unwrap();
        assert_eq!(m.dims, vec![2]);
        let (ev, _) = m.covs.get(0).linalg_eigh("L");
        let got: Vec<f64> = Vec::try_from(ev.flip([0])).unwrap();
        let b = (0.3 + 0.2 + 0.15 + 0.1) / 4.0;
        for (g, w) in got.iter().zip([9.0, 4.0, b, b, b, b]) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }
}
