//! The Denoising Multi-β VAE: β conditioning and shapes, the losses against a hand computation, the schedule, the
//! reverse step against the forward process it inverts, sampler determinism, a measured property of a short
//! training (the denoiser brings held-out latents toward the lossless end), exact resume, and named errors.
use dydis_core::device::global_rng_lock;
use dydis_core::method::{self, TrainOptions};
use dydis_core::model::multibeta::MultiBeta;
use dydis_core::multibeta::{losses, Rescale};
use dydis_core::run::{checkpoint, RunConfig, RunDir};
use dydis_core::train::{DenoiserTrainer, Trainer};
use tch::{Device, Kind, Tensor};

/// A small Multi-β VAE on the 16 px smoke grid.
fn tiny(extra: &[&str]) -> RunConfig {
    let mut set: Vec<String> = [
        "data=\"shapes3d-like:2x2x2x2x2x3@16\"",
        "multibeta.image_size=16",
        "multibeta.batch_size=16",
        "multibeta.steps=60",
        "multibeta.log_every=1000",
        "multibeta.checkpoint_every=1000",
        "multibeta.denoiser.width=64",
        "multibeta.denoiser.depth=2",
        "multibeta.denoiser.batch_size=64",
        "multibeta.denoiser.steps=300",
        "multibeta.denoiser.sampler_steps=100",
        "multibeta.denoiser.ema_decay=0.99",
        "multibeta.denoiser.lr=1e-3",
        "multibeta.denoiser.start_stat_images=96",
        "multibeta.denoiser.log_every=1000",
        "multibeta.denoiser.checkpoint_every=1000",
    ]
    .map(String::from)
    .to_vec();
    set.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load_with("cpu-multibeta", &set).unwrap()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dydis-multibeta-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn film_starts_unconditioned_and_the_shapes_hold() {
    let _g = global_rng_lock();
    tch::manual_seed(0);
    let m = MultiBeta::new(&tiny(&[]), Device::Cpu).unwrap();
    let x = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (a, b) = (m.encode(&x, 0.1).unwrap(), m.encode(&x, 0.9).unwrap());
    assert_eq!(a.size(), [4, 10]);
    assert_eq!(max_diff(&a, &b), 0.0, "zero-initialised FiLM: the encoder ignores t at step 0");
    assert_eq!(tch::no_grad(|| m.decode(&a, 0.3)).size(), [4, 3, 16, 16]);
    assert_eq!(dydis_core::method::Model::represent(&m, &x, false).unwrap().size(), [4, 10, 1]);
    // A FiLM layer with weights makes the level matter.
    tch::no_grad(|| {
        for (name, mut v) in m.vs.variables() {
            if name.starts_with("enc.e1_film") && name.ends_with("weight") {
                v.copy_(&(v.randn_like() * 0.5));
            }
        }
    });
    assert!(max_diff(&m.encode(&x, 0.1).unwrap(), &m.encode(&x, 0.9).unwrap()) > 1e-4);
    let err = m.encode(&Tensor::zeros([2, 1, 16, 16], (Kind::Float, Device::Cpu)), 0.5).unwrap_err().to_string();
    assert!(err.contains("[B, 3, 16, 16]"), "{err}");
}

#[test]
fn the_first_stage_loss_equals_a_hand_computation() {
    let logits = [0.3f64, -1.2, 2.0, 0.0, -0.5, 1.5, -2.5, 0.7];
    let x = [1.0f64, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.25];
    let mu = [0.4f64, -1.0, 0.2, 0.8];
    let (s2, beta) = ([0.3f64, 0.8], [2.0f64, 9.0]);
    let t = |v: &[f64], shape: &[i64]| Tensor::from_slice(v).to_kind(Kind::Float).reshape(shape);
    for rescale in [Rescale::Inverse, Rescale::None] {
        let out = losses::stage1(
            &t(&logits, &[2, 1, 2, 2]),
            &t(&x, &[2, 1, 2, 2]),
            &t(&mu, &[2, 2]),
            &t(&s2, &[2]),
            &t(&beta, &[2]),
            rescale,
        );
        let mut total = 0.0;
        for b in 0..2 {
            let r: f64 = (0..4)
                .map(|k| {
                    let (l, y) = (logits[4 * b + k], x[4 * b + k]);
                    l.max(0.0) - l * y + (1.0 + (-l.abs()).exp()).ln()
                })
                .sum();
            let kl = 0.5 * (mu[2 * b].powi(2) + mu[2 * b + 1].powi(2) + 2.0 * (s2[b] - 1.0 - s2[b].ln()));
            let rho = if rescale == Rescale::Inverse { 1.0 / (1.0 + beta[b]) } else { 1.0 };
            total += rho * (r + beta[b] * kl);
        }
        assert!((out.loss.double_value(&[]) - total / 2.0).abs() < 1e-5, "{rescale:?}");
    }
}

#[test]
fn the_closed_form_kl_matches_monte_carlo() {
    let _g = global_rng_lock();
    tch::manual_seed(1);
    let (mu, s2) = (Tensor::from_slice(&[0.7f32, -0.4, 1.1]).reshape([1, 3]), Tensor::from_slice(&[0.25f32]));
    let kl = losses::kl_shared(&mu, &s2).double_value(&[0]);
    let z = &mu + 0.5 * Tensor::randn([400_000, 3], (Kind::Float, Device::Cpu));
    // log q − log p per sample, constants cancelling.
    let lq = -((&z - &mu).square() / 0.5).sum_dim_intlist(1, false, Kind::Float) - 3.0 * 0.25f64.ln() * 0.5;
    let lp = -(z.square() * 0.5).sum_dim_intlist(1, false, Kind::Float);
    let mc = (lq - lp).mean(Kind::Float).double_value(&[]);
    assert!((mc - kl).abs() / kl < 0.01, "Monte Carlo {mc} vs closed form {kl}");
}

#[test]
fn the_schedule_rises_from_gamma0_to_gamma1_and_the_fallback_from_sigma_min_to_one() {
    let _g = global_rng_lock();
    tch::manual_seed(2);
    let m = MultiBeta::new(&tiny(&[]), Device::Cpu).unwrap();
    let grid = Tensor::linspace(0.0, 1.0, 1001, (Kind::Float, Device::Cpu));
    let s2 = tch::no_grad(|| m.sigma2(&grid));
    let d = s2.narrow(0, 1, 1000) - s2.narrow(0, 0, 1000);
    assert!(d.min().double_value(&[]) >= 0.0, "σ_t² never decreases");
    let sig = |g: f64| 1.0 / (1.0 + (-g).exp());
    assert!((s2.double_value(&[0]) - sig(-9.0)).abs() < 1e-6 && (s2.double_value(&[1000]) - sig(4.0)).abs() < 1e-5);
    let s = losses::sinusoidal_sigma(&Tensor::from_slice(&[0f32, 1.0]), 0.01);
    assert!((s.double_value(&[0]) - 0.01).abs() < 1e-7 && (s.double_value(&[1]) - 1.0).abs() < 1e-6);
}

#[test]
fn the_reverse_step_inverts_the_forward_process() {
    let _g = global_rng_lock();
    tch::manual_seed(3);
    let (mu_t, mu_s, eps) = (
        Tensor::randn([5, 4], (Kind::Double, Device::Cpu)),
        Tensor::randn([5, 4], (Kind::Double, Device::Cpu)),
        Tensor::randn([5, 4], (Kind::Double, Device::Cpu)),
    );
    let (s2_t, s2_s) =
        (Tensor::full([5], 0.5, (Kind::Double, Device::Cpu)), Tensor::full([5], 0.2, (Kind::Double, Device::Cpu)));
    let z_t = &mu_t + 0.5f64.sqrt() * &eps;
    let delta = &mu_t - &mu_s;
    // With the true ε and Δ, the deterministic step lands on μ_s + σ_s ε exactly.
    let z_s = losses::deterministic_step(&z_t, &delta, &eps, &s2_t, &s2_s);
    assert!(max_diff(&z_s, &(&mu_s + 0.2f64.sqrt() * &eps)) < 1e-12);
    // The stochastic step's mean is the Gaussian posterior's, μ_s + (σ_s²/σ_t²)(z_t − μ_t).
    let m = losses::reverse_mean(&z_t, &delta, &eps, &s2_t, &s2_s);
    assert!(max_diff(&m, &(&mu_s + (0.2 / 0.5) * (&z_t - &mu_t))) < 1e-12);
    // And against the forward chain itself: z_s ~ N(μ_s, σ_s²), z_t = z_s + Δ + √(σ_t² − σ_s²)·η; the regression of
    // z_s on z_t has slope σ_s²/σ_t² and residual variance τ² = σ_s²(σ_t² − σ_s²)/σ_t² (10⁵ draws).
    let n = 100_000;
    let zs: Tensor = 0.2f64.sqrt() * Tensor::randn([n], (Kind::Double, Device::Cpu)) + 0.3;
    let zt = &zs + 0.5 + 0.3f64.sqrt() * Tensor::randn([n], (Kind::Double, Device::Cpu));
    let (cs, ct) = (&zs - zs.mean(Kind::Double), &zt - zt.mean(Kind::Double));
    let slope = (&cs * &ct).mean(Kind::Double).double_value(&[]) / ct.square().mean(Kind::Double).double_value(&[]);
    let resid = (&cs - &ct * slope).square().mean(Kind::Double).double_value(&[]);
    let tau2 = losses::reverse_var(&s2_t, &s2_s).double_value(&[0]);
    assert!((slope - 0.4).abs() < 0.01, "slope {slope}");
    assert!((resid - tau2).abs() / tau2 < 0.02, "residual variance {resid} vs τ² {tau2}");
}

#[test]
fn sampling_is_fixed_by_its_seed() {
    let _g = global_rng_lock();
    tch::manual_seed(4);
    let m = MultiBeta::new(&tiny(&[]), Device::Cpu).unwrap();
    let a = m.generate(3, 10, 7).unwrap();
    let b = m.generate(3, 10, 7).unwrap();
    let c = m.generate(3, 10, 8).unwrap();
    assert_eq!(a.size(), [3, 3, 16, 16]);
    assert_eq!(max_diff(&a, &b), 0.0);
    assert!(max_diff(&a, &c) > 1e-4);
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let r1 = m.denoised_reconstruction(&x, 0.5, 5, 11).unwrap();
    assert_eq!(max_diff(&r1, &m.denoised_reconstruction(&x, 0.5, 5, 11).unwrap()), 0.0);
    assert!(m.denoise(&m.encode(&x, 0.5).unwrap(), 101, 1, 0, false).is_err(), "start beyond N");
}

#[test]
fn a_short_training_brings_held_out_latents_toward_the_lossless_end_and_resumes_exactly() {
    let _g = global_rng_lock();
    let dir = tmp("train");
    let cfg = tiny(&[]);
    method::train(&cfg, &RunDir::new(&dir), Device::Cpu, &TrainOptions::default()).unwrap();
    let (trained, _) = method::load_as::<MultiBeta>(&dir, Device::Cpu).unwrap();
    // The untrained denoiser on the same VAE: the first stage's checkpoint.
    let first = RunDir::new(&dir).newest("mbvae").unwrap().unwrap().1;
    let untrained = MultiBeta::from_checkpoint(&checkpoint::load(&first).unwrap(), Device::Cpu).unwrap();
    // Held-out: images of another grid of the same look-alike.
    let held = dydis_core::data::open_images("shapes3d-like:3x3x2x2x2x2@16", 16).unwrap();
    let x = held.images(&(0..64).collect::<Vec<_>>(), Device::Cpu).unwrap();
    let d = trained.denoising_distances(&x, 0.5, 1, 21).unwrap();
    let u = untrained.denoising_distances(&x, 0.5, 1, 21).unwrap();
    assert_eq!(d.start, u.start, "the same VAE, the same start");
    eprintln!("trained: {d}\nuntrained: {u}");
    assert!(d.denoised < u.denoised && d.denoised < d.start, "trained {d}; untrained {u}");

    // Resume: 300 denoiser steps at once equal 150 + 150.
    let split = tmp("split");
    std::fs::create_dir_all(&split).unwrap();
    dydis_core::fs::copy_tree(&dir.join("mbvae"), &split.join("mbvae")).unwrap();
    let opts = TrainOptions { resume: true, max_steps: Some(150), only_stage: None };
    method::train(&cfg, &RunDir::new(&split), Device::Cpu, &opts).unwrap();
    let mut t = DenoiserTrainer::new(&cfg, Device::Cpu, &split, true).unwrap();
    assert_eq!(t.current_step(), 150);
    dydis_core::train::run_stage(&mut t, None).unwrap();
    let (resumed, _) = method::load_as::<MultiBeta>(&split, Device::Cpu).unwrap();
    for ((n, a), (_, b)) in
        checkpoint::named(&trained.ema_vs, "").iter().zip(checkpoint::named(&resumed.ema_vs, "").iter())
    {
        assert_eq!(max_diff(a, b), 0.0, "{n}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&split).unwrap();
}

#[test]
fn invalid_values_are_named() {
    for (set, field) in [
        ("multibeta.beta_max=0.05", "multibeta.beta_max"),
        ("multibeta.beta_min=-1", "multibeta.beta_min"),
        ("multibeta.denoiser.sampler_steps=1", "multibeta.denoiser.sampler_steps"),
        ("multibeta.eval_t=1.5", "multibeta.eval_t"),
        ("multibeta.image_size=20", "multibeta.image_size"),
        ("multibeta.gamma1=-10", "multibeta.gamma1"),
        ("multibeta.steps=0", "multibeta.steps"),
    ] {
        let err = RunConfig::load_with("cpu-multibeta", &[set.to_string()]).unwrap_err().to_string();
        assert!(err.contains(field), "{set}: {err}");
    }
    let dir = tmp("nofirst");
    let err = DenoiserTrainer::new(&tiny(&[]), Device::Cpu, &dir, false).err().unwrap().to_string();
    assert!(err.contains("needs a trained VAE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
