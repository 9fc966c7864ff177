//! The VAE baselines' losses against disentanglement_lib 1.5's (a float64 NumPy transcription of its TensorFlow code,
//! `tests/fixtures/make_vae_loss_fixtures.py`, on fixed tensors), and the pieces the transcription cannot fix
//! (the permutation, the estimator's behaviour).
use dydis_core::vae::losses::{self, Posterior};
use dydis_core::vae::{DipKind, Objective};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn fixture() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vae_losses.json")).unwrap(),
    )
    .unwrap()
}

/// A nested JSON array as a float32 tensor of its shape.
fn t(v: &Value) -> Tensor {
    fn walk(v: &Value, shape: &mut Vec<i64>, out: &mut Vec<f32>, depth: usize) {
        match v {
            Value::Array(a) => {
                if shape.len() == depth {
                    shape.push(a.len() as i64);
                }
                a.iter().for_each(|x| walk(x, shape, out, depth + 1));
            }
            x => out.push(x.as_f64().unwrap() as f32),
        }
    }
    let (mut shape, mut out) = (Vec::new(), Vec::new());
    walk(v, &mut shape, &mut out, 0);
    Tensor::from_slice(&out).view(shape.as_slice())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// float32 against the float64 reference.
fn close(what: &str, got: &Tensor, want: f64) {
    let g = got.double_value(&[]);
    assert!((g - want).abs() <= 2e-5 * (1.0 + want.abs()), "{what}: dydis {g} vs disentanglement_lib {want}");
}

fn post<'a>(mu: &'a Tensor, lv: &'a Tensor, z: &'a Tensor, kl: &'a Tensor, step: usize) -> Posterior<'a> {
    Posterior { mu, logvar: lv, z, kl, logits_real: None, step }
}

#[test]
fn every_objective_equals_disentanglement_libs_on_fixed_tensors() {
    let fx = fixture();
    for (i, c) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let (mu, lv, z) = (t(&c["mu"]), t(&c["logvar"]), t(&c["z"]));
        let kl = losses::gaussian_kl(&mu, &lv);
        close(&format!("case {i} KL"), &kl, f(&c["kl_loss"]));
        if let Some(x) = c.get("x") {
            close("reconstruction", &losses::reconstruction(&t(&c["logits"]), &t(x)), f(&c["reconstruction_loss"]));
        }
        let p = post(&mu, &lv, &z, &kl, 0);
        for e in c["beta_vae"].as_array().into_iter().flatten() {
            let (r, _) = losses::regularizer(&Objective::BetaVae { beta: f(&e["beta"]) }, &p);
            close("β-VAE", &r, f(&e["regularizer"]));
        }
        for e in c["annealed_vae"].as_array().into_iter().flatten() {
            let step = e["step"].as_u64().unwrap() as usize;
            let o = Objective::AnnealedVae {
                c_max: f(&e["c_max"]),
                gamma: f(&e["gamma"]),
                iteration_threshold: e["iteration_threshold"].as_u64().unwrap() as usize,
            };
            let (r, parts) = losses::regularizer(&o, &post(&mu, &lv, &z, &kl, step));
            close(&format!("AnnealedVAE step {step}"), &r, f(&e["regularizer"]));
            close("capacity", &parts[0].1, f(&e["capacity"]));
        }
        for (key, dip) in [("dip_vae_i", DipKind::I), ("dip_vae_ii", DipKind::Ii)] {
            for e in c[key].as_array().into_iter().flatten() {
                let o =
                    Objective::DipVae { dip, lambda_od: f(&e["lambda_od"]), lambda_d_factor: f(&e["lambda_d_factor"]) };
                let (r, _) = losses::regularizer(&o, &p);
                close(&format!("case {i} {key}"), &r, f(&e["regularizer"]));
            }
        }
        if let Some(e) = c["dip_vae_i"].as_array().and_then(|a| a.first()) {
            let want = t(&e["cov"]);
            let got = losses::covariance(&mu);
            assert!(got.allclose(&want, 1e-5, 1e-5, false), "covariance {got} vs {want}");
        }
        for e in c["beta_tc_vae"].as_array().into_iter().flatten() {
            let (r, parts) = losses::regularizer(&Objective::BetaTcVae { beta: f(&e["beta"]) }, &p);
            close(&format!("case {i} β-TCVAE"), &r, f(&e["regularizer"]));
            close("total correlation", &parts[0].1, f(&e["total_correlation"]));
        }
        if let Some(e) = c.get("factor_vae") {
            let (dr, dp) = (t(&c["d_real"]), t(&c["d_perm"]));
            let o = Objective::FactorVae { gamma: f(&e["gamma"]), dl_step_quirk: true };
            let (r, parts) =
                losses::regularizer(&o, &Posterior { logits_real: Some(&dr), ..post(&mu, &lv, &z, &kl, 0) });
            close("FactorVAE regularizer", &r, f(&e["vae_regularizer"]));
            close("FactorVAE TC", &parts[0].1, f(&e["tc"]));
            // disentanglement_lib's `discriminator_loss` is the log-likelihood it maximises; ours is its negative.
            close("discriminator loss", &losses::discriminator_loss(&dr, &dp), -f(&e["discriminator_loss"]));
        }
    }
}

#[test]
fn clipped_discriminator_probabilities_bound_the_loss() {
    // Logits far apart: softmax gives 0 and 1 in float32, the clip keeps the log finite (log 1e-6 per half).
    let real = Tensor::from_slice(&[-40.0f32, 40.0]).view([1, 2]);
    let perm = Tensor::from_slice(&[40.0f32, -40.0]).view([1, 2]);
    let l = losses::discriminator_loss(&real, &perm).double_value(&[]);
    assert!((l - -(1e-6f64).ln()).abs() < 1e-3, "{l}");
}

#[test]
fn shuffled_codes_keep_each_column_and_break_the_pairing() {
    let _rng = dydis_core::device::global_rng_lock();
    tch::manual_seed(3);
    let z = Tensor::arange(64 * 4, (Kind::Float, Device::Cpu)).view([64, 4]);
    let s = losses::shuffle_codes(&z);
    for j in 0..4 {
        let (a, _) = z.select(1, j).sort(0, false);
        let (b, _) = s.select(1, j).sort(0, false);
        assert!(a.equal(&b), "column {j} keeps its values");
    }
    // Row pairings: in the original every row is (4r, 4r+1, 4r+2, 4r+3); after independent shuffles almost none is.
    let intact = (s.select(1, 1) - s.select(1, 0)).eq(1.0).logical_and(&(s.select(1, 2) - s.select(1, 1)).eq(1.0));
    assert!(intact.sum(Kind::Int64).int64_value(&[]) < 4, "pairs survived: {intact}");
}

#[test]
fn total_correlation_is_larger_for_copied_columns_than_for_independent_ones() {
    let _rng = dydis_core::device::global_rng_lock();
    tch::manual_seed(5);
    let opts = (Kind::Float, Device::Cpu);
    let lv = Tensor::full([128, 4], -4.0, opts);
    let indep = Tensor::randn([128, 4], opts);
    let copied = indep.select(1, 0).unsqueeze(1).repeat([1, 4]);
    let tc = |mu: &Tensor| losses::total_correlation(mu, mu, &lv).double_value(&[]);
    // The dropped constant cancels in the difference.
    assert!(tc(&copied) > tc(&indep) + 1.0, "copied {} independent {}", tc(&copied), tc(&indep));
}

#[test]
fn kl_matches_a_monte_carlo_estimate() {
    let _rng = dydis_core::device::global_rng_lock();
    tch::manual_seed(7);
    let opts = (Kind::Double, Device::Cpu);
    let mu = Tensor::from_slice(&[0.5f64, -1.0, 0.2]).view([1, 3]);
    let lv = Tensor::from_slice(&[-0.5f64, 0.3, 0.0]).view([1, 3]);
    let z = &mu + (&lv * 0.5).exp() * Tensor::randn([200_000, 3], opts);
    let log_q = ((&z - &mu).square() / lv.exp() + &lv).sum_dim_intlist(1, false, Kind::Double) * -0.5;
    let log_p = z.square().sum_dim_intlist(1, false, Kind::Double) * -0.5;
    let mc = (log_q - log_p).mean(Kind::Double).double_value(&[]);
    let exact = losses::gaussian_kl(&mu.to_kind(Kind::Float), &lv.to_kind(Kind::Float)).double_value(&[]);
    assert!((mc - exact).abs() < 0.01, "Monte Carlo {mc} vs closed form {exact}");
}

#[test]
fn annealed_capacity_rises_linearly_then_holds() {
    let c = |s| losses::capacity(s, 25.0, 100_000);
    assert_eq!((c(0), c(50_000), c(100_000), c(200_000)), (0.0, 12.5, 25.0, 25.0));
}

mod training {
    use dydis_core::method::{self, TrainOptions};
    use dydis_core::run::{Run, RunConfig, RunDir};
    use dydis_core::train::{Trainer, VaeTrainer};
    use tch::Device;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("dydis-vae-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A preset shrunk to seconds: 16 px images of a 96-image grid, batches of 8.
    fn tiny(preset: &str, steps: usize) -> RunConfig {
        RunConfig::load_with(
            preset,
            &[
                "data=\"shapes3d-like:2x2x2x2x2x3@16\"".into(),
                "vae.image_size=16".into(),
                "vae.batch_size=8".into(),
                format!("vae.steps={steps}"),
                "vae.log_every=2".into(),
                "vae.checkpoint_every=2".into(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_objective_trains_logs_its_terms_and_evaluates() {
        let _rng = dydis_core::device::global_rng_lock();
        for (preset, term) in [
            ("cpu-beta-vae", None),
            ("cpu-annealed-vae", Some("capacity")),
            ("cpu-factor-vae", Some("disc_loss")),
            ("cpu-dip-vae-i", Some("dip")),
            ("cpu-dip-vae-ii", Some("dip")),
            ("cpu-beta-tcvae", Some("tc")),
        ] {
            let dir = tmp(preset);
            let cfg = tiny(preset, 4);
            let out = method::train(&cfg, &RunDir::new(&dir), Device::Cpu, &TrainOptions::default()).unwrap();
            // FactorVAE: disentanglement_lib's step count, two steps per update.
            let updates = if preset == "cpu-factor-vae" { 2 } else { 4 };
            assert_eq!(out[0].outcome.steps_done, updates, "{preset}");
            let log = std::fs::read_to_string(dir.join("vae/log.jsonl")).unwrap();
            let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
            assert!(last["loss"].as_f64().unwrap().is_finite(), "{preset}: {last}");
            let extra = last["extra"].to_string();
            assert!(extra.contains("reconstruction") && extra.contains("kl"), "{preset}: {extra}");
            if let Some(t) = term {
                assert!(extra.contains(t), "{preset} logs {t}: {extra}");
            }
            // Evaluated like any model: the posterior means as 10 units of D = 1.
            let run = Run::open(&dir, Device::Cpu).unwrap();
            assert!(!run.model.has_aligned_form());
            let mut config = dydis_core::eval::EvalConfig::quick();
            config.metrics = vec!["mig".into(), "factorvae".into()];
            let opts = dydis_core::eval::ModelEval {
                config,
                units: dydis_core::eval::Units::Paper,
                batch: 32,
                source: preset.into(),
                spec: run.data.clone(),
                fid: None,
            };
            let (r, latents) =
                dydis_core::eval::evaluate_model(run.model.as_ref(), run.images.as_ref(), &opts).unwrap();
            assert_eq!(latents.size(), vec![96, 10, 1]);
            assert!(r.scores["mig"].is_finite() && r.protocol == "raw units" && r.other_forms.is_empty());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn resuming_gives_exactly_the_uninterrupted_run() {
        let _rng = dydis_core::device::global_rng_lock();
        for preset in ["cpu-factor-vae", "cpu-beta-tcvae"] {
            let cfg = tiny(preset, 8);
            let (a, b) = (tmp(&format!("{preset}-a")), tmp(&format!("{preset}-b")));
            let mut straight = VaeTrainer::new(&cfg, Device::Cpu, &a, false).unwrap();
            dydis_core::train::run_stage(&mut straight, None).unwrap();
            let mut first = VaeTrainer::new(&cfg, Device::Cpu, &b, false).unwrap();
            dydis_core::train::run_stage(&mut first, Some(2)).unwrap();
            drop(first);
            let mut second = VaeTrainer::new(&cfg, Device::Cpu, &b, true).unwrap();
            assert_eq!(second.current_step(), 2);
            dydis_core::train::run_stage(&mut second, None).unwrap();
            let (x, y) = (straight.vae.named_tensors(), second.vae.named_tensors());
            assert_eq!(x.len(), y.len());
            for ((n, t), (_, u)) in x.iter().zip(&y) {
                assert!(t.equal(u), "{preset}: {n} differs after resume");
            }
            let _ = std::fs::remove_dir_all(&a);
            let _ = std::fs::remove_dir_all(&b);
        }
    }

    #[test]
    fn bad_configurations_are_named() {
        let err = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            RunConfig::load_with("cpu-beta-vae", &sets).unwrap_err().to_string()
        };
        assert!(err(&["vae.objective.beta=-1"]).contains("vae.objective.beta"));
        assert!(err(&["vae.latent=0"]).contains("vae.latent"));
        assert!(err(&["vae.image_size=40"]).contains("vae.image_size"));
        assert!(err(&["method=\"gan\""]).contains("unknown variant"));
        assert!(err(&["vae.objective.kind=\"beta\""]).contains("unknown variant"));
        // Data of another channel count than the configuration's is refused before training.
        let cfg = RunConfig::load_with(
            "cpu-beta-vae",
            &["vae.channels=1".into(), "data=\"shapes3d-like:2x2x2x2x2x3@16\"".into(), "vae.image_size=16".into()],
        )
        .unwrap();
        let e = VaeTrainer::new(&cfg, Device::Cpu, &tmp("channels"), false).err().unwrap().to_string();
        assert!(e.contains("vae.channels is 1"), "{e}");
    }
}

/// FactorVAE's grouped step: the VAE's update is what its own loss gives (the discriminator's step changes nothing
/// of it), and the discriminator's update is what its own loss on the detached and permuted codes gives (the VAE
/// loss's gradients on the discriminator are cleared first).
#[test]
fn factor_vaes_two_updates_do_not_leak_into_each_other() {
    use dydis_core::model::vae::Vae;
    use dydis_core::train::{vae_optimizers, vae_step};
    let _rng = dydis_core::device::global_rng_lock();
    let cfg = dydis_core::run::RunConfig::load_with(
        "cpu-factor-vae",
        &["vae.image_size=16".into(), "data=\"shapes3d-like:2x2x2x2x2x3@16\"".into()],
    )
    .unwrap();
    let build = || {
        tch::manual_seed(1);
        Vae::new(&cfg, Device::Cpu).unwrap()
    };
    tch::manual_seed(9);
    let x = Tensor::rand([8, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    // The grouped step.
    let a = build();
    let (mut opt, mut opt_d) = vae_optimizers(&a);
    tch::manual_seed(5);
    vae_step(&a, &mut opt, opt_d.as_mut(), &x, 0).unwrap();
    // Each update alone, from the same random draws.
    let b = build();
    let (mut opt_b, mut opt_db) = vae_optimizers(&b);
    let opt_db = opt_db.as_mut().unwrap();
    let (_, disc) = b.discriminator.as_ref().unwrap();
    tch::manual_seed(5);
    let out = b.loss(&x, 0).unwrap();
    let zd = out.z.detach();
    let d_loss = losses::discriminator_loss(&disc.forward(&zd), &disc.forward(&losses::shuffle_codes(&zd)));
    opt_b.zero_grad();
    out.loss.backward();
    opt_b.step();
    opt_db.zero_grad();
    d_loss.backward();
    opt_db.step();
    for ((n, t), (_, u)) in a.named_tensors().iter().zip(&b.named_tensors()) {
        assert!(t.allclose(u, 1e-6, 1e-7, false), "{n} differs between the grouped step and the separate updates");
    }
    // And the discriminator did move.
    let c = build();
    let moved =
        a.named_tensors().iter().zip(&c.named_tensors()).any(|((n, t), (_, u))| n.starts_with("disc.") && !t.equal(u));
    assert!(moved, "the discriminator was updated");
}

/// The real 46,080-image dSprites sub-grid ($DYDIS_REFERENCE_DATA): the study's 64 px, 1-channel networks train on
/// it and are evaluated over the whole grid through the shared path.
#[test]
fn a_vae_trains_and_evaluates_on_the_real_dsprites_sub_grid() {
    use dydis_core::method::{self, TrainOptions};
    use dydis_core::run::{Run, RunConfig, RunDir};
    let _rng = dydis_core::device::global_rng_lock();
    let dir = std::env::temp_dir().join(format!("dydis-vae-dsprites-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = RunConfig::load_with(
        "study-beta-vae",
        &["data=\"dsprites-real:subgrid\"".into(), "vae.steps=2".into(), "vae.batch_size=16".into()],
    )
    .unwrap();
    method::train(&cfg, &RunDir::new(&dir), Device::Cpu, &TrainOptions::default()).unwrap();
    let run = Run::open(&dir, Device::Cpu).unwrap();
    assert_eq!(run.factors().unwrap().len(), 46_080);
    let mut config = dydis_core::eval::EvalConfig::quick();
    config.metrics = vec!["mig".into()];
    let opts = dydis_core::eval::ModelEval {
        config,
        units: dydis_core::eval::Units::Paper,
        batch: 512,
        source: "dsprites".into(),
        spec: run.data.clone(),
        fid: None,
    };
    let (r, latents) = dydis_core::eval::evaluate_model(run.model.as_ref(), run.images.as_ref(), &opts).unwrap();
    assert_eq!(latents.size(), vec![46_080, 10, 1]);
    assert!(r.scores["mig"].is_finite());
    let _ = std::fs::remove_dir_all(&dir);
}
