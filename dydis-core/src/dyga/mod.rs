//! Dynamic Gaussian Anchoring (paper §3.2, docs/architecture.md): per latent unit a Gaussian mixture is fitted to
//! the unit's features (HDDC by default), dense Gaussians are split and small ones filtered so that the number of
//! anchors adapts, and features are shifted toward their anchor.
//!
//! `gmm`: mixtures and EM; `anchors`: Algorithm 2 (init, EM, split, filter, final EM) for one unit and for all
//! units in parallel; `align`: Eq. 6 / Algorithm 3 (`paper`) and the released code's alignment (`released-code`).
pub mod align;
pub mod anchors;
pub mod gmm;
pub mod record;
pub mod released;

pub use align::{align, anchor_weights, AlignMode, AlignStats};
pub use anchors::{fit_units, select_anchors, Anchors, Event, Normalisation, UnitAnchors};
pub use gmm::{CovModel, EmOptions, EmTrace, Mixture};
pub use record::RefitRecord;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The released driver fits a random tenth of a unit's rows above this many.
pub const RELEASED_SUBSAMPLE_ABOVE: usize = 100_000;

/// How many of a unit's `n` rows the released driver fits: all up to 100,000, a tenth above.
pub fn released_fit_rows(n: usize) -> usize {
    if n > RELEASED_SUBSAMPLE_ABOVE {
        n / 10
    } else {
        n
    }
}

/// DyGA settings (defaults: docs/architecture.md and the paper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DygaConfig {
    pub enabled: bool,
    /// The anchor fit: Algorithm 2 (`paper`, with the choices below where the paper is silent) or the released
    /// code's `DyGA.fit` and driver as written (`released-code`: full covariance, K₀ random rows, fixed EM
    /// iterations, n/10 subsample above 100,000 rows, its split loop; `model`, `tol`, `max_fit_samples`, `init`,
    /// `child_init`, `split_criterion`, `refit_after_split_round` and `min_split_members` do not apply).
    pub fit: AnchorFit,
    /// Refit anchors after every r-th epoch (from epoch r on).
    pub refit_every: usize,
    /// Features collected for a refit: the whole dataset, or a seeded subsample of this many images.
    pub collect: Option<usize>,
    /// At most this many features per unit enter the fit (a seeded subsample). Unset: the released driver's rule,
    /// every row up to 100,000 and a random tenth above (MPI3D: 103,680 of 1,036,800).
    pub max_fit_samples: Option<usize>,
    pub model: CovModel,
    /// K₀, the initial number of components.
    pub k0: usize,
    pub k_max: usize,
    /// EM iterations of every fit (initial, children, final).
    pub max_iter: usize,
    /// EM stops early when the mean log-likelihood improves by less than this (0: never). 1e-3 is scikit-learn's
    /// `GaussianMixture` default on the same quantity; 1e-4 took nearly twice the time for +0.08 nats on `dydis bench
    /// anchors`.
    pub tol: f64,
    pub reg: f64,
    /// φ: a feature belongs to the hard cluster of k when its responsibility exceeds φ.
    pub phi: f64,
    /// ψ: a cluster whose density (mean distance to its mean) exceeds ψ is split.
    pub psi: f64,
    /// Probability of the paper's "arbitrary split" of a cluster that is not dense enough.
    pub random_split: f64,
    pub max_split_rounds: usize,
    /// Keep every split the density rule or the random split proposes (`always`: Algorithm 2 and the released
    /// code), or only those whose two children describe the parent's cluster better by BIC (`bic`, ours).
    pub split_criterion: SplitCriterion,
    /// Initial means: k-means++ seeding (`kmeans++`, ours; the paper does not say) or K₀ distinct random rows with
    /// identity covariances (`random-rows`, the released code).
    pub init: InitMethod,
    /// A split's two children start at the cluster mean ± √λ₁ along its principal axis (`principal-axis`, ours) or
    /// at two random rows of the cluster with identity covariances (`random-rows`, the released code).
    pub child_init: InitMethod,
    /// After each split round, refit every component by EM on all rows before the next round's densities
    /// (ours; Algorithm 2 only refits the children on their cluster, then the whole mixture after filtering).
    pub refit_after_split_round: bool,
    /// A hard cluster with fewer members is not split: two children need two points each for a covariance (the
    /// released code splits from 2).
    pub min_split_members: usize,
    /// Components with fewer (soft) members than this are filtered.
    pub min_size: f64,
    pub align: AlignMode,
    /// λ of Eq. 6.
    pub lambda: f64,
    /// τ of the Gumbel-softmax anchor choice (paper mode, training).
    pub tau: f64,
    /// Align also at evaluation (representation extraction, sampling), as the released code does.
    pub align_at_eval: bool,
}

impl Default for DygaConfig {
    fn default() -> Self {
        DygaConfig {
            enabled: false,
            fit: AnchorFit::Paper,
            refit_every: 1,
            collect: None,
            max_fit_samples: None,
            model: CovModel::default(),
            k0: 8,
            k_max: 32,
            max_iter: 30,
            tol: 1e-3,
            reg: 1e-6,
            phi: 0.5,
            psi: 0.5,
            random_split: 0.5,
            max_split_rounds: 3,
            split_criterion: SplitCriterion::Always,
            init: InitMethod::KmeansPlusPlus,
            child_init: InitMethod::PrincipalAxis,
            refit_after_split_round: false,
            min_split_members: 4,
            min_size: 10.0,
            align: AlignMode::Paper,
            lambda: 0.1,
            tau: 1e-4,
            align_at_eval: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitCriterion {
    Bic,
    Always,
}

/// Which anchor fit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorFit {
    Paper,
    ReleasedCode,
}

/// How initial means (or a split's children) are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMethod {
    /// k-means++ (D² sampling over the distinct rows): the initial mixture only.
    #[serde(rename = "kmeans++")]
    KmeansPlusPlus,
    /// Mean ± √λ₁ along the principal axis: a split's children only.
    PrincipalAxis,
    /// Distinct random rows as means, identity covariances, equal weights (the released code).
    RandomRows,
}

impl DygaConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, m: String| Err(Error::config(format!("dyga.{f}"), m));
        if self.refit_every == 0 {
            return bad("refit_every", "must be at least 1".into());
        }
        if self.k0 == 0 || self.k_max < self.k0 {
            return bad("k0", format!("need 1 <= k0 ({}) <= k_max ({})", self.k0, self.k_max));
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be at least 1".into());
        }
        if let Some(m) = self.max_fit_samples.filter(|&m| m < 2 * self.k0) {
            return bad("max_fit_samples", format!("{m} is too few for k0 = {}", self.k0));
        }
        for (f, v) in [("phi", self.phi), ("random_split", self.random_split)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(f, format!("{v} is not in [0, 1]"));
            }
        }
        for (f, v) in [
            ("psi", self.psi),
            ("reg", self.reg),
            ("tol", self.tol),
            ("min_size", self.min_size),
            ("lambda", self.lambda),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(f, format!("{v} must be a non-negative number"));
            }
        }
        if self.init == InitMethod::PrincipalAxis {
            return bad(
                "init",
                "principal-axis places a split's children; the initial mixture takes kmeans++ or random-rows".into(),
            );
        }
        if self.child_init == InitMethod::KmeansPlusPlus {
            return bad(
                "child_init",
                "kmeans++ seeds the initial mixture; children take principal-axis or random-rows".into(),
            );
        }
        if self.min_split_members < 2 {
            return bad("min_split_members", format!("{} is fewer than the two children", self.min_split_members));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return bad("tau", format!("{} must be a positive number", self.tau));
        }
        if let CovModel::Hddc { fixed_dim: Some(d), .. } = self.model {
            if d < 1 {
                return bad("model.fixed_dim", format!("{d} must be at least 1"));
            }
        }
        Ok(())
    }

    /// How many of `n` rows enter a unit's fit.
    pub fn fit_rows(&self, n: usize) -> usize {
        n.min(self.max_fit_samples.unwrap_or_else(|| released_fit_rows(n)))
    }

    pub fn em_options(&self) -> EmOptions {
        EmOptions {
            max_iter: self.max_iter,
            tol: (self.tol > 0.0).then_some(self.tol),
            reg: self.reg,
            model: self.model.clone(),
        }
    }
}
