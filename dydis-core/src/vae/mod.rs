//! The VAE baselines of disentanglement_lib's `unsupervised_study_v1` (Locatello et al. 2019): their settings
//! ([`VaeConfig`], one [`Objective`] each) and their losses ([`losses`]), as pure functions of tensors. The networks
//! are in `nn::vae`, the model in `model::vae`, its trainer in `train`.
pub mod losses;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The six objectives, with the study's default hyper-parameter (sweeps in the comments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Objective {
    /// β·KL. Study sweep β ∈ {1, 2, 4, 6, 8, 16}.
    BetaVae { beta: f64 },
    /// γ·|KL − C(step)|, C rising linearly to `c_max` nats at `iteration_threshold`. Sweep c_max ∈ {5, 10, 25, 50, 75,
    /// 100}; γ = 1000, threshold 100,000 fixed.
    AnnealedVae { c_max: f64, gamma: f64, iteration_threshold: usize },
    /// KL + γ·TC, TC by a discriminator's density ratio. Sweep γ ∈ {10, 20, 30, 40, 50, 100}. `dl_step_quirk`:
    /// disentanglement_lib's two `minimize` calls both advance the global step, so a 300,000-step run makes 150,000
    /// updates; on (the default, for fidelity), the run's `steps` count that way.
    FactorVae {
        gamma: f64,
        #[serde(default = "yes")]
        dl_step_quirk: bool,
    },
    /// KL + λ_od Σ_{i≠j} M_ij² + λ_d Σ_i (M_ii − 1)², λ_d = λ_d_factor·λ_od; M = Cov(μ) (`i`) or
    /// E[diag σ²] + Cov(μ) (`ii`). Sweep λ_od ∈ {1, 2, 5, 10, 20, 50}; λ_d_factor 10 (I), 1 (II).
    DipVae { dip: DipKind, lambda_od: f64, lambda_d_factor: f64 },
    /// KL + (β − 1)·TC, TC by minibatch-weighted sampling. Sweep β ∈ {1, 2, 4, 6, 8, 10}.
    BetaTcVae { beta: f64 },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DipKind {
    I,
    Ii,
}

impl Objective {
    /// The study's name of the model.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::BetaVae { .. } => "β-VAE",
            Objective::AnnealedVae { .. } => "AnnealedVAE",
            Objective::FactorVae { .. } => "FactorVAE",
            Objective::DipVae { dip: DipKind::I, .. } => "DIP-VAE-I",
            Objective::DipVae { dip: DipKind::Ii, .. } => "DIP-VAE-II",
            Objective::BetaTcVae { .. } => "β-TCVAE",
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |f: &str, v: f64, need: &str| Err(Error::config(format!("vae.objective.{f}"), format!("{v} {need}")));
        let nonneg = |v: f64| v >= 0.0 && v.is_finite();
        match *self {
            Objective::BetaVae { beta } | Objective::BetaTcVae { beta } if !nonneg(beta) => {
                bad("beta", beta, "must be a non-negative number")
            }
            Objective::AnnealedVae { c_max, .. } if !nonneg(c_max) => bad("c_max", c_max, "must be non-negative"),
            Objective::AnnealedVae { gamma, .. } | Objective::FactorVae { gamma, .. } if !nonneg(gamma) => {
                bad("gamma", gamma, "must be non-negative")
            }
            Objective::AnnealedVae { iteration_threshold: 0, .. } => {
                Err(Error::config("vae.objective.iteration_threshold", "must be at least 1"))
            }
            Objective::DipVae { lambda_od, .. } if !nonneg(lambda_od) => {
                bad("lambda_od", lambda_od, "must be non-negative")
            }
            Objective::DipVae { lambda_d_factor, .. } if !nonneg(lambda_d_factor) => {
                bad("lambda_d_factor", lambda_d_factor, "must be non-negative")
            }
            _ => Ok(()),
        }
    }
}

/// Which code the metrics read: the posterior mean (the study's `mean.gin`) or a sample (`sampled.gin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Representation {
    #[default]
    Mean,
    Sampled,
}

/// A VAE run's networks and training (disentanglement_lib's `shared.gin` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaeConfig {
    /// Side of the square images (64 in the study; any multiple of 16).
    pub image_size: i64,
    /// Image channels (1 for dSprites, 3 for colour datasets); the data must match.
    pub channels: i64,
    pub latent: i64,
    pub objective: Objective,
    pub representation: Representation,
    pub batch_size: usize,
    /// Training steps (300,000 in the study).
    pub steps: usize,
    /// Adam (β1 0.9, β2 0.999, ε 1e-8); FactorVAE's discriminator has its own Adam with β1 0.5, β2 0.9.
    pub lr: f64,
    pub log_every: usize,
    pub checkpoint_every: usize,
    pub keep_last: usize,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            image_size: 64,
            channels: 3,
            latent: 10,
            objective: Objective::BetaVae { beta: 1.0 },
            representation: Representation::Mean,
            batch_size: 64,
            steps: 300_000,
            lr: 1e-4,
            log_every: 100,
            checkpoint_every: 10_000,
            keep_last: 3,
        }
    }
}

impl VaeConfig {
    pub fn validate(&self) -> Result<()> {
        if self.image_size < 16 || self.image_size % 16 != 0 {
            return Err(Error::config("vae.image_size", format!("{} is not a multiple of 16", self.image_size)));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::config("vae.channels", format!("{} is not 1 or 3", self.channels)));
        }
        if self.latent < 1 {
            return Err(Error::config("vae.latent", format!("{} must be at least 1", self.latent)));
        }
        if self.batch_size < 2 || self.steps == 0 || self.log_every == 0 || self.checkpoint_every == 0 {
            return Err(Error::config(
                "vae",
                "batch_size ≥ 2 (the covariance and TC terms need a batch), steps, log_every and checkpoint_every ≥ 1",
            ));
        }
        if self.keep_last == 0 {
            return Err(Error::config("vae.keep_last", "must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config("vae.lr", format!("{} must be a positive number", self.lr)));
        }
        self.objective.validate()
    }

    /// Parameter updates the run makes: `steps`, or half of them for FactorVAE with disentanglement_lib's step quirk.
    pub fn updates(&self) -> usize {
        match self.objective {
            Objective::FactorVae { dl_step_quirk: true, .. } => self.steps.div_ceil(2),
            _ => self.steps,
        }
    }
}
