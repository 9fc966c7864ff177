//! Feature alignment (paper Eq. 6 / Algorithm 3, and the released code's version, docs/architecture.md).
use super::anchors::Anchors;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignMode {
    /// Per sample and unit: anchor by Gumbel-softmax (τ) on the log-posterior in training, argmax at evaluation;
    /// δ = λ·exp(−mean_j |c_j − μ_j| / max(|c_j|, ε)) with ε = 1e-3 × the unit's std; c̃ = c + δ(μ − c), μ and δ
    /// constants for autograd; normalisation statistics from the fit.
    Paper,
    /// The released code: batch min-max with the max subtracted, hard argmax, one λ_mix for the whole batch,
    /// mixed in the normalised anchor space (docs/architecture.md).
    ReleasedCode,
    Off,
}

/// How much an alignment moved the features.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct AlignStats {
    /// Mean and standard deviation of |c̃ − c| over all entries.
    pub shift_mean: f64,
    pub shift_std: f64,
    /// Mean and standard deviation of δ (paper: per sample and unit; released code: the single λ_mix).
    pub delta_mean: f64,
    pub delta_std: f64,
}

/// The weight of each anchor in a feature's target `[B, K]`, from its log-joint `[B, K]` (paper Algorithm 3): with
/// `stochastic`, the Gumbel-softmax relaxation softmax((log p + g)/τ) with g ~ Gumbel(0, 1), whose largest weight
/// falls on a posterior sample and which tends to that sample's one-hot as τ → 0; otherwise the one-hot of the
/// most probable anchor.
pub fn anchor_weights(log_joint: &Tensor, tau: f64, stochastic: bool) -> Tensor {
    if stochastic {
        let g = -(-log_joint.rand_like().clamp(1e-20, 1.0).log()).log();
        ((log_joint + g) / tau).softmax(-1, log_joint.kind())
    } else {
        let k = log_joint.size()[1];
        log_joint.argmax(1, false).one_hot(k).to_kind(log_joint.kind())
    }
}

/// Align latent units `c` `[B, N, D]` toward the anchors. `stochastic` selects the Gumbel-softmax anchor choice
/// (paper mode, training).
pub fn align(
    c: &Tensor,
    anchors: &Anchors,
    mode: AlignMode,
    lambda: f64,
    tau: f64,
    stochastic: bool,
) -> Result<(Tensor, AlignStats)> {
    let (_, n, _) = c.size3().map_err(|_| Error::Shape { got: c.size(), expected: "[B, N, D] latent units".into() })?;
    if mode == AlignMode::Off {
        return Ok((c.shallow_clone(), AlignStats::default()));
    }
    if anchors.units.len() != n as usize {
        return Err(Error::data(
            "features to align",
            format!("{n} units, but the anchors are for {}", anchors.units.len()),
        ));
    }
    let fk = anchors.units[0].mixture.means.kind();
    let (out, delta) = match mode {
        AlignMode::Paper => {
            let mut outs = Vec::new();
            let mut deltas = Vec::new();
            for u in &anchors.units {
                let x = c.select(1, u.unit as i64);
                let xn = u.norm.apply(&x.detach().to_kind(fk));
                let lj = u.mixture.log_joint(&xn)?;
                let mu_n = if stochastic {
                    anchor_weights(&lj, tau, true).matmul(&u.mixture.means)
                } else {
                    u.mixture.means.index_select(0, &lj.argmax(1, false))
                };
                let mu = u.norm.invert(&mu_n).to_kind(c.kind()).detach();
                let eps = (1e-3 * u.norm.std).max(1e-12);
                let xd = x.detach();
                let delta =
                    ((&xd - &mu).abs() / xd.abs().clamp_min(eps)).mean_dim(-1, false, c.kind()).neg().exp() * lambda;
                outs.push(&x + delta.unsqueeze(-1) * (mu - &x));
                deltas.push(delta);
            }
            (Tensor::stack(&outs, 1), Tensor::stack(&deltas, 1))
        }
        AlignMode::ReleasedCode => {
            let mut cq = Vec::new();
            for u in &anchors.units {
                let x = c.select(1, u.unit as i64).detach().to_kind(fk);
                let (hi, lo) = (x.max(), x.min());
                let xn = (&x - &hi) / (&hi - &lo + 1e-6);
                let k = u.mixture.log_joint(&xn)?.argmax(1, false);
                cq.push(u.mixture.means.index_select(0, &k).to_kind(c.kind()));
            }
            let cq = Tensor::stack(&cq, 1);
            let lam = ((c - &cq) / (c + 1e-6)).abs().mean(c.kind()).neg().exp() * lambda;
            let out = &lam * &cq + (1.0 - &lam) * c;
            (out, lam.detach().reshape([1]))
        }
        AlignMode::Off => unreachable!(),
    };
    let shift = (&out - c).detach().abs();
    let stats = AlignStats {
        shift_mean: shift.mean(Kind::Float).double_value(&[]),
        shift_std: if shift.numel() > 1 { shift.std(true).double_value(&[]) } else { 0.0 },
        delta_mean: delta.mean(Kind::Float).double_value(&[]),
        delta_std: if delta.numel() > 1 { delta.std(true).double_value(&[]) } else { 0.0 },
    };
    Ok((out, stats))
}
