//! The Multi-β VAE's losses and the diffusion's reverse step, as functions of tensors.
//!
//! Stage 1 (per example, σ_t shared by every image): KL_t = ½ Σ_i (μ_i² + σ_t² − 1 − ln σ_t²),
//! L = ρ(β(t))·(R + β(t)·KL_t), R the Bernoulli negative log-likelihood summed over pixels.
//! Stage 2: the frozen encoder's marginals q(z_t | x) = N(μ(x, t), σ_t² I) are the forward process; its reverse
//! posterior q(z_s | z_t, x) has mean z_t − Δ − ((σ_t² − σ_s²)/σ_t)·ε, Δ = μ(x, t) − μ(x, s), and variance
//! σ_s²(σ_t² − σ_s²)/σ_t², so the denoiser predicts both ε and Δ (as its rate v = Δ/(t − s)).
use super::Rescale;
use tch::{Kind, Tensor};

/// Per-example terms `[B]` → `[B, 1]`, to scale `[B, d]` tensors.
fn col(t: &Tensor) -> Tensor {
    t.reshape([-1, 1])
}

/// ρ(β) for a batch of β `[B]`.
pub fn rho(beta: &Tensor, rescale: Rescale) -> Tensor {
    match rescale {
        Rescale::Inverse => (beta + 1.0).reciprocal(),
        Rescale::None => beta.ones_like(),
    }
}

/// KL(N(μ, σ²I) ‖ N(0, I)) per example `[B]`, with `s2` = σ² per example `[B]`.
pub fn kl_shared(mu: &Tensor, s2: &Tensor) -> Tensor {
    let d = mu.size()[1] as f64;
    let per_dim = col(s2) - 1.0 - col(s2).log();
    (mu.square().sum_dim_intlist(1, false, Kind::Float) + per_dim.squeeze_dim(1) * d) * 0.5
}

/// Bernoulli negative log-likelihood of images `x` in [0, 1] under `logits`, summed over pixels: `[B]`.
pub fn reconstruction(logits: &Tensor, x: &Tensor) -> Tensor {
    logits
        .binary_cross_entropy_with_logits::<Tensor>(x, None, None, tch::Reduction::None)
        .flatten(1, -1)
        .sum_dim_intlist(1, false, Kind::Float)
}

/// Stage 1's loss on a batch and its parts (batch means).
pub struct Stage1 {
    pub loss: Tensor,
    pub reconstruction: Tensor,
    pub kl: Tensor,
}

/// mean_B ρ(β)·(R + β·KL) for logits, images in [0, 1], posterior means `[B, d]`, σ² `[B]` and β `[B]`.
pub fn stage1(logits: &Tensor, x: &Tensor, mu: &Tensor, s2: &Tensor, beta: &Tensor, rescale: Rescale) -> Stage1 {
    let r = reconstruction(logits, x);
    let kl = kl_shared(mu, s2);
    let loss = (rho(beta, rescale) * (&r + beta * &kl)).mean(Kind::Float);
    Stage1 { loss, reconstruction: r.mean(Kind::Float), kl: kl.mean(Kind::Float) }
}

/// σ_t = σ_min + (1 − σ_min)·sin(πt/2), the fixed fallback schedule.
pub fn sinusoidal_sigma(t: &Tensor, sigma_min: f64) -> Tensor {
    (t * (std::f64::consts::PI / 2.0)).sin() * (1.0 - sigma_min) + sigma_min
}

/// The reverse posterior's mean z_t − Δ − ((σ_t² − σ_s²)/σ_t)·ε (`s2_t`, `s2_s`: σ² per example `[B]`).
pub fn reverse_mean(z_t: &Tensor, delta: &Tensor, eps: &Tensor, s2_t: &Tensor, s2_s: &Tensor) -> Tensor {
    let coef = (s2_t - s2_s) / s2_t.sqrt();
    z_t - delta - col(&coef) * eps
}

/// The reverse posterior's variance σ_s²(σ_t² − σ_s²)/σ_t² per example `[B]`.
pub fn reverse_var(s2_t: &Tensor, s2_s: &Tensor) -> Tensor {
    s2_s * (s2_t - s2_s) / s2_t
}

/// The deterministic (DDIM-like) step z_t − Δ − (σ_t − σ_s)·ε.
pub fn deterministic_step(z_t: &Tensor, delta: &Tensor, eps: &Tensor, s2_t: &Tensor, s2_s: &Tensor) -> Tensor {
    z_t - delta - col(&(s2_t.sqrt() - s2_s.sqrt())) * eps
}

/// The denoiser's loss and its two terms: mean ‖ε̂ − ε‖² + λ_Δ·mean ‖v̂ − v‖² (means over dimensions and batch).
pub fn denoiser(
    eps_hat: &Tensor,
    eps: &Tensor,
    v_hat: &Tensor,
    v: &Tensor,
    lambda_delta: f64,
) -> (Tensor, Tensor, Tensor) {
    let e = (eps_hat - eps).square().mean(Kind::Float);
    let d = (v_hat - v).square().mean(Kind::Float);
    (&e + &d * lambda_delta, e, d)
}
