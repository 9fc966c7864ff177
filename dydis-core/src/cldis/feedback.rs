//! The diffusion-wise feedback: C_dyn = C_base · E_x0 / E_xt, capped at C_max (the paper's rule), with E the
//! Gaussian closed forms of the project's specification (ours: the paper's E is unknown). Everything is per pixel
//! (the sums over the n pixels divided by n; the ratio is unchanged), computed once from the data's per-pixel
//! variances σ_j² in the diffusion's [−1, 1] scale.
use super::{FeedbackConfig, FeedbackForm};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

const TWO_PI_E: f64 = 2.0 * std::f64::consts::PI * std::f64::consts::E;

/// Entropy per pixel of x_t = √ᾱ x₀ + √(1 − ᾱ) ε under Gaussian x₀: ½ mean_j log(2πe(ᾱσ_j² + 1 − ᾱ)).
pub fn entropy_xt(alpha_bar: f64, var: &[f64]) -> f64 {
    0.5 * var.iter().map(|v| (TWO_PI_E * (alpha_bar * v + 1.0 - alpha_bar)).ln()).sum::<f64>() / var.len() as f64
}

/// Entropy per pixel of the data: ½ mean_j log(2πe·max(σ_j², σ_floor²)).
pub fn entropy_x0(var: &[f64], sigma_floor: f64) -> f64 {
    let floor = sigma_floor * sigma_floor;
    0.5 * var.iter().map(|v| (TWO_PI_E * v.max(floor)).ln()).sum::<f64>() / var.len() as f64
}

/// Gaussian-channel information per pixel I(x₀; x_t) = ½ mean_j log(1 + ᾱσ_j² / (1 − ᾱ)).
pub fn information(alpha_bar: f64, var: &[f64]) -> f64 {
    0.5 * var.iter().map(|v| (1.0 + alpha_bar * v / (1.0 - alpha_bar)).ln()).sum::<f64>() / var.len() as f64
}

/// C_dyn for every diffusion timestep, and the form that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `entropy` or `mutual-information` (never `auto`).
    pub form: FeedbackForm,
    /// E_x0 per pixel (the entropy form's numerator; reported either way).
    pub entropy_x0: f64,
    /// C_dyn(t) for t = 0 … T − 1.
    pub capacity: Vec<f64>,
}

impl Feedback {
    /// The feedback of a schedule (`alphas_cumprod`, one per timestep) over data with per-pixel variances `var`.
    pub fn new(cfg: &FeedbackConfig, alphas_cumprod: &[f64], var: &[f64]) -> Result<Self> {
        if var.is_empty() || var.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::config("cldis.feedback", "the pixel variances must be finite and non-negative"));
        }
        if alphas_cumprod.is_empty() || alphas_cumprod.iter().any(|a| !(*a > 0.0 && *a < 1.0)) {
            return Err(Error::config("cldis.timesteps", "every ᾱ_t must lie in (0, 1)"));
        }
        let e0 = entropy_x0(var, cfg.sigma_floor);
        let form = match cfg.form {
            FeedbackForm::Auto if e0 > 0.0 => FeedbackForm::Entropy,
            FeedbackForm::Auto => FeedbackForm::MutualInformation,
            f => f,
        };
        let raw: Vec<f64> = match form {
            FeedbackForm::Entropy => {
                if e0 <= 0.0 {
                    return Err(Error::config(
                        "cldis.feedback.form",
                        format!(
                            "the data's entropy per pixel is {e0:.3} nats ≤ 0, so E_x0/E_xt has no meaning: use \
                             \"mutual-information\" or \"auto\""
                        ),
                    ));
                }
                alphas_cumprod.iter().map(|&a| cfg.c_base * e0 / entropy_xt(a, var)).collect()
            }
            _ => {
                let i0 = information(alphas_cumprod[0], var);
                if i0 <= 0.0 {
                    return Err(Error::config(
                        "cldis.feedback",
                        "the images carry no information: every pixel is constant",
                    ));
                }
                alphas_cumprod.iter().map(|&a| cfg.c_base * information(a, var) / i0).collect()
            }
        };
        // The paper's cap, and 0 below (the case f ≤ 0 is not given; ours).
        let capacity = raw.into_iter().map(|c| c.clamp(0.0, cfg.c_max)).collect();
        Ok(Feedback { form, entropy_x0: e0, capacity })
    }

    /// C_dyn at timestep t.
    pub fn at(&self, t: usize) -> f64 {
        self.capacity[t.min(self.capacity.len() - 1)]
    }

    /// The mean of C_dyn over timesteps `ts` (the `batch` feedback time).
    pub fn mean_over(&self, ts: &[i64]) -> f64 {
        ts.iter().map(|&t| self.at(t as usize)).sum::<f64>() / ts.len().max(1) as f64
    }
}

/// The loop's curriculum t(k) = round((T − 1)(1 − k/K)) at loop step k of K.
pub fn curriculum_t(k: usize, loop_steps: usize, timesteps: usize) -> usize {
    let frac = 1.0 - (k as f64 / loop_steps as f64).min(1.0);
    ((timesteps - 1) as f64 * frac).round() as usize
}
