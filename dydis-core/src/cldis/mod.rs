//! CL-Dis (arXiv 2402.02346): a diffusion autoencoder (Diff-AE) whose semantic code z_sem is pulled towards the
//! disentangled latent of a co-pilot β-VAE (distillation), while the reverse diffusion's information sets the
//! β-VAE's capacity C (diffusion-wise feedback); a self-supervised navigation finds directions in z_sem, and a
//! label-free content-tracking score rates them. The paper's full text and code were not available: every setting
//! the available sources leave open is a named field here, at the recommendation of the project's specification
//! (docs/architecture.md lists which choices are ours). Settings, the feedback and the losses live here; the
//! networks in `nn::diffae` and `nn::vae`, the model in `model::cldis`, the trainers in `train`.
pub mod feedback;
pub mod losses;

use crate::flow::HornSchunck;
use crate::nn::diffae::DiffAeConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which information measure drives C_dyn (docs/architecture.md, "CL-Dis").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedbackForm {
    /// C = C_base · E_x0 / E_xt with E the Gaussian entropy per pixel of x_t (ours).
    Entropy,
    /// C = C_base · I_t / I_0 with I_t the Gaussian-channel information I(x0; x_t) per pixel (ours).
    MutualInformation,
    /// The entropy form where the data's entropy per pixel E_x0 is positive, the information form otherwise
    /// (the entropy ratio is meaningless once E_x0 ≤ 0, as on near-binary images); which one ran is recorded.
    Auto,
}

/// Which diffusion time t feeds C_dyn during the closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedbackTime {
    /// t(k) = round((T − 1)(1 − k/K)) at loop step k of K: the loop walks the reverse process (ours).
    Curriculum,
    /// The mean of f over the timesteps drawn for the step's diffusion loss.
    Batch,
}

/// Which code the metrics read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClDisRepresentation {
    /// The Diff-AE's semantic code (the EMA encoder's).
    #[default]
    ZSem,
    /// The co-pilot β-VAE's posterior mean.
    Copilot,
}

/// The co-pilot β-VAE: disentanglement_lib's conv encoder and decoder with the capacity objective
/// recon + γ·|KL − C|.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopilotConfig {
    /// d: the co-pilot's latent width.
    pub latent: i64,
    /// Multiplier of the convolutions' channels (1: disentanglement_lib's 32/32/64/64; 2 for faces).
    pub width: i64,
    pub gamma: f64,
    /// Pre-training steps (phase P1), at the fixed capacity C_dyn(T − 1).
    pub steps: usize,
    pub lr: f64,
}

impl Default for CopilotConfig {
    fn default() -> Self {
        CopilotConfig { latent: 10, width: 1, gamma: 1000.0, steps: 100_000, lr: 1e-4 }
    }
}

/// The distillation L_dt = KL(softmax(P z_sem / τ) ‖ softmax(z_disen / τ)), the teacher detached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// λ_dt.
    pub weight: f64,
    /// τ.
    pub temperature: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig { weight: 1.0, temperature: 1.0 }
    }
}

/// The diffusion-wise feedback C_dyn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    pub form: FeedbackForm,
    pub time: FeedbackTime,
    /// C_base and C_max in nats.
    pub c_base: f64,
    pub c_max: f64,
    /// Images whose per-pixel variance σ_j² enters the closed forms.
    pub variance_images: usize,
    /// σ_floor (in the diffusion's [−1, 1] scale) for constant pixels.
    pub sigma_floor: f64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            form: FeedbackForm::Auto,
            time: FeedbackTime::Curriculum,
            c_base: 25.0,
            c_max: 50.0,
            variance_images: 1000,
            sigma_floor: 1.0 / 255.0,
        }
    }
}

/// Self-supervised navigation in z_sem (axis mode: direction k is coordinate k of the normalised code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NavigationConfig {
    /// Shifts ε ~ U[−s, s] with |ε| ≥ s_min, in units of z_sem's per-coordinate standard deviation.
    pub shift_max: f64,
    pub shift_min: f64,
    /// Width multiplier w of the LeNet predictor.
    pub width: i64,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Weight of the shift's L1 term next to the direction's cross-entropy.
    pub shift_weight: f64,
    /// DDIM steps of the pair's decoding.
    pub ddim_steps: usize,
}

impl Default for NavigationConfig {
    fn default() -> Self {
        NavigationConfig {
            shift_max: 3.0,
            shift_min: 0.5,
            width: 2,
            steps: 100_000,
            batch_size: 32,
            lr: 1e-4,
            shift_weight: 0.25,
            ddim_steps: 20,
        }
    }
}

/// The label-free content-tracking score (ours: the paper's exact definition is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentTrackingConfig {
    /// Images N whose traversals are scored, frames M per traversal.
    pub images: usize,
    pub frames: usize,
    /// A pixel is tracked when its forward-backward flow error is below `threshold` + `relative`·|w_f| pixels.
    pub threshold: f64,
    pub relative: f64,
    pub flow: HornSchunck,
}

impl Default for ContentTrackingConfig {
    fn default() -> Self {
        ContentTrackingConfig { images: 200, frames: 9, threshold: 1.0, relative: 0.05, flow: HornSchunck::default() }
    }
}

/// The whole family's settings (`[cldis]` and its sub-tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClDisConfig {
    pub image_size: i64,
    pub channels: i64,
    pub diffae: DiffAeConfig,
    /// The diffusion: T steps, linear β from `beta_start` to `beta_end`.
    pub timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub batch_size: usize,
    /// Phase P0 (Diff-AE alone) and phase P2 (the closed loop) in steps.
    pub diffae_steps: usize,
    pub loop_steps: usize,
    pub lr: f64,
    /// Gradients of the Diff-AE clipped to this global norm (0: no clipping).
    pub grad_clip: f64,
    pub ema_decay: f64,
    /// DDIM steps of decoding and of the stochastic encoding (DDIM inversion).
    pub ddim_steps: usize,
    pub inversion_steps: usize,
    pub copilot: CopilotConfig,
    pub distill: DistillConfig,
    pub feedback: FeedbackConfig,
    pub navigation: NavigationConfig,
    pub content_tracking: ContentTrackingConfig,
    pub representation: ClDisRepresentation,
    pub log_every: usize,
    pub checkpoint_every: usize,
    pub keep_last: usize,
}

impl Default for ClDisConfig {
    /// Diff-AE's 64 px settings and the specification's recommendations at full scale.
    fn default() -> Self {
        ClDisConfig {
            image_size: 64,
            channels: 3,
            diffae: DiffAeConfig::default(),
            timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            batch_size: 64,
            diffae_steps: 100_000,
            loop_steps: 100_000,
            lr: 1e-4,
            grad_clip: 1.0,
            ema_decay: 0.9999,
            ddim_steps: 20,
            inversion_steps: 250,
            copilot: CopilotConfig::default(),
            distill: DistillConfig::default(),
            feedback: FeedbackConfig::default(),
            navigation: NavigationConfig::default(),
            content_tracking: ContentTrackingConfig::default(),
            representation: ClDisRepresentation::ZSem,
            log_every: 100,
            checkpoint_every: 5000,
            keep_last: 2,
        }
    }
}

/// A finite number above zero (false for NaN).
fn positive(v: f64) -> bool {
    v > 0.0 && v.is_finite()
}

/// A finite number at or above zero (false for NaN).
fn non_negative(v: f64) -> bool {
    v >= 0.0 && v.is_finite()
}

impl ClDisConfig {
    pub fn validate(&self) -> Result<()> {
        let f = |name: &str, msg: String| Err(Error::config(format!("cldis.{name}"), msg));
        if self.image_size < 16 || self.image_size % 16 != 0 {
            return f("image_size", format!("{} must be a positive multiple of 16", self.image_size));
        }
        if !(self.channels == 1 || self.channels == 3) {
            return f("channels", format!("{} must be 1 or 3", self.channels));
        }
        self.diffae.validate(self.image_size)?;
        if self.timesteps < 2 {
            return f("timesteps", format!("{} must be at least 2", self.timesteps));
        }
        if !(self.beta_start > 0.0 && self.beta_end > self.beta_start && self.beta_end < 1.0) {
            return f(
                "beta_end",
                format!("need 0 < beta_start ({}) < beta_end ({}) < 1", self.beta_start, self.beta_end),
            );
        }
        if self.batch_size == 0 || self.diffae_steps == 0 || self.loop_steps == 0 || self.copilot.steps == 0 {
            return f("steps", "batch_size, diffae_steps, loop_steps and copilot.steps must be at least 1".into());
        }
        if !(positive(self.lr) && positive(self.copilot.lr)) {
            return f("lr", "lr and copilot.lr must be positive numbers".into());
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return f("grad_clip", format!("{} must be non-negative", self.grad_clip));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return f("ema_decay", format!("{} is not in [0, 1)", self.ema_decay));
        }
        for (name, k) in [("ddim_steps", self.ddim_steps), ("inversion_steps", self.inversion_steps)] {
            if !(2..=self.timesteps).contains(&k) {
                return f(name, format!("{k} is not in 2..={}", self.timesteps));
            }
        }
        if self.copilot.latent < 1 || self.copilot.width < 1 || !non_negative(self.copilot.gamma) {
            return f("copilot", "latent and width must be at least 1, gamma non-negative".into());
        }
        let d = &self.distill;
        if !(non_negative(d.weight) && positive(d.temperature)) {
            return f("distill", "weight must be non-negative and temperature positive".into());
        }
        let b = &self.feedback;
        if !(b.c_base > 0.0 && b.c_max >= b.c_base && b.c_max.is_finite()) {
            return f("feedback.c_max", format!("need 0 < c_base ({}) ≤ c_max ({})", b.c_base, b.c_max));
        }
        if b.variance_images < 2 || !(b.sigma_floor > 0.0 && b.sigma_floor < 1.0) {
            return f("feedback", "variance_images must be at least 2 and sigma_floor in (0, 1)".into());
        }
        let n = &self.navigation;
        if !(n.shift_min >= 0.0 && n.shift_max > n.shift_min && n.shift_max.is_finite()) {
            return f(
                "navigation.shift_max",
                format!("need 0 ≤ shift_min ({}) < shift_max ({})", n.shift_min, n.shift_max),
            );
        }
        if n.width < 1 || n.steps == 0 || n.batch_size == 0 || !positive(n.lr) || !non_negative(n.shift_weight) {
            return f("navigation", "width, steps and batch_size at least 1, lr positive, shift_weight ≥ 0".into());
        }
        if !(2..=self.timesteps).contains(&n.ddim_steps) {
            return f("navigation.ddim_steps", format!("{} is not in 2..={}", n.ddim_steps, self.timesteps));
        }
        let c = &self.content_tracking;
        if c.images == 0 || c.frames < 2 || !positive(c.threshold) || !non_negative(c.relative) {
            return f("content_tracking", "images ≥ 1, frames ≥ 2, threshold > 0, relative ≥ 0".into());
        }
        let h = &c.flow;
        if !(h.alpha > 0.0 && h.alpha.is_finite()) || h.iterations == 0 || h.levels == 0 || h.warps == 0 {
            return f("content_tracking.flow", "alpha positive; iterations, levels and warps at least 1".into());
        }
        if (self.image_size >> (h.levels - 1)) < 4 {
            return f(
                "content_tracking.flow.levels",
                format!("{} levels shrink {} px below 4 px", h.levels, self.image_size),
            );
        }
        if self.log_every == 0 || self.checkpoint_every == 0 || self.keep_last == 0 {
            return f("log_every", "log_every, checkpoint_every and keep_last must be at least 1".into());
        }
        Ok(())
    }

    /// Whether L_dt needs the projection P: Linear(d_sem → d).
    pub fn projects(&self) -> bool {
        self.diffae.z_sem != self.copilot.latent
    }
}
