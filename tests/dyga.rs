//! DyGA: EM against scikit-learn (fixture), anchor selection on synthetic 32-D mixtures, split/filter
//! bookkeeping, degenerate inputs, and the alignment modes.
use dydis_core::dyga::anchors::apply_splits;
use dydis_core::dyga::{
    align, fit_units, select_anchors, AlignMode, AnchorFit, CovModel, DygaConfig, EmOptions, Event, InitMethod,
    Mixture, SplitCriterion,
};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn t2(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let d = rows[0].len() as i64;
    Tensor::from_slice(&rows.concat()).view([-1, d])
}
fn t1(v: &Value) -> Tensor {
    let x: Vec<f64> = serde_json::from_value(v.clone()).unwrap();
    Tensor::from_slice(&x)
}
fn t3(v: &Value) -> Tensor {
    let m: Vec<Vec<Vec<f64>>> = serde_json::from_value(v.clone()).unwrap();
    let (k, d) = (m.len() as i64, m[0].len() as i64);
    Tensor::from_slice(&m.concat().concat()).view([k, d, d])
}
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    ((a - b).abs() / (b.abs() + 1e-3)).max().double_value(&[])
}

#[test]
fn em_matches_scikit_learn_from_the_same_initialisation() {
    let _rng = dydis_core::device::global_rng_lock();
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gmm_full.json")).unwrap(),
    )
    .unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = t2(&case["X"]);
        let init = &case["init"];
        let k = case["k"].as_i64().unwrap();
        let cov = t2(&init["covariance_all_components"]);
        let m0 = Mixture {
            weights: t1(&init["weights"]),
            means: t2(&init["means"]),
            covs: cov.unsqueeze(0).repeat([k, 1, 1]),
            dims: vec![x.size()[1]; k as usize],
        };
        let opt = |it: usize| EmOptions { max_iter: it, tol: Some(1e-3), reg: 1e-6, model: CovModel::Full };
        let (m, trace) = m0.clone().em(&x, &opt(100)).unwrap();
        let fit = &case["fit"];
        // Case c has a 12-point component with condition number ~4e6: looser.
        let tol = if name.contains('c') && k == 5 { 1e-4 } else { 1e-6 };
        assert_eq!(trace.iterations as i64, fit["n_iter"].as_i64().unwrap(), "{name}: iterations");
        assert_eq!(trace.converged, fit["converged"].as_bool().unwrap(), "{name}");
        let lb = fit["lower_bound"].as_f64().unwrap();
        assert!(
            (trace.log_likelihood.last().unwrap() - lb).abs() < 1e-8 * lb.abs().max(1.0),
            "{name}: lower bound {} vs {lb}",
            trace.log_likelihood.last().unwrap()
        );
        let lbs: Vec<f64> = serde_json::from_value(fit["lower_bounds_per_iter"].clone()).unwrap();
        for (a, b) in trace.log_likelihood.iter().zip(&lbs) {
            assert!((a - b).abs() < 1e-8 * b.abs().max(1.0), "{name}: per-iteration bound {a} vs {b}");
        }
        assert!(max_rel(&m.weights, &t1(&fit["weights"])) < tol, "{name}: weights");
        assert!(max_rel(&m.means, &t2(&fit["means"])) < tol, "{name}: means");
        assert!(max_rel(&m.covs, &t3(&fit["covariances"])) < tol * 10.0, "{name}: covariances");
        let labels: Vec<i64> = serde_json::from_value(fit["labels"].clone()).unwrap();
        let ours: Vec<i64> = Vec::try_from(m.predict(&x).unwrap()).unwrap();
        assert_eq!(ours, labels, "{name}: labels");
        // Log-likelihood never decreases.
        for w in trace.log_likelihood.windows(2) {
            assert!(w[1] >= w[0] - 1e-9, "{name}: EM decreased the log-likelihood {w:?}");
        }
        if let Some(steps) = case.get("steps") {
            for (it, key) in [(1, "after_1_iter"), (5, "after_5_iter")] {
                let (mi, _) = m0.clone().em(&x, &EmOptions { tol: None, ..opt(it) }).unwrap();
                assert!(max_rel(&mi.means, &t2(&steps[key]["means"])) < 1e-6, "{name}: means {key}");
                assert!(max_rel(&mi.weights, &t1(&steps[key]["weights"])) < 1e-6, "{name}: weights {key}");
            }
        }
    }
}

/// `k` well-separated Gaussian clusters in 32 dimensions with their true means. Each cluster has the HDDC
/// structure: a 3-dimensional subspace of large variance plus small isotropic noise. Callers hold
/// `global_rng_lock` (the draws are seeded).
fn synthetic(k: i64, per: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let opts = (Kind::Double, Device::Cpu);
    let means = Tensor::rand([k, 32], opts) * 6.0;
    let mut xs = Vec::new();
    for c in 0..k {
        let a = Tensor::randn([3, 32], opts) * 0.25;
        xs.push(Tensor::randn([per, 3], opts).matmul(&a) + Tensor::randn([per, 32], opts) * 0.1 + means.get(c));
    }
    (Tensor::cat(&xs, 0), means)
}

#[test]
fn anchors_recover_a_known_32d_mixture() {
    let _rng = dydis_core::device::global_rng_lock();
    // Algorithm 2's rule (the default) keeps every split and so over-splits true clusters by design; the BIC gate
    // with a refit after each round is the option that recovers K.
    let rules = [(SplitCriterion::Always, false), (SplitCriterion::Bic, true)];
    for seed in [7, 8, 9] {
        let (x, true_means) = synthetic(6, 400, seed);
        for (model, (rule, refit)) in
            [CovModel::Full, CovModel::default()].into_iter().flat_map(|m| rules.map(|r| (m.clone(), r)))
        {
            let cfg = DygaConfig {
                model: model.clone(),
                k0: 4,
                split_criterion: rule,
                refit_after_split_round: refit,
                ..DygaConfig::default()
            };
            let a = select_anchors(0, &x, &cfg, 11).unwrap();
            let raw = a.raw_means();
            let d = true_means
                .unsqueeze(1)
                .f_sub(&raw.unsqueeze(0))
                .unwrap()
                .square()
                .sum_dim_intlist(-1, false, Kind::Double)
                .sqrt();
            if rule == SplitCriterion::Bic {
                // Both models recover the number of components within one (HDDC needed its full-covariance start for
                // this: without it these draws gave K 7-12).
                assert!(
                    (a.k() as i64 - 6).abs() <= 1,
                    "{model:?} seed {seed}: K = {} for 6 true components; events {:#?}",
                    a.k(),
                    a.events
                );
            } else {
                // Splits only ever cut true clusters: at least one anchor each, and every anchor inside one (no
                // component straddles two clusters about 14 apart; a cluster spreads about 1.4 along each of its three
                // main directions, so a child of a split one sits up to about 2 from its mean).
                assert!((6..=cfg.k_max).contains(&a.k()), "{model:?} seed {seed}: K = {}", a.k());
                let farthest = d.amin([0], false).max().double_value(&[]);
                assert!(farthest < 3.5, "{model:?} seed {seed}: an anchor is {farthest} from every true mean");
            }
            // Every true mean has an anchor close to it (raw space). Under the BIC gate a cluster covered by two anchors
            // (K = 7) has each about 0.4 from its mean; a cluster split in two by Algorithm 2's rule may have both
            // children a little over 1 away, still well inside it.
            let nearest = d.amin([1], false).max().double_value(&[]);
            let within = if rule == SplitCriterion::Bic { 1.0 } else { 3.5 };
            assert!(
                nearest < within,
                "{model:?} seed {seed}: a true mean is {nearest} from every anchor; K {} events {:#?}",
                a.k(),
                a.events
            );
            // Log-likelihood never decreases within an EM phase (HDDC: from its second iteration, once d_k is chosen).
            for (i, w) in a.log_likelihood.windows(2).enumerate() {
                let second = i > 0 && a.log_likelihood[i - 1].0 == w[0].0;
                if w[0].0 == w[1].0 && (second || model == CovModel::Full) {
                    assert!(w[1].1 >= w[0].1 - 1e-6, "{model:?}: {w:?}");
                }
            }
            assert!(
                a.mixture.weights.isfinite().all().int64_value(&[]) == 1
                    && a.mixture.covs.isfinite().all().int64_value(&[]) == 1
            );
            if let CovModel::Hddc { .. } = model {
                assert!(a.mixture.dims.iter().all(|&d| (1..32).contains(&d)), "{:?}", a.mixture.dims);
            }
            // Splits are recorded against the component they replaced, and their children exist or were refined away.
            for e in &a.events {
                if let Event::Split { children, child_weights, parent_weight, .. } = e {
                    assert!(children[0] != children[1]);
                    assert!(
                        (child_weights[0] + child_weights[1] - parent_weight).abs() < 1e-9,
                        "children share the parent's weight"
                    );
                }
            }
        }
    }
}

#[test]
fn split_bookkeeping_replaces_exactly_the_selected_components() {
    let opts = (Kind::Double, Device::Cpu);
    let m = Mixture {
        weights: Tensor::from_slice(&[0.1f64, 0.2, 0.3, 0.25, 0.15]),
        means: Tensor::arange(5, opts).unsqueeze(1).repeat([1, 3]),
        covs: Tensor::eye(3, opts).unsqueeze(0).repeat([5, 1, 1]),
        dims: vec![3; 5],
    };
    let child = |v: f64| Mixture {
        weights: Tensor::from_slice(&[0.5f64, 0.5]),
        means: Tensor::full([2, 3], v, opts),
        covs: Tensor::eye(3, opts).unsqueeze(0).repeat([2, 1, 1]),
        dims: vec![3; 2],
    };
    // Components 1 and 3 are split. The released code deletes component 1 first, so its precomputed index 3 then
    // points at what was component 4: the stale-index bug this checks against.
    let (out, ids) =
        apply_splits(&m, &[10, 11, 12, 13, 14], &[(1, child(101.0), [20, 21]), (3, child(103.0), [22, 23])]);
    assert_eq!(ids, vec![10, 20, 21, 12, 22, 23, 14]);
    let firsts: Vec<f64> = Vec::try_from(out.means.select(1, 0)).unwrap();
    assert_eq!(firsts, vec![0.0, 101.0, 101.0, 2.0, 103.0, 103.0, 4.0]);
    let w: Vec<f64> = Vec::try_from(out.weights).unwrap();
    for (got, want) in w.iter().zip([0.1, 0.1, 0.1, 0.3, 0.125, 0.125, 0.15]) {
        assert!((got - want).abs() < 1e-12, "{w:?}");
    }
}

/// Extractor-like float32 features as the released code normalises them: ReLU outputs (most entries exactly zero,
/// several units of scale) mapped into [−1, 0], so that a component's spread is tiny next to its distance from the
/// origin and some dimensions are constant within it. Its covariances must stay positive definite (the M-step's
/// uncentred shortcut made them indefinite: a refit of the released-code ablation arm failed on this).
#[test]
fn float32_features_far_from_the_origin_fit_in_released_mode() {
    let _rng = dydis_core::device::global_rng_lock();
    let x = {
        tch::manual_seed(5);
        let opts = (Kind::Float, Device::Cpu);
        let comp = Tensor::randint(6, [10_000], (Kind::Int64, Device::Cpu));
        let means = Tensor::randn([6, 32], opts) * 2.0;
        let z = Tensor::randn([10_000, 32], opts) * 0.02 + means.index_select(0, &comp);
        (z.relu() * 3.0).contiguous()
    };
    assert!(x.eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]) > 0.3, "mostly zeros, as after a ReLU");
    for model in [CovModel::Full, CovModel::default()] {
        let cfg = DygaConfig { align: AlignMode::ReleasedCode, model: model.clone(), ..DygaConfig::default() };
        let a = select_anchors(0, &x, &cfg, 3).unwrap_or_else(|e| panic!("{model:?}: {e}"));
        assert!(a.norm.offset > 0.0, "released normalisation subtracts the maximum");
        assert!(
            a.mixture.covs.isfinite().all().int64_value(&[]) == 1
                && a.mixture.means.isfinite().all().int64_value(&[]) == 1
        );
        // ReLU-clipped clusters are not Gaussian, so K is only bounded here (6 to 8 in practice).
        assert!((6..=cfg.k_max).contains(&a.k()), "{model:?}: K = {}", a.k());
    }
}

#[test]
fn degenerate_inputs_give_errors_or_documented_results() {
    let _rng = dydis_core::device::global_rng_lock();
    let opts = (Kind::Double, Device::Cpu);
    let cfg = DygaConfig::default();
    // Identical features: one anchor at that value, finite everywhere.
    let same = Tensor::ones([200, 32], opts) * 0.7;
    let a = select_anchors(3, &same, &cfg, 0).unwrap();
    assert_eq!(a.k(), 1);
    assert!((a.raw_means() - 0.7).abs().max().double_value(&[]) < 1e-6);
    assert!(a.mixture.covs.isfinite().all().int64_value(&[]) == 1);
    // NaN / inf: an error naming the unit.
    let bad = Tensor::rand([100, 32], opts);
    let _ = bad.get(5).get(3).fill_(f64::NAN);
    let e = select_anchors(7, &bad, &cfg, 0).unwrap_err().to_string();
    assert!(e.contains("unit 7") && e.contains("NaN"), "{e}");
    // Fewer points than components: at most n anchors, filtered down to the largest, no NaN.
    let few = Tensor::rand([5, 32], opts);
    let a = select_anchors(0, &few, &cfg, 0).unwrap();
    assert!(a.k() >= 1 && a.k() <= 5);
    assert!(a.mixture.means.isfinite().all().int64_value(&[]) == 1);
    // A constant unit next to normal ones, through the parallel driver; ReLU-like exact zeros included.
    let (x, _) = synthetic(3, 100, 1);
    let feats = Tensor::stack(&[x.relu(), Tensor::zeros([300, 32], opts)], 1);
    let anchors = fit_units(&feats, &DygaConfig { k0: 3, ..cfg.clone() }, 5, 1).unwrap();
    assert_eq!(anchors.units.len(), 2);
    assert_eq!(anchors.units[1].k(), 1);
    // Invalid settings are named.
    let e = fit_units(&feats, &DygaConfig { k0: 40, ..cfg }, 5, 1).unwrap_err().to_string();
    assert!(e.contains("k0"), "{e}");
}

#[test]
fn alignment_modes() {
    let _rng = dydis_core::device::global_rng_lock();
    let (x, _) = synthetic(3, 200, 3);
    let c = Tensor::stack(&[x.relu(), (x * 0.5).relu()], 1).to_kind(Kind::Float); // [600, 2, 32], with exact zeros
    let cfg = DygaConfig { k0: 3, ..DygaConfig::default() };
    let anchors = fit_units(&c, &cfg, 0, 1).unwrap();
    // Paper: δ in (0, λ], features move toward their anchor and never past it.
    let (out, st) = align(&c, &anchors, AlignMode::Paper, 0.1, 1e-4, false).unwrap();
    assert!(st.delta_mean > 0.0 && st.delta_mean <= 0.1 && st.shift_mean > 0.0, "{st:?}");
    for u in &anchors.units {
        let xi = c.select(1, u.unit as i64);
        let k = u.mixture.log_joint(&u.norm.apply(&xi)).unwrap().argmax(1, false);
        let mu = u.raw_means().index_select(0, &k).to_kind(Kind::Float);
        let before = (&xi - &mu).abs().sum(Kind::Double).double_value(&[]);
        let after = (out.select(1, u.unit as i64) - &mu).abs().sum(Kind::Double).double_value(&[]);
        assert!(after < before && after > 0.85 * before, "moved toward the anchor by at most λ: {after} vs {before}");
    }
    // Eq. 6 by hand for the first rows of every unit: δ = λ·exp(−mean_j |c_j − μ_j| / max(|c_j|, ε)), ε = 1e-3 × the
    // unit's std, and c̃ = c + δ(μ − c).
    for u in &anchors.units {
        let xi = c.select(1, u.unit as i64);
        let k = u.mixture.log_joint(&u.norm.apply(&xi)).unwrap().argmax(1, false);
        let mu = u.raw_means().index_select(0, &k);
        let eps = (1e-3 * u.norm.std).max(1e-12);
        for row in 0..5 {
            let cv: Vec<f64> = Vec::try_from(xi.get(row).to_kind(Kind::Double)).unwrap();
            let mv: Vec<f64> = Vec::try_from(mu.get(row).to_kind(Kind::Double)).unwrap();
            let ov: Vec<f64> = Vec::try_from(out.select(1, u.unit as i64).get(row).to_kind(Kind::Double)).unwrap();
            let mean = cv.iter().zip(&mv).map(|(c, m)| (c - m).abs() / c.abs().max(eps)).sum::<f64>() / cv.len() as f64;
            let delta = 0.1 * (-mean).exp();
            for j in 0..cv.len() {
                let want = cv[j] + delta * (mv[j] - cv[j]);
                assert!(
                    (ov[j] - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "unit {} row {row} [{j}]: {} vs {want}",
                    u.unit,
                    ov[j]
                );
            }
        }
    }
    // Stochastic (Gumbel) choice in training also stays finite.
    let (o2, _) = align(&c, &anchors, AlignMode::Paper, 0.1, 1e-4, true).unwrap();
    assert!(o2.isfinite().all().int64_value(&[]) == 1);
    // Released code on ReLU features with exact zeros: λ_mix underflows to 0, the alignment is inert.
    let rel = fit_units(&c, &DygaConfig { align: AlignMode::ReleasedCode, ..cfg }, 0, 1).unwrap();
    let (o3, st3) = align(&c, &rel, AlignMode::ReleasedCode, 0.1, 1e-4, false).unwrap();
    assert_eq!(st3.delta_mean, 0.0, "λ_mix = {}", st3.delta_mean);
    assert!(o3.equal(&c));
    // Off: identity.
    let (o4, _) = align(&c, &anchors, AlignMode::Off, 0.1, 1e-4, false).unwrap();
    assert!(o4.equal(&c));
}

/// The anchor choice of Algorithm 3: argmax of the posterior at evaluation; in training a Gumbel-softmax whose
/// largest weight falls on a posterior sample (frequencies follow the posterior) and which is one-hot as τ → 0.
#[test]
fn anchor_choice_follows_the_posterior_and_hardens_as_tau_vanishes() {
    let _rng = dydis_core::device::global_rng_lock();
    tch::manual_seed(11);
    let p = [0.5f64, 0.3, 0.2];
    let n = 20_000;
    let lj = Tensor::from_slice(&p.map(f64::ln)).unsqueeze(0).repeat([n, 1]);
    let hard = dydis_core::dyga::anchor_weights(&lj, 1e-4, false);
    assert!(hard.select(1, 0).eq(1.0).all().int64_value(&[]) == 1, "evaluation picks the most probable anchor");
    for tau in [1.0, 1e-4] {
        let w = dydis_core::dyga::anchor_weights(&lj, tau, true);
        let pick = w.argmax(1, false);
        for (k, &pk) in p.iter().enumerate() {
            let freq = pick.eq(k as i64).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
            // Binomial standard error at n = 20,000 is at most 0.0036: four of them.
            assert!((freq - pk).abs() < 0.015, "τ {tau}: anchor {k} chosen {freq:.4}, posterior {pk}");
        }
        // Share of rows whose largest weight is essentially 1 (rows whose two best perturbed scores lie within ~τ
        // of each other stay split, about τ of them).
        let one_hot = w.max_dim(1, false).0.gt(0.999).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
        if tau < 1e-3 {
            assert!(one_hot > 0.998, "τ {tau}: the weights are one-hot ({one_hot} of the rows)");
        } else {
            assert!(one_hot < 0.5, "τ {tau}: the weights stay soft ({one_hot} of the rows one-hot)");
        }
    }
}

#[test]
fn the_released_code_fit_runs_its_own_loop() {
    let _rng = dydis_core::device::global_rng_lock();
    let (x, _) = synthetic(6, 300, 5);
    let cfg = DygaConfig { fit: AnchorFit::ReleasedCode, ..DygaConfig::default() };
    let a = select_anchors(0, &x.to_kind(Kind::Float), &cfg, 3).unwrap();
    let init = a.events.iter().find_map(|e| match e {
        Event::Init { k, by, .. } => Some((*k, by.clone())),
        _ => None,
    });
    assert_eq!(init, Some((8, "distinct random rows, identity covariances (released code)".to_string())));
    // Fixed EM iterations everywhere (no convergence test), on every row (fewer than 100,000), max-subtracting
    // normalisation (features in [-1, 0]).
    for e in &a.events {
        if let Event::Em { iterations, converged, .. } = e {
            assert_eq!((*iterations, *converged), (cfg.max_iter, false), "{e:?}");
        }
    }
    assert_eq!(a.n_fit, 1800);
    assert!((a.norm.offset - x.max().double_value(&[])).abs() < 1e-5, "{:?}", a.norm);
    // Children weighted π_child / 2 whatever the parent's weight, no BIC.
    let splits: Vec<_> = a
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Split { child_weights, delta_bic, parent_weight, .. } => {
                Some((*child_weights, *delta_bic, *parent_weight))
            }
            _ => None,
        })
        .collect();
    assert!(!splits.is_empty(), "the released loop splits: {:#?}", a.events);
    for (cw, bic, pw) in &splits {
        assert!((cw[0] + cw[1] - 0.5).abs() < 1e-6 && bic.is_none(), "{cw:?} {bic:?} (parent {pw})");
    }
    // The fit the alignment uses is consistent: every anchor id unique, K as many as components.
    let mut ids = a.ids.clone();
    ids.dedup();
    assert_eq!(ids.len(), a.k());
    assert!(a.k() >= 1 && a.mixture.weights.isfinite().all().int64_value(&[]) == 1);
}

#[test]
fn the_released_code_fit_subsamples_a_tenth_above_100000_rows() {
    let _rng = dydis_core::device::global_rng_lock();
    tch::manual_seed(0);
    let x = Tensor::randn([100_010, 2], (Kind::Float, Device::Cpu));
    let cfg =
        DygaConfig { fit: AnchorFit::ReleasedCode, k0: 2, max_iter: 3, max_split_rounds: 1, ..DygaConfig::default() };
    let a = select_anchors(0, &x, &cfg, 1).unwrap();
    assert_eq!(a.n_fit, 10_001);
}

#[test]
fn the_extras_beyond_algorithm_2_are_named_options() {
    let _rng = dydis_core::device::global_rng_lock();
    let bad = |c: DygaConfig| c.validate().unwrap_err().to_string();
    assert!(bad(DygaConfig { init: InitMethod::PrincipalAxis, ..DygaConfig::default() }).contains("dyga.init"));
    assert!(
        bad(DygaConfig { child_init: InitMethod::KmeansPlusPlus, ..DygaConfig::default() }).contains("dyga.child_init")
    );
    assert!(bad(DygaConfig { min_split_members: 1, ..DygaConfig::default() }).contains("dyga.min_split_members"));
    // The names a preset writes.
    let set = |kv: &[&str]| {
        let kv: Vec<String> = kv.iter().map(|s| s.to_string()).collect();
        dydis_core::run::RunConfig::load_with("smoke", &kv).unwrap().dyga
    };
    let cfg = set(&[
        "dyga.init=\"random-rows\"",
        "dyga.child_init=\"random-rows\"",
        "dyga.min_split_members=2",
        "dyga.refit_after_split_round=true",
        "dyga.split_criterion=\"always\"",
    ]);
    assert_eq!((cfg.init, cfg.child_init), (InitMethod::RandomRows, InitMethod::RandomRows));
    assert_eq!(set(&["dyga.init=\"kmeans++\""]).init, DygaConfig::default().init);
    // With every released choice switched on, the paper fit still runs and says how it started.
    let (x, _) = synthetic(4, 200, 2);
    let a = select_anchors(0, &x, &cfg, 0).unwrap();
    assert!(matches!(&a.events[0], Event::Init { by, .. } if by == "distinct random rows"), "{:?}", a.events[0]);
    assert!(a.events.iter().any(|e| matches!(e, Event::Em { phase, .. } if phase.starts_with("after split round"))));
}
