//! Denoising Multi-β VAE (arXiv 2507.06613): one VAE conditioned on β over a range of β, then a non-linear
//! diffusion over β that denoises a high-β (disentangled, lossy) latent toward the informative β ≈ 0 one. The
//! paper's full text was not available: every setting the available sources leave open is a named field here, at
//! the recommendation of the project's specification (docs/architecture.md lists which choices are ours). The
//! settings and the losses as tensor functions live here; the networks in `nn::multibeta`, the model in
//! `model::multibeta`, the trainers in `train`.
pub mod losses;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The loss rescaling ρ(β) applied to (R + β·KL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rescale {
    /// ρ(β) = 1 / (1 + β): every β contributes gradients of a comparable scale (our choice).
    Inverse,
    /// ρ ≡ 1.
    None,
}

/// The posterior scale σ_t shared by every image (the diffusion's noise schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// σ_t² = sigmoid(γ(t)), γ monotone and learned with the VAE (VDM's parameterisation; our choice).
    Learned,
    /// σ_t = σ_min + (1 − σ_min)·sin(πt/2), fixed: the fallback when the learned schedule grows sub-linearly.
    Sinusoidal,
}

/// The second stage: the denoiser over β and its sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiserConfig {
    /// Hidden width and number of hidden layers of the MLP (z concatenated to every layer).
    pub width: i64,
    pub depth: usize,
    /// Sinusoidal dimensions of the denoiser's time embedding.
    pub t_embed: i64,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub ema_decay: f64,
    /// λ_Δ: weight of the encoding-difference term.
    pub lambda_delta: f64,
    /// N: the diffusion's discrete steps over t ∈ [0, 1] (1000 in the paper).
    pub sampler_steps: usize,
    /// Images whose t = 1 encodings give the start distribution of image-free generation.
    pub start_stat_images: usize,
    pub log_every: usize,
    pub checkpoint_every: usize,
    pub keep_last: usize,
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        DenoiserConfig {
            width: 256,
            depth: 4,
            t_embed: 64,
            batch_size: 256,
            steps: 20_000,
            lr: 1e-4,
            ema_decay: 0.999,
            lambda_delta: 1.0,
            sampler_steps: 1000,
            start_stat_images: 2000,
            log_every: 100,
            checkpoint_every: 5000,
            keep_last: 2,
        }
    }
}

/// The whole family's settings (`[multibeta]`, `[multibeta.denoiser]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiBetaConfig {
    pub image_size: i64,
    pub channels: i64,
    /// d: the latent vector's size.
    pub latent: i64,
    /// β(t) = β_min + (β_max − β_min)·t.
    pub beta_min: f64,
    pub beta_max: f64,
    pub rescale: Rescale,
    pub schedule: Schedule,
    /// Initial γ(0) and γ(1) of the learned schedule (σ² = sigmoid(γ)).
    pub gamma0: f64,
    pub gamma1: f64,
    /// σ_min of the sinusoidal schedule.
    pub sigma_min: f64,
    /// Sinusoidal dimensions and width of the VAE's β embedding (FiLM in every encoder and decoder layer).
    pub t_embed: i64,
    pub embed_width: i64,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub log_every: usize,
    pub checkpoint_every: usize,
    pub keep_last: usize,
    /// t_e: the level whose posterior mean μ(x, t_e) is the representation the metrics read.
    pub eval_t: f64,
    pub denoiser: DenoiserConfig,
}

impl Default for MultiBetaConfig {
    fn default() -> Self {
        MultiBetaConfig {
            image_size: 64,
            channels: 1,
            latent: 10,
            beta_min: 0.1,
            beta_max: 16.0,
            rescale: Rescale::Inverse,
            schedule: Schedule::Learned,
            gamma0: -9.0,
            gamma1: 4.0,
            sigma_min: 0.01,
            t_embed: 128,
            embed_width: 256,
            batch_size: 64,
            steps: 30_000,
            lr: 1e-4,
            log_every: 100,
            checkpoint_every: 5000,
            keep_last: 2,
            eval_t: 0.5,
            denoiser: DenoiserConfig::default(),
        }
    }
}

impl MultiBetaConfig {
    /// β at time t ∈ [0, 1].
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + (self.beta_max - self.beta_min) * t
    }

    pub fn validate(&self) -> Result<()> {
        let f = |name: &str, msg: String| Err(Error::config(format!("multibeta.{name}"), msg));
        if self.image_size < 16 || self.image_size % 16 != 0 {
            return f("image_size", format!("{} must be a positive multiple of 16", self.image_size));
        }
        if !(self.channels == 1 || self.channels == 3) || self.latent < 1 {
            return f("channels", "channels must be 1 or 3 and latent at least 1".into());
        }
        if !(self.beta_min >= 0.0 && self.beta_min.is_finite()) {
            return f("beta_min", format!("{} must be a non-negative number", self.beta_min));
        }
        if !(self.beta_max > self.beta_min && self.beta_max.is_finite()) {
            return f("beta_max", format!("{} must be a number above beta_min ({})", self.beta_max, self.beta_min));
        }
        if !(self.gamma1 > self.gamma0 && self.gamma0.is_finite() && self.gamma1.is_finite()) {
            return f("gamma1", format!("{} must be above gamma0 ({}): σ_t grows with t", self.gamma1, self.gamma0));
        }
        if !(self.sigma_min > 0.0 && self.sigma_min < 1.0) {
            return f("sigma_min", format!("{} is not in (0, 1)", self.sigma_min));
        }
        if !(0.0..=1.0).contains(&self.eval_t) {
            return f("eval_t", format!("{} is not in [0, 1]", self.eval_t));
        }
        if self.t_embed < 2 || self.t_embed % 2 != 0 || self.embed_width < 1 {
            return f("t_embed", "t_embed must be even and at least 2, embed_width positive".into());
        }
        if self.batch_size == 0 || self.steps == 0 || self.log_every == 0 || self.checkpoint_every == 0 {
            return f("steps", "batch_size, steps, log_every and checkpoint_every must be at least 1".into());
        }
        if self.keep_last == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            return f("lr", "lr must be positive and keep_last at least 1".into());
        }
        let d = &self.denoiser;
        let g = |name: &str, msg: String| Err(Error::config(format!("multibeta.denoiser.{name}"), msg));
        if d.sampler_steps < 2 {
            return g("sampler_steps", format!("{} must be at least 2", d.sampler_steps));
        }
        if d.width < 1 || d.depth == 0 || d.t_embed < 2 || d.t_embed % 2 != 0 {
            return g("width", "width and depth must be at least 1, t_embed even and at least 2".into());
        }
        if d.batch_size == 0 || d.steps == 0 || d.log_every == 0 || d.checkpoint_every == 0 || d.keep_last == 0 {
            return g(
                "steps",
                "batch_size, steps, log_every, checkpoint_every and keep_last must be at least 1".into(),
            );
        }
        if !(d.lr > 0.0 && d.lr.is_finite() && (0.0..1.0).contains(&d.ema_decay)) {
            return g("lr", "lr must be positive and ema_decay in [0, 1)".into());
        }
        if !(d.lambda_delta >= 0.0 && d.lambda_delta.is_finite()) || d.start_stat_images == 0 {
            return g("lambda_delta", "lambda_delta must be non-negative and start_stat_images at least 1".into());
        }
        Ok(())
    }
}
