//! The losses of disentanglement_lib's VAEs (`methods/unsupervised/vae.py`, `methods/shared/losses.py`), each a
//! function of tensors so that tests can check it against a transcription of the reference on fixed inputs. The
//! total loss of every model is `reconstruction + regularizer`.
use super::{DipKind, Objective};
use tch::{Kind, Reduction, Tensor};

/// Bernoulli reconstruction on logits: Σ over pixels of max(l, 0) − l·x + log(1 + e^{−|l|}), mean over the batch.
/// Targets in [0, 1] need not be binary (the loss then has the images' entropy as its floor).
pub fn reconstruction(logits: &Tensor, x: &Tensor) -> Tensor {
    logits
        .binary_cross_entropy_with_logits::<Tensor>(x, None, None, Reduction::None)
        .flatten(1, -1)
        .sum_dim_intlist(1, false, Kind::Float)
        .mean(Kind::Float)
}

/// KL(q(z|x) ‖ N(0, I)) in closed form, ½ Σ_j (μ² + σ² − log σ² − 1), mean over the batch.
pub fn gaussian_kl(mu: &Tensor, logvar: &Tensor) -> Tensor {
    ((mu.square() + logvar.exp() - logvar - 1.0) * 0.5).sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float)
}

/// AnnealedVAE's capacity C(step) = min(c_max, c_max · step / threshold).
pub fn capacity(step: usize, c_max: f64, iteration_threshold: usize) -> f64 {
    (c_max * step as f64 / iteration_threshold as f64).min(c_max)
}

/// The biased covariance of the codes' means over the batch, E[μμᵀ] − E[μ]E[μ]ᵀ (DIP-VAE).
pub fn covariance(mu: &Tensor) -> Tensor {
    let m = mu.mean_dim(0, true, Kind::Float);
    let c = mu - &m;
    c.transpose(0, 1).matmul(&c) / mu.size()[0] as f64
}

/// DIP-VAE's penalty λ_od Σ_{i≠j} M_ij² + λ_d Σ_i (M_ii − 1)².
pub fn dip_penalty(m: &Tensor, lambda_od: f64, lambda_d: f64) -> Tensor {
    let diag = m.diagonal(0, 0, 1);
    let off = m - diag.diag_embed(0, 0, 1);
    off.square().sum(Kind::Float) * lambda_od + (diag - 1.0).square().sum(Kind::Float) * lambda_d
}

/// β-TCVAE's total correlation by minibatch-weighted sampling on the sampled codes: mean_j [log Σ_i q(z_j|x_i) −
/// Σ_l log Σ_i q(z_jl|x_il)], the diagonal i = j included and the constant (d − 1)·log(N·B) dropped, as
/// disentanglement_lib does (so the value is offset, usually negative; its gradient is the estimator's).
pub fn total_correlation(z: &Tensor, mu: &Tensor, logvar: &Tensor) -> Tensor {
    // L[j, i, l] = log N(z_jl | μ_il, σ²_il)
    let zj = z.unsqueeze(1);
    let (mi, lvi) = (mu.unsqueeze(0), logvar.unsqueeze(0));
    let l = ((zj - mi).square() * (-&lvi).exp() + lvi + (2.0 * std::f64::consts::PI).ln()) * -0.5;
    let joint = l.sum_dim_intlist(2, false, Kind::Float).logsumexp(1, false);
    let marginals = l.logsumexp(1, false).sum_dim_intlist(1, false, Kind::Float);
    (joint - marginals).mean(Kind::Float)
}

/// FactorVAE's TC estimate from the discriminator's logits on the real codes: mean of logit₀ − logit₁ (the
/// density-ratio trick, unclipped).
pub fn factor_tc(logits_real: &Tensor) -> Tensor {
    (logits_real.select(1, 0) - logits_real.select(1, 1)).mean(Kind::Float)
}

/// The discriminator's loss to minimise: −(½ mean log p₀(real) + ½ mean log p₁(permuted)), probabilities by softmax
/// clipped to [1e-6, 1 − 1e-6] (disentanglement_lib maximises the bracket).
pub fn discriminator_loss(logits_real: &Tensor, logits_perm: &Tensor) -> Tensor {
    let p =
        |l: &Tensor, c: i64| l.softmax(-1, Kind::Float).clamp(1e-6, 1.0 - 1e-6).select(1, c).log().mean(Kind::Float);
    -(p(logits_real, 0) * 0.5 + p(logits_perm, 1) * 0.5)
}

/// Each latent column shuffled independently across the batch (`shuffle_codes`), from libtorch's global generator.
pub fn shuffle_codes(z: &Tensor) -> Tensor {
    let (b, d) = (z.size()[0], z.size()[1]);
    let cols: Vec<Tensor> =
        (0..d).map(|j| z.select(1, j).index_select(0, &Tensor::randperm(b, (Kind::Int64, z.device())))).collect();
    Tensor::stack(&cols, 1)
}

/// What a step's regularizer needs besides the objective.
pub struct Posterior<'a> {
    pub mu: &'a Tensor,
    pub logvar: &'a Tensor,
    pub z: &'a Tensor,
    pub kl: &'a Tensor,
    /// The discriminator's logits on `z` (FactorVAE only).
    pub logits_real: Option<&'a Tensor>,
    /// The optimisation step the loss is for (AnnealedVAE's capacity).
    pub step: usize,
}

/// The regularizer each objective adds to the reconstruction loss, and its named parts for the logs.
pub fn regularizer(objective: &Objective, p: &Posterior) -> (Tensor, Vec<(&'static str, Tensor)>) {
    match *objective {
        Objective::BetaVae { beta } => (p.kl * beta, vec![]),
        Objective::AnnealedVae { c_max, gamma, iteration_threshold } => {
            let c = capacity(p.step, c_max, iteration_threshold);
            ((p.kl - c).abs() * gamma, vec![("capacity", Tensor::from(c))])
        }
        Objective::FactorVae { gamma, .. } => {
            let tc = factor_tc(p.logits_real.expect("FactorVAE's regularizer needs the discriminator's logits"));
            (p.kl + &tc * gamma, vec![("tc", tc)])
        }
        Objective::DipVae { dip, lambda_od, lambda_d_factor } => {
            let cov = covariance(p.mu);
            let m = match dip {
                DipKind::I => cov,
                DipKind::Ii => p.logvar.exp().mean_dim(0, false, Kind::Float).diag_embed(0, 0, 1) + cov,
            };
            let pen = dip_penalty(&m, lambda_od, lambda_d_factor * lambda_od);
            (p.kl + &pen, vec![("dip", pen)])
        }
        Objective::BetaTcVae { beta } => {
            let tc = total_correlation(p.z, p.mu, p.logvar);
            (p.kl + &tc * (beta - 1.0), vec![("tc", tc)])
        }
    }
}
