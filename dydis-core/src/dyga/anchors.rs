//! Anchor selection (paper Algorithm 2, docs/architecture.md): K₀ components, EM,
//! rounds of splitting dense (and randomly chosen) Gaussians into two children refitted on the parent's hard
//! cluster, filtering of small Gaussians, a final EM. Components carry stable ids so that every split and filter
//! is recorded against the component it touched.
use super::gmm::component_params;
use super::gmm::{EmOptions, EmTrace, Mixture};
use super::{AlignMode, AnchorFit, DygaConfig, InitMethod, SplitCriterion};
use crate::display::{impl_show_via, Table};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// How a unit's raw features map into the space the mixture lives in: x̂ = (x − offset) / scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub offset: f64,
    pub scale: f64,
    /// The raw features' standard deviation (sets the safe denominator of Eq. 6).
    pub std: f64,
}

impl Normalisation {
    /// Global min-max over all of a unit's entries: (x − min)/(max − min + 1e-6); the released code subtracts the
    /// max instead (`released_sign`), putting features in [−1, 0].
    pub fn fit(x: &Tensor, released_sign: bool) -> Normalisation {
        let lo = x.min().double_value(&[]);
        let hi = x.max().double_value(&[]);
        let std = if x.numel() > 1 { x.std(true).double_value(&[]) } else { 0.0 };
        Normalisation { offset: if released_sign { hi } else { lo }, scale: hi - lo + 1e-6, std }
    }
    pub fn apply(&self, x: &Tensor) -> Tensor {
        (x - self.offset) / self.scale
    }
    pub fn invert(&self, x: &Tensor) -> Tensor {
        x * self.scale + self.offset
    }
}

/// One step of a unit's anchor selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Init {
        k: usize,
        n_fit: usize,
        distinct_rows: usize,
        /// How the initial means were placed.
        #[serde(default = "kmeans_pp")]
        by: String,
    },
    Em {
        phase: String,
        iterations: usize,
        ll_first: f64,
        ll_last: f64,
        converged: bool,
        dropped: usize,
    },
    Split {
        round: usize,
        parent: usize,
        parent_weight: f64,
        size: usize,
        density: f64,
        random: bool,
        children: [usize; 2],
        child_weights: [f64; 2],
        /// BIC(children) − BIC(parent) on the parent's hard cluster (negative: the split explains it better); not
        /// computed by the released-code fit.
        #[serde(default)]
        delta_bic: Option<f64>,
    },
    SplitSkipped {
        round: usize,
        parent: usize,
        reason: String,
    },
    Filter {
        removed: Vec<(usize, f64)>,
        kept: usize,
    },
}

fn kmeans_pp() -> String {
    "k-means++".into()
}

impl Event {
    /// The event as a table row: what happened, and its details.
    pub fn describe(&self) -> (String, String) {
        match self {
            Event::Init { k, n_fit, distinct_rows, by } => {
                ("init".to_string(), format!("K₀ = {k} means by {by} over {distinct_rows} distinct of {n_fit} rows"))
            }
            Event::Em { phase, iterations, ll_first, ll_last, converged, dropped } => {
                let converged = if *converged { ", converged" } else { "" };
                let dropped =
                    if *dropped > 0 { format!(", {dropped} empty component(s) dropped") } else { String::new() };
                (
                    format!("EM ({phase})"),
                    format!(
                        "{iterations} iteration(s), log-likelihood {ll_first:.3} → {ll_last:.3}{converged}{dropped}"
                    ),
                )
            }
            Event::Split {
                round,
                parent,
                parent_weight,
                size,
                density,
                random,
                children,
                child_weights,
                delta_bic,
            } => {
                let random = if *random { ", random split" } else { "" };
                let bic = delta_bic.map(|d| format!("; ΔBIC {d:.1}")).unwrap_or_default();
                (
                    format!("split (round {round})"),
                    format!(
                        "#{parent} (π {parent_weight:.3}, {size} members, density {density:.3}{random}) → \
                         #{} (π {:.3}) + #{} (π {:.3}){bic}",
                        children[0], child_weights[0], children[1], child_weights[1]
                    ),
                )
            }
            Event::SplitSkipped { round, parent, reason } => {
                (format!("no split (round {round})"), format!("#{parent}: {reason}"))
            }
            Event::Filter { removed, kept } => {
                let what = if removed.is_empty() {
                    format!("all {kept} kept")
                } else {
                    let list: Vec<String> =
                        removed.iter().map(|(id, c)| format!("#{id} with {c:.1} members")).collect();
                    format!("removed {} ({kept} kept)", list.join(", "))
                };
                ("filter".to_string(), what)
            }
        }
    }
}

/// The anchors of one latent unit.
#[derive(Debug, Clone)]
pub struct UnitAnchors {
    pub unit: usize,
    pub norm: Normalisation,
    /// In the normalised space.
    pub mixture: Mixture,
    /// Stable id of each component.
    pub ids: Vec<usize>,
    pub events: Vec<Event>,
    /// Mean log-likelihood of every EM iteration, in order, with its phase.
    pub log_likelihood: Vec<(String, f64)>,
    /// Hard-cluster sizes (argmax) and densities of the final components on the fit data.
    pub sizes: Vec<usize>,
    pub densities: Vec<f64>,
    pub n_fit: usize,
    pub seconds: f64,
}

impl UnitAnchors {
    pub fn k(&self) -> usize {
        self.ids.len()
    }
    pub fn splits(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, Event::Split { .. })).count()
    }
    pub fn filtered(&self) -> usize {
        self.events.iter().map(|e| if let Event::Filter { removed, .. } = e { removed.len() } else { 0 }).sum()
    }
    /// Anchor means in the raw feature space `[K, D]`.
    pub fn raw_means(&self) -> Tensor {
        self.norm.invert(&self.mixture.means)
    }

    /// Every step of the selection in order: initialisation, EM runs, splits (kept and skipped), filtering.
    pub fn events_table(&self) -> Table {
        let mut t = Table::new(["#", "step", "what happened"]).with_title(format!(
            "unit {}: anchor selection on {} features, K = {} after {} split(s) and {} filtered ({:.2} s)",
            self.unit,
            self.n_fit,
            self.k(),
            self.splits(),
            self.filtered(),
            self.seconds
        ));
        for (i, e) in self.events.iter().enumerate() {
            let (step, what) = e.describe();
            t.push_row([i.to_string(), step, what]);
        }
        t
    }

    /// The mean log-likelihood of every EM iteration, one series per phase, numbered consecutively.
    pub fn log_likelihood_plot(&self) -> Result<crate::display::Svg> {
        let mut series: Vec<crate::display::Series> = Vec::new();
        for (i, (phase, v)) in self.log_likelihood.iter().enumerate() {
            let name =
                if phase.starts_with("split") { "split children (their own data)".to_string() } else { phase.clone() };
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((i as f64, *v)),
                None => series.push(crate::display::Series::new(name, [(i as f64, *v)])),
            }
        }
        crate::display::line_plot(
            &format!("unit {}: mean log-likelihood of every EM iteration", self.unit),
            "EM iteration (all phases in order)",
            "mean log-likelihood",
            &series,
        )
    }
}

/// The anchors of all units, from one refit.
#[derive(Debug, Clone)]
pub struct Anchors {
    pub units: Vec<UnitAnchors>,
    /// Epoch after which they were fitted (0: before training).
    pub epoch: usize,
    pub seconds: f64,
    pub mode: AlignMode,
}

pub(super) fn hard_clusters(x: &Tensor, resp: &Tensor, phi: f64) -> (Vec<usize>, Vec<f64>, Tensor) {
    let mask = resp.gt(phi).to_kind(x.kind()); // [n, K]
    let size = mask.sum_dim_intlist(0, false, x.kind());
    let centre = mask.transpose(0, 1).matmul(x) / size.clamp_min(1.0).unsqueeze(1);
    // ‖x − c‖² = ‖x‖² − 2xᵀc + ‖c‖² as one GEMM in f64 (no cancellation at these scales), not an [n, K, D]
    // difference tensor (400 MB at 100,000 rows and K = 32).
    let (x64, c64) = (x.to_kind(Kind::Double), centre.to_kind(Kind::Double));
    let sq = x64.square().sum_dim_intlist(1, true, Kind::Double) - x64.matmul(&c64.tr()) * 2.0
        + c64.square().sum_dim_intlist(1, false, Kind::Double).unsqueeze(0);
    let dist = sq.clamp_min(0.0).sqrt(); // [n, K]
    let density = (mask.to_kind(Kind::Double) * dist).sum_dim_intlist(0, false, Kind::Double) / size.clamp_min(1.0);
    let sizes: Vec<f64> = Vec::try_from(size.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
    let dens: Vec<f64> = Vec::try_from(density.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
    (sizes.iter().map(|&s| s.round() as usize).collect(), dens, mask)
}

/// k-means++ seeding (D² sampling, seeded) over the distinct rows: spread-out initial means.
fn seed_means(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> (Tensor, usize) {
    let uniq = x.to_device(Device::Cpu).unique_dim(0, false, false, false).0;
    let u = uniq.size()[0] as usize;
    let k = k.min(u);
    let mut chosen = vec![rng.random_range(0..u) as i64];
    let mut d2 = uniq.f_sub(&uniq.get(chosen[0])).unwrap().square().sum_dim_intlist(1, false, Kind::Double);
    while chosen.len() < k {
        let w: Vec<f64> = Vec::try_from(&d2).unwrap_or_default();
        let total: f64 = w.iter().sum();
        let pick = if total > 0.0 {
            let mut r = rng.random::<f64>() * total;
            w.iter()
                .position(|&v| {
                    r -= v;
                    r <= 0.0
                })
                .unwrap_or(u - 1)
        } else {
            (0..u).find(|i| !chosen.contains(&(*i as i64))).unwrap_or(0)
        };
        chosen.push(pick as i64);
        let nd = uniq.f_sub(&uniq.get(pick as i64)).unwrap().square().sum_dim_intlist(1, false, Kind::Double);
        d2 = d2.minimum(&nd);
    }
    (uniq.index_select(0, &Tensor::from_slice(&chosen)).to_device(x.device()), u)
}

/// `k` distinct rows of `x` drawn uniformly as means (fewer when `x` has fewer distinct rows), identity
/// covariances, equal weights: the released code's start, for the initial mixture and for a split's children. Also
/// returns the number of distinct rows.
pub(super) fn random_rows_mixture(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> (Mixture, usize) {
    let uniq = x.to_device(Device::Cpu).unique_dim(0, false, false, false).0;
    let u = uniq.size()[0] as usize;
    let idx: Vec<i64> = rand::seq::index::sample(rng, u, k.min(u)).into_iter().map(|i| i as i64).collect();
    let means = uniq.index_select(0, &Tensor::from_slice(&idx)).to_device(x.device());
    let (k, d) = (means.size()[0], x.size()[1]);
    let mixture = Mixture {
        weights: Tensor::full([k], 1.0 / k as f64, (x.kind(), x.device())),
        means,
        covs: Tensor::eye(d, (x.kind(), x.device())).unsqueeze(0).repeat([k, 1, 1]),
        dims: vec![d; k as usize],
    };
    (mixture, u)
}

/// The initial mixture: k-means++ means with the global covariance and equal weights, or the released code's
/// [`random_rows_mixture`].
fn init_mixture(x: &Tensor, k: usize, cfg: &DygaConfig, rng: &mut ChaCha8Rng) -> (Mixture, usize) {
    if cfg.init == InitMethod::RandomRows {
        return random_rows_mixture(x, k, rng);
    }
    let (means, distinct) = seed_means(x, k, rng);
    let k = means.size()[0];
    let d = x.size()[1];
    let eye = Tensor::eye(d, (x.kind(), x.device()));
    let cov = if x.size()[0] > 1 {
        x.transpose(0, 1).cov(1, None::<Tensor>, None::<Tensor>).view([d, d]) + &eye * cfg.reg.max(1e-6)
    } else {
        &eye * cfg.reg.max(1e-6)
    };
    let covs = cov.unsqueeze(0).repeat([k, 1, 1]);
    let weights = Tensor::full([k], 1.0 / k as f64, (x.kind(), x.device()));
    (Mixture { weights, means, covs, dims: vec![d; k as usize] }, distinct)
}

/// Put an initial mixture into the covariance model's family, so that EM starts inside it (and the likelihood
/// then never decreases).
fn conform(mut m: Mixture, model: &super::CovModel) -> Result<Mixture> {
    if let super::CovModel::Hddc { fixed_dim, threshold } = model {
        m.project_hddc(*fixed_dim, *threshold)?;
    }
    Ok(m)
}

/// EM from k-means++ means with the global covariance. HDDC first runs a full-covariance EM from there and then
/// its own: from such a start Cattell's test sees the spread between the clusters a component still covers and gives
/// it d_k = 1, and the subspace EM then settles into partitions that cut through clusters, which the splits multiply
/// (K 7–12 for 6 true components in tests/dyga.rs without it). Returns the mixture and each run's trace, tagged
/// (" (full-covariance start)" for the first of two).
fn em_from_start(m0: Mixture, x: &Tensor, opt: &EmOptions) -> Result<(Mixture, Vec<(&'static str, EmTrace)>)> {
    let mut traces = Vec::new();
    let m0 = if opt.model == super::CovModel::Full {
        m0
    } else {
        let (warm, tr) = m0.em(x, &EmOptions { model: super::CovModel::Full, ..opt.clone() })?;
        traces.push((" (full-covariance start)", tr));
        conform(warm, &opt.model)?
    };
    let (m, tr) = m0.em(x, opt)?;
    traces.push(("", tr));
    Ok((m, traces))
}

/// Two children for a cluster, by `how`: two distinct random rows with identity covariances (the released code), or
/// [`principal_axis_children`]. Equal weights; a one-component mixture when the cluster has one distinct row.
fn split_init(x: &Tensor, reg: f64, how: InitMethod, rng: &mut ChaCha8Rng) -> Mixture {
    match how {
        InitMethod::RandomRows => random_rows_mixture(x, 2, rng).0,
        _ => principal_axis_children(x, reg),
    }
}

/// Means at the cluster mean ± √λ₁ along its principal axis, the cluster's covariance (one component when the
/// cluster has no spread).
fn principal_axis_children(x: &Tensor, reg: f64) -> Mixture {
    let d = x.size()[1];
    let mean = x.mean_dim(0, false, x.kind());
    let eye = Tensor::eye(d, (x.kind(), x.device()));
    let cov = x.transpose(0, 1).cov(1, None::<Tensor>, None::<Tensor>).view([d, d]) + &eye * reg.max(1e-6);
    let (evals, evecs) = cov.linalg_eigh("L");
    let l1 = evals.double_value(&[d - 1]);
    if l1 <= 1e-9 {
        return Mixture {
            weights: Tensor::ones([1], (x.kind(), x.device())),
            means: mean.unsqueeze(0),
            covs: cov.unsqueeze(0),
            dims: vec![d],
        };
    }
    let step = evecs.select(1, d - 1) * l1.sqrt();
    Mixture {
        weights: Tensor::full([2], 0.5, (x.kind(), x.device())),
        means: Tensor::stack(&[&mean + &step, &mean - &step], 0),
        covs: cov.unsqueeze(0).repeat([2, 1, 1]),
        dims: vec![d; 2],
    }
}

pub(super) fn record_em(events: &mut Vec<Event>, ll: &mut Vec<(String, f64)>, phase: &str, t: &EmTrace) {
    events.push(Event::Em {
        phase: phase.into(),
        iterations: t.iterations,
        ll_first: t.log_likelihood.first().copied().unwrap_or(f64::NAN),
        ll_last: t.log_likelihood.last().copied().unwrap_or(f64::NAN),
        converged: t.converged,
        dropped: t.dropped,
    });
    ll.extend(t.log_likelihood.iter().map(|&v| (phase.to_string(), v)));
}

/// One split round applied to a mixture: every selected component is replaced, in place, by its two children
/// (weights π_parent × π_child); unselected components are kept. Returns the new mixture and ids.
pub fn apply_splits(
    m: &Mixture,
    ids: &[usize],
    replacements: &[(usize, Mixture, [usize; 2])],
) -> (Mixture, Vec<usize>) {
    let mut w = Vec::new();
    let mut mu = Vec::new();
    let mut cv = Vec::new();
    let mut dims = Vec::new();
    let mut new_ids = Vec::new();
    for k in 0..ids.len() {
        match replacements.iter().find(|(p, _, _)| *p == k) {
            Some((_, child, cid)) => {
                w.push(&child.weights * m.weights.get(k as i64));
                mu.push(child.means.shallow_clone());
                cv.push(child.covs.shallow_clone());
                dims.extend(&child.dims);
                new_ids.extend(cid);
            }
            None => {
                let k = k as i64;
                w.push(m.weights.slice(0, k, k + 1, 1));
                mu.push(m.means.slice(0, k, k + 1, 1));
                cv.push(m.covs.slice(0, k, k + 1, 1));
                dims.push(m.dims[k as usize]);
                new_ids.push(ids[k as usize]);
            }
        }
    }
    let mut out = Mixture { weights: Tensor::cat(&w, 0), means: Tensor::cat(&mu, 0), covs: Tensor::cat(&cv, 0), dims };
    out.normalise_weights();
    (out, new_ids)
}

/// Select the anchors of one unit from its raw features `[n, D]`, by the configured fit.
pub fn select_anchors(unit: usize, raw: &Tensor, cfg: &DygaConfig, seed: u64) -> Result<UnitAnchors> {
    cfg.validate()?;
    let fail = |m: String| Error::data(format!("features of unit {unit}"), m);
    let (n, d) =
        raw.size2().map_err(|_| Error::Shape { got: raw.size(), expected: "[n, D] features of one unit".into() })?;
    if n == 0 || d == 0 {
        return Err(fail("no features".into()));
    }
    if raw.isfinite().all().int64_value(&[]) == 0 {
        return Err(fail("features contain NaN or infinity".into()));
    }
    match cfg.fit {
        AnchorFit::Paper => select_anchors_paper(unit, raw, cfg, seed),
        AnchorFit::ReleasedCode => super::released::select_anchors_released(unit, raw, cfg, seed),
    }
}

/// Algorithm 2 with dydis's choices where the paper is silent (the `DygaConfig` fields name them).
fn select_anchors_paper(unit: usize, raw: &Tensor, cfg: &DygaConfig, seed: u64) -> Result<UnitAnchors> {
    let t0 = Instant::now();
    let n = raw.size()[0];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (unit as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let norm = Normalisation::fit(raw, cfg.align == AlignMode::ReleasedCode);
    let mut x = norm.apply(raw);
    let m = cfg.fit_rows(n as usize);
    if (n as usize) > m {
        let idx: Vec<i64> = rand::seq::index::sample(&mut rng, n as usize, m).into_iter().map(|i| i as i64).collect();
        x = x.index_select(0, &Tensor::from_slice(&idx).to_device(x.device()));
    }
    let n_fit = x.size()[0] as usize;
    let opt = cfg.em_options();
    let mut events = Vec::new();
    let mut ll = Vec::new();
    let (m0, distinct) = init_mixture(&x, cfg.k0, cfg, &mut rng);
    let by = if cfg.init == InitMethod::RandomRows { "distinct random rows" } else { "k-means++" };
    events.push(Event::Init { k: m0.k() as usize, n_fit, distinct_rows: distinct, by: by.into() });
    let (mut m, traces) = em_from_start(m0, &x, &opt)?;
    for (tag, tr) in &traces {
        record_em(&mut events, &mut ll, &format!("initial{tag}"), tr);
    }
    let mut ids: Vec<usize> = (0..m.k() as usize).collect();
    let mut next_id = ids.len();

    for round in 0..cfg.max_split_rounds {
        if ids.len() >= cfg.k_max {
            break;
        }
        let (resp, _) = m.e_step(&x)?;
        let (sizes, dens, mask) = hard_clusters(&x, &resp, cfg.phi);
        let mut k_now = ids.len();
        let mut replacements = Vec::new();
        for k in 0..ids.len() {
            let dense = sizes[k] >= 2 && dens[k] > cfg.psi;
            let random = !dense && rng.random::<f64>() < cfg.random_split;
            if !(dense || random) {
                continue;
            }
            if k_now + 1 > cfg.k_max {
                events.push(Event::SplitSkipped {
                    round,
                    parent: ids[k],
                    reason: format!("K would exceed k_max = {}", cfg.k_max),
                });
                continue;
            }
            if sizes[k] < cfg.min_split_members {
                events.push(Event::SplitSkipped {
                    round,
                    parent: ids[k],
                    reason: format!("hard cluster has {} member(s)", sizes[k]),
                });
                continue;
            }
            let rows = mask.select(1, k as i64).nonzero().flatten(0, -1);
            let sub = x.index_select(0, &rows);
            let c0 = split_init(&sub, cfg.reg, cfg.child_init, &mut rng);
            if c0.k() < 2 {
                events.push(Event::SplitSkipped {
                    round,
                    parent: ids[k],
                    reason: "hard cluster has one distinct point".into(),
                });
                continue;
            }
            // Children are fitted, and the split judged, in the full-covariance model whatever the mixture's model:
            // BIC then compares like with like (its penalty counts full covariances), and a fresh subspace EM on a
            // cluster that may hold several true clusters is what cuts through them (see `em_from_start`). Accepted
            // children enter the mixture projected into its model and are refit with every component by the EM that
            // follows the round.
            let full = EmOptions { model: super::CovModel::Full, ..opt.clone() };
            match c0.em(&sub, &full) {
                Ok((child, ctr)) if child.k() == 2 => {
                    record_em(&mut events, &mut ll, &format!("split {round} child of {}", ids[k]), &ctr);
                    let ns = sub.size()[0] as f64;
                    let one = Mixture::m_step(
                        &sub,
                        &Tensor::ones([sub.size()[0], 1], (sub.kind(), sub.device())),
                        cfg.reg,
                        &super::CovModel::Full,
                    )?;
                    let ll_parent = one.e_step(&sub)?.1;
                    let ll_child = child.e_step(&sub)?.1;
                    let d = sub.size()[1];
                    let p_parent = component_params(&super::CovModel::Full, d, d);
                    let p_child = 2.0 * p_parent + 1.0;
                    let delta_bic = -2.0 * ns * (ll_child - ll_parent) + (p_child - p_parent) * ns.ln();
                    if cfg.split_criterion == SplitCriterion::Bic
                        && delta_bic.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less)
                    {
                        events.push(Event::SplitSkipped {
                            round,
                            parent: ids[k],
                            reason: format!("children do not lower BIC (change {delta_bic:.1})"),
                        });
                        continue;
                    }
                    let child = conform(child, &cfg.model)?;
                    let cw: Vec<f64> =
                        Vec::try_from(child.weights.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
                    let pw = m.weights.double_value(&[k as i64]);
                    let cid = [next_id, next_id + 1];
                    next_id += 2;
                    events.push(Event::Split {
                        round,
                        parent: ids[k],
                        parent_weight: pw,
                        size: sizes[k],
                        density: dens[k],
                        random,
                        children: cid,
                        child_weights: [pw * cw[0], pw * cw[1]],
                        delta_bic: Some(delta_bic),
                    });
                    replacements.push((k, child, cid));
                    k_now += 1;
                }
                Ok(_) => {
                    events.push(Event::SplitSkipped { round, parent: ids[k], reason: "a child lost its mass".into() })
                }
                Err(e) => events.push(Event::SplitSkipped { round, parent: ids[k], reason: e.to_string() }),
            }
        }
        if replacements.is_empty() {
            break;
        }
        let (nm, nids) = apply_splits(&m, &ids, &replacements);
        if cfg.refit_after_split_round {
            let (nm, tr) = nm.em(&x, &opt)?;
            record_em(&mut events, &mut ll, &format!("after split round {round}"), &tr);
            ids = tr.kept.iter().map(|&k| nids[k]).collect();
            m = nm;
        } else {
            ids = nids;
            m = nm;
        }
    }

    // Filter small Gaussians by their soft member count.
    let (resp, _) = m.e_step(&x)?;
    let counts: Vec<f64> =
        Vec::try_from(resp.sum_dim_intlist(0, false, Kind::Double).to_device(Device::Cpu)).map_err(Error::Torch)?;
    let mut keep: Vec<i64> = (0..ids.len() as i64).filter(|&k| counts[k as usize] >= cfg.min_size).collect();
    if keep.is_empty() {
        // Fewer features than min_size in every component: keep the largest rather than nothing.
        let best = counts.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as i64).unwrap_or(0);
        keep.push(best);
    }
    let removed: Vec<(usize, f64)> =
        (0..ids.len()).filter(|k| !keep.contains(&(*k as i64))).map(|k| (ids[k], counts[k])).collect();
    events.push(Event::Filter { removed, kept: keep.len() });
    let mut m = m.select(&keep);
    ids = keep.iter().map(|&k| ids[k as usize]).collect();
    m.normalise_weights();
    let (m, tr) = m.em(&x, &opt)?;
    record_em(&mut events, &mut ll, "final", &tr);
    // Components that lost their mass in the final EM are gone; the others keep their ids.
    ids = tr.kept.iter().map(|&k| ids[k]).collect();
    if ids.len() != m.k() as usize {
        return Err(Error::failed(
            format!("anchor selection of unit {unit}"),
            format!("{} ids for {} components", ids.len(), m.k()),
        ));
    }
    let assign = m.predict(&x)?;
    let k = m.k();
    let onehot = assign.one_hot(k).to_kind(x.kind());
    let (sizes, densities, _) = hard_clusters(&x, &onehot, 0.5);
    Ok(UnitAnchors {
        unit,
        norm,
        mixture: m,
        ids,
        events,
        log_likelihood: ll,
        sizes,
        densities,
        n_fit,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Fit every unit of features `[n, N, D]` (raw extractor outputs), in parallel over units. On the CPU each unit
/// runs single-threaded inside a pool of libtorch's thread count; on CUDA the units run one after another.
pub fn fit_units(features: &Tensor, cfg: &DygaConfig, seed: u64, epoch: usize) -> Result<Anchors> {
    cfg.validate()?;
    crate::device::tune_allocator();
    let t0 = Instant::now();
    let (_, n_units, _) = features
        .size3()
        .map_err(|_| Error::Shape { got: features.size(), expected: "[n, N, D] unit features".into() })?;
    let feats = features.detach().to_kind(Kind::Float);
    let units: Vec<Tensor> = (0..n_units).map(|i| feats.select(1, i).contiguous()).collect();
    let results: Vec<Result<UnitAnchors>> = if feats.device() == Device::Cpu {
        let threads = tch::get_num_threads().max(1) as usize;
        tch::set_num_threads(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::failed("starting the anchor-fit thread pool", e.to_string()))?;
        // libtorch's thread count is per OS thread (OpenMP): each worker runs its unit on one thread. One thread per
        // unit even when there are fewer units than threads: the ops are small, and OpenMP's wake-ups made a single
        // 10,000-feature unit 1.8x slower on two threads than on one (perf, docs/results.md).
        let r = pool.install(|| {
            units
                .into_par_iter()
                .enumerate()
                .map(|(i, x)| {
                    tch::set_num_threads(1);
                    select_anchors(i, &x, cfg, seed)
                })
                .collect()
        });
        tch::set_num_threads(threads as i32);
        r
    } else {
        units.iter().enumerate().map(|(i, x)| select_anchors(i, x, cfg, seed)).collect()
    };
    Ok(Anchors {
        units: results.into_iter().collect::<Result<_>>()?,
        epoch,
        seconds: t0.elapsed().as_secs_f64(),
        mode: cfg.align,
    })
}

impl Anchors {
    pub fn table(&self) -> Table {
        let mut t = Table::new([
            "unit",
            "K",
            "weights (max / min)",
            "d_k",
            "cluster sizes",
            "splits",
            "filtered",
            "final log-lik",
            "fit s",
        ])
        .with_title(format!(
            "DyGA anchors after epoch {} ({} units, {:.1} s)",
            self.epoch,
            self.units.len(),
            self.seconds
        ));
        for u in &self.units {
            let w: Vec<f64> =
                Vec::try_from(u.mixture.weights.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
            let wmax = w.iter().cloned().fold(0.0, f64::max);
            let wmin = w.iter().cloned().fold(1.0, f64::min);
            t.push_row([
                u.unit.to_string(),
                u.k().to_string(),
                format!("{wmax:.3} / {wmin:.3}"),
                format!("{:?}", u.mixture.dims),
                format!("{:?}", u.sizes),
                u.splits().to_string(),
                u.filtered().to_string(),
                format!("{:.3}", u.log_likelihood.last().map(|x| x.1).unwrap_or(f64::NAN)),
                format!("{:.2}", u.seconds),
            ]);
        }
        t
    }

    /// Tensors for a checkpoint (`dyga.<unit>.{weights,means,covs}`) and the JSON rest.
    pub fn to_checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let mut tensors = Vec::new();
        let mut units = Vec::new();
        for u in &self.units {
            tensors.push((format!("dyga.{}.weights", u.unit), u.mixture.weights.shallow_clone()));
            tensors.push((format!("dyga.{}.means", u.unit), u.mixture.means.shallow_clone()));
            tensors.push((format!("dyga.{}.covs", u.unit), u.mixture.covs.shallow_clone()));
            units.push(serde_json::json!({
                "unit": u.unit, "norm": u.norm, "ids": u.ids, "dims": u.mixture.dims, "events": u.events,
                "log_likelihood": u.log_likelihood, "sizes": u.sizes, "densities": u.densities, "n_fit": u.n_fit,
                "seconds": u.seconds
            }));
        }
        (tensors, serde_json::json!({"epoch": self.epoch, "seconds": self.seconds, "mode": self.mode, "units": units}))
    }

    pub fn from_checkpoint(
        meta: &serde_json::Value,
        get: &dyn Fn(&str) -> Option<Tensor>,
        device: Device,
    ) -> Result<Option<Anchors>> {
        if meta.is_null() {
            return Ok(None);
        }
        let bad = |m: String| Error::config("checkpoint.dyga", m);
        let units_json = meta["units"].as_array().ok_or_else(|| bad("no units".into()))?;
        let mut units = Vec::new();
        for u in units_json {
            let unit = u["unit"].as_u64().ok_or_else(|| bad("unit without index".into()))? as usize;
            let t = |name: &str| {
                get(&format!("dyga.{unit}.{name}"))
                    .ok_or_else(|| bad(format!("tensor dyga.{unit}.{name} is missing")))
                    .map(|t| t.to_device(device))
            };
            units.push(UnitAnchors {
                unit,
                norm: de(u, "norm", unit)?,
                mixture: Mixture {
                    weights: t("weights")?,
                    means: t("means")?,
                    covs: t("covs")?,
                    dims: de(u, "dims", unit)?,
                },
                ids: de(u, "ids", unit)?,
                events: de(u, "events", unit)?,
                log_likelihood: de(u, "log_likelihood", unit)?,
                sizes: de(u, "sizes", unit)?,
                densities: de(u, "densities", unit)?,
                n_fit: de(u, "n_fit", unit)?,
                seconds: de(u, "seconds", unit)?,
            });
        }
        Ok(Some(Anchors {
            units,
            epoch: meta["epoch"].as_u64().unwrap_or(0) as usize,
            seconds: meta["seconds"].as_f64().unwrap_or(0.0),
            mode: serde_json::from_value(meta["mode"].clone()).unwrap_or(AlignMode::Paper),
        }))
    }

    pub fn to_device(&self, device: Device) -> Anchors {
        let mut a = self.clone();
        for u in &mut a.units {
            u.mixture = Mixture {
                weights: u.mixture.weights.to_device(device),
                means: u.mixture.means.to_device(device),
                covs: u.mixture.covs.to_device(device),
                dims: u.mixture.dims.clone(),
            };
        }
        a
    }
}

impl_show_via!(Anchors, table);

fn de<T: serde::de::DeserializeOwned>(u: &serde_json::Value, key: &str, unit: usize) -> Result<T> {
    serde_json::from_value(u[key].clone())
        .map_err(|e| Error::config("checkpoint.dyga", format!("unit {unit} {key}: {e}")))
}
