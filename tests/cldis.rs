//! CL-Dis: Diff-AE's networks and modulation, DDIM inversion then decoding on a trained smoke model, the
//! distillation and the feedback against hand computations, the curriculum, exact resume of the closed loop, the
//! navigation on a finished run, and named errors for invalid configurations and inputs.
use dydis_core::cldis::feedback::{curriculum_t, Feedback};
use dydis_core::cldis::{losses, FeedbackConfig, FeedbackForm};
use dydis_core::device::global_rng_lock;
use dydis_core::method::cldis::{train_navigation, ClDis};
use dydis_core::method::{self, TrainOptions};
use dydis_core::nn::diffae::{BlockDims, CondResBlock, Conditions};
use dydis_core::run::{checkpoint, RunConfig, RunDir};
use dydis_core::train::{ClDisTrainer, Phase, Trainer};
use tch::{nn, Device, Kind, Tensor};

/// A small CL-Dis on the 16 px smoke grid.
fn tiny(extra: &[&str]) -> RunConfig {
    let mut set: Vec<String> = [
        "data=\"shapes3d-like:2x2x2x2x2x3@16\"",
        "cldis.image_size=16",
        "cldis.batch_size=16",
        "cldis.lr=1e-3",
        "cldis.ema_decay=0.9",
        "cldis.ddim_steps=20",
        "cldis.inversion_steps=20",
        "cldis.diffae.channels=32",
        "cldis.diffae.channel_mult=[1, 2]",
        "cldis.diffae.enc_channel_mult=[1, 2]",
        "cldis.diffae.attention_res=[8]",
        "cldis.diffae.embed_dim=64",
        "cldis.diffae.z_sem=4",
        "cldis.copilot.latent=4",
        "cldis.copilot.steps=4",
        "cldis.feedback.variance_images=64",
        "cldis.diffae_steps=4",
        "cldis.loop_steps=4",
        "cldis.navigation.steps=3",
        "cldis.navigation.batch_size=4",
        "cldis.navigation.ddim_steps=3",
        "cldis.content_tracking.images=2",
        "cldis.content_tracking.frames=3",
        "cldis.content_tracking.flow.iterations=20",
        "cldis.content_tracking.flow.levels=2",
        "cldis.log_every=1000",
        "cldis.checkpoint_every=1000",
    ]
    .map(String::from)
    .to_vec();
    set.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load_with("cpu-cl-dis", &set).unwrap()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dydis-cldis-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn diff_ae_networks_start_as_diff_ae_does() {
    let _g = global_rng_lock();
    tch::manual_seed(0);
    let m = ClDis::new(&tiny(&[]), Device::Cpu).unwrap();
    let x = Tensor::rand([3, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let z = m.z_sem(&x, false).unwrap();
    assert_eq!(z.size(), [3, 4]);
    let t = Tensor::from_slice(&[0i64, 500, 999]);
    let eps = tch::no_grad(|| m.unet.forward_t(&x, &t, &z, false));
    assert_eq!(eps.size(), x.size());
    assert_eq!(eps.abs().max().double_value(&[]), 0.0, "the output convolution starts at zero");
    assert_eq!(dydis_core::method::Model::represent(&m, &x, false).unwrap().size(), [3, 4, 1]);
    let e = m.z_sem(&Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu)), true).unwrap_err().to_string();
    assert!(e.contains("[B, 3, 16, 16]"), "{e}");
}

#[test]
fn the_two_conditions_modulate_as_diff_ae_does() {
    let _g = global_rng_lock();
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let dims = BlockDims { cin: 8, cout: 8, embed: 6, z_sem: 5, groups: 4 };
    let block = CondResBlock::new(vs.root() / "b", dims, 0.0, dydis_core::nn::resblock::Resample::None);
    let vars = vs.variables();
    tch::no_grad(|| {
        // Zero time and code projections (s_t = b_t = s_z = 0) and a non-zero output convolution.
        for n in ["b.time.weight", "b.time.bias", "b.cond.weight", "b.cond.bias"] {
            let _ = vars[n].shallow_clone().zero_();
        }
        let _ = vars["b.out_conv.weight"].shallow_clone().normal_(0.0, 0.1);
    });
    let x = Tensor::randn([2, 8, 4, 4], (Kind::Float, Device::Cpu));
    let (temb, z) =
        (Tensor::randn([2, 6], (Kind::Float, Device::Cpu)), Tensor::randn([2, 5], (Kind::Float, Device::Cpu)));
    let out = tch::no_grad(|| block.forward(&x, &Conditions { time: &temb, z_sem: &z }, false));
    let conv = |h: &Tensor, name: &str| {
        h.conv2d(&vars[&format!("b.{name}.weight")], Some(&vars[&format!("b.{name}.bias")]), [1, 1], [1, 1], [1, 1], 1)
    };
    let gn = |h: &Tensor, name: &str| {
        h.group_norm(4, Some(&vars[&format!("b.{name}.weight")]), Some(&vars[&format!("b.{name}.bias")]), 1e-5, false)
    };
    let h = conv(&gn(&x, "in_norm").silu(), "in_conv");
    let expect = &x + conv(&gn(&h, "out_norm").silu(), "out_conv");
    assert!(max_diff(&out, &expect) < 1e-5, "with zero conditions the block is GN → SiLU → conv");
    // s_z = 1 everywhere doubles the normalised features before the SiLU: h·(1 + s_z).
    tch::no_grad(|| {
        let _ = vars["b.cond.bias"].shallow_clone().fill_(1.0);
    });
    let out = tch::no_grad(|| block.forward(&x, &Conditions { time: &temb, z_sem: &z }, false));
    let expect = &x + conv(&(gn(&h, "out_norm") * 2.0).silu(), "out_conv");
    assert!(max_diff(&out, &expect) < 1e-5, "the code scales by (1 + s_z)");
}

#[test]
fn ddim_inversion_then_decoding_reconstructs_on_a_trained_model() {
    let _g = global_rng_lock();
    let cfg = tiny(&["cldis.diffae_steps=150"]);
    let dir = tmp("inversion");
    let opts = TrainOptions { only_stage: Some("diffae".into()), ..Default::default() };
    method::train(&cfg, &RunDir::new(&dir), Device::Cpu, &opts).unwrap();
    let (_, p) = RunDir::new(&dir).newest("diffae").unwrap().unwrap();
    let m = ClDis::from_checkpoint(&checkpoint::load(&p).unwrap(), Device::Cpu).unwrap();
    let data = dydis_core::data::open_images(&cfg.data, 16).unwrap();
    let x = data.images(&[0, 17, 40, 77, 95], Device::Cpu).unwrap();
    let err = |r: &Tensor| (r - &x).square().mean(Kind::Float).double_value(&[]);
    let inverted = err(&m.reconstruct_images(&x).unwrap());
    let z = m.z_sem(&x, true).unwrap();
    tch::manual_seed(5);
    let random = err(&m.decode(&x.randn_like(), &z, 20).clamp(-1.0, 1.0));
    assert!(inverted < 0.3 * random && inverted < 0.05, "inversion MSE {inverted} vs random x_T {random}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn distillation_against_hand_computation() {
    let s = Tensor::from_slice(&[1f32, 2.0, 3.0]).view([1, 3]);
    let t = Tensor::from_slice(&[3f32, 2.0, 1.0]).view([1, 3]);
    // Σ p (log p − log q) with p = softmax(1, 2, 3), q = softmax(3, 2, 1), computed independently in Python.
    assert!((losses::distillation(&s, &t, 1.0).double_value(&[]) - 1.1504207652088831).abs() < 1e-6);
    let s = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0]).view([1, 4]);
    let t = Tensor::from_slice(&[1f32, 1.0, -1.0, 0.0]).view([1, 4]).set_requires_grad(true);
    let l = losses::distillation(&s, &t, 2.0);
    assert!((l.double_value(&[]) - 0.4272954723448127).abs() < 1e-6, "τ = 2: {}", l.double_value(&[]));
    // Softmax is shift-invariant: a student equal to the teacher plus a constant has nothing to learn.
    let shifted = losses::distillation(&(t.detach() + 3.0), &t, 1.0).double_value(&[]);
    assert!(shifted.abs() < 1e-6, "{shifted}");
    // The teacher is detached: no gradient reaches the co-pilot.
    let s = s.set_requires_grad(true);
    losses::distillation(&s, &t, 1.0).backward();
    assert!(!t.grad().defined() || t.grad().abs().sum(Kind::Float).double_value(&[]) == 0.0);
    assert!(s.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // The co-pilot's objective: reconstruction + γ|KL − C|.
    let mu = Tensor::from_slice(&[0.5f32, -0.5]).view([1, 2]);
    let logvar = Tensor::zeros([1, 2], (Kind::Float, Device::Cpu));
    let x = Tensor::full([1, 1, 2, 2], 0.5, (Kind::Float, Device::Cpu));
    let rec = dydis_core::vae::losses::reconstruction(&Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu)), &x);
    let kl = dydis_core::vae::losses::gaussian_kl(&mu, &logvar);
    let loss = losses::capacity_objective(&rec, &kl, 10.0, 1.0);
    assert!((kl.double_value(&[]) - 0.25).abs() < 1e-6 && (rec.double_value(&[]) - 4.0 * 2f64.ln()).abs() < 1e-5);
    assert!((loss.double_value(&[]) - (4.0 * 2f64.ln() + 10.0 * 0.75)).abs() < 1e-4);
}

#[test]
fn feedback_against_hand_computation() {
    let var = [0.25, 0.04];
    let ac = [0.9, 0.5, 0.1];
    let cfg = FeedbackConfig { form: FeedbackForm::Entropy, ..Default::default() };
    // Computed independently in Python: C = 25 · E_x0 / E_xt per ᾱ.
    let f = Feedback::new(&cfg, &ac, &var).unwrap();
    for (c, want) in f.capacity.iter().zip([10.468318992894877, 5.879972173376694, 4.869064553339648]) {
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
    }
    assert_eq!(f.form, FeedbackForm::Entropy);
    let mi =
        Feedback::new(&FeedbackConfig { form: FeedbackForm::MutualInformation, ..cfg.clone() }, &ac, &var).unwrap();
    for (c, want) in mi.capacity.iter().zip([25.0, 4.413519556032232, 0.535507720770496]) {
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
    }
    // The cap: C_max where f reaches it.
    let capped = Feedback::new(&FeedbackConfig { c_max: 6.0, ..cfg.clone() }, &ac, &var).unwrap();
    assert_eq!(capped.capacity, vec![6.0, 5.879972173376694, 4.869064553339648]);
    // Near-binary data have a negative entropy per pixel: the entropy ratio is refused, `auto` takes the
    // information form and says so.
    let dark = [1e-6, 1e-5];
    let e = Feedback::new(&cfg, &ac, &dark).unwrap_err().to_string();
    assert!(e.contains("cldis.feedback.form") && e.contains("mutual-information"), "{e}");
    let auto = Feedback::new(&FeedbackConfig { form: FeedbackForm::Auto, ..cfg.clone() }, &ac, &dark).unwrap();
    assert_eq!(auto.form, FeedbackForm::MutualInformation);
    assert!(Feedback::new(&cfg, &ac, &[f64::NAN]).is_err());
    assert!(Feedback::new(&cfg, &[1.0], &var).is_err());
}

#[test]
fn the_curriculum_walks_the_reverse_process_within_the_cap() {
    let _g = global_rng_lock();
    let cfg = tiny(&[]);
    let mut m = ClDis::new(&cfg, Device::Cpu).unwrap();
    let data = dydis_core::data::open_images(&cfg.data, 16).unwrap();
    let idx: Vec<usize> = (0..96).collect();
    m.set_pixel_variance(&data.images(&idx, Device::Cpu).unwrap()).unwrap();
    let fb = m.feedback().unwrap();
    let (k_all, t_all) = (cfg.cldis.loop_steps * 50, cfg.cldis.timesteps);
    assert_eq!((curriculum_t(0, k_all, t_all), curriculum_t(k_all, k_all, t_all)), (t_all - 1, 0));
    let cs: Vec<f64> = (0..=k_all).map(|k| fb.at(curriculum_t(k, k_all, t_all))).collect();
    assert!(cs.windows(2).all(|w| w[1] >= w[0] - 1e-12), "C_dyn never falls along the loop");
    assert!(cs.iter().all(|&c| c > 0.0 && c <= cfg.cldis.feedback.c_max), "C_dyn in (0, C_max]");
    assert!(cs[0] < 0.5 * cs[k_all], "the capacity grows: {} → {}", cs[0], cs[k_all]);
    let e = m.set_pixel_variance(&data.images(&[3], Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("variance_images"), "{e}");
}

#[test]
fn the_closed_loop_resumes_exactly_and_navigation_runs_on_the_finished_run() {
    let _g = global_rng_lock();
    let cfg = tiny(&[]);
    let (a, b) = (tmp("straight"), tmp("resumed"));
    method::train(&cfg, &RunDir::new(&a), Device::Cpu, &TrainOptions::default()).unwrap();
    let half = TrainOptions { max_steps: Some(2), ..Default::default() };
    method::train(&cfg, &RunDir::new(&b), Device::Cpu, &half).unwrap();
    let rest = TrainOptions { resume: true, ..Default::default() };
    method::train(&cfg, &RunDir::new(&b), Device::Cpu, &rest).unwrap();
    let load = |d: &std::path::Path| checkpoint::load(&RunDir::new(d).newest("loop").unwrap().unwrap().1).unwrap();
    let (ca, cb) = (load(&a), load(&b));
    assert_eq!((ca.meta.step, cb.meta.step), (4, 4));
    for (name, t) in &ca.tensors {
        assert_eq!(max_diff(t, &cb.tensors[name]), 0.0, "{name} differs after resuming");
    }
    for (name, t) in &ca.optimizer {
        assert_eq!(max_diff(t, &cb.optimizer[name]), 0.0, "optimiser state {name} differs");
    }
    let loop_log = dydis_core::train::History::read(&RunDir::new(&a).log("loop")).unwrap();
    assert!(loop_log.steps.iter().all(|s| s.extra.iter().any(|(k, _)| k == "c_dyn")));
    // Navigation: only its own settings may change, and its report scores every direction.
    let dir = RunDir::new(&a);
    let e = train_navigation(&dir, &["cldis.lr=1".into()], Device::Cpu, false, None).unwrap_err().to_string();
    assert!(e.contains("cldis.navigation"), "{e}");
    let o = train_navigation(&dir, &[], Device::Cpu, false, None).unwrap();
    assert_eq!(o.outcome.steps_done, 3);
    let m = ClDis::from_checkpoint(&checkpoint::load(o.outcome.checkpoint.as_ref().unwrap()).unwrap(), Device::Cpu)
        .unwrap();
    let shifts = m.draw_shifts(1000);
    let s = &cfg.cldis.navigation;
    assert!(
        shifts.abs().min().double_value(&[]) >= s.shift_min - 1e-6
            && shifts.abs().max().double_value(&[]) <= s.shift_max + 1e-6
    );
    assert!(shifts.lt(0.0).any().int64_value(&[]) == 1 && shifts.gt(0.0).any().int64_value(&[]) == 1);
    let data = dydis_core::data::open_images(&cfg.data, 16).unwrap();
    let r = dydis_core::viz::cldis::navigation_report(&m, data.as_ref(), 8, 0).unwrap();
    assert_eq!((r.accuracy.len(), r.content_tracking.directions.len(), r.ranking.len()), (4, 4, 4));
    // An unfinished loop is refused.
    let short = tmp("short");
    method::train(&cfg, &RunDir::new(&short), Device::Cpu, &half).unwrap();
    let e = train_navigation(&RunDir::new(&short), &[], Device::Cpu, false, None).unwrap_err().to_string();
    assert!(e.contains("finish it first"), "{e}");
    for d in [a, b, short] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn invalid_configurations_are_named() {
    let bad = |set: &str, want: &str| {
        let e = RunConfig::load_with("cpu-cl-dis", &[set.to_string()]).unwrap_err().to_string();
        assert!(e.contains(want), "{set}: {e}");
    };
    bad("cldis.feedback.c_max=10.0", "cldis.feedback.c_max");
    bad("cldis.diffae.channel_mult=[1, 1, 1, 1, 1, 1, 1]", "cldis.diffae.channel_mult");
    bad("cldis.navigation.shift_min=4.0", "cldis.navigation.shift_max");
    bad("cldis.ddim_steps=1", "cldis.ddim_steps");
    bad("cldis.diffae.num_heads=3", "cldis.diffae.num_heads");
    bad("cldis.feedback.form=\"sideways\"", "sideways");
    bad("cldis.distill.temperature=0.0", "cldis.distill");
    bad("cldis.ema_decay=1.0", "cldis.ema_decay");
    // A dataset whose channels do not fit is refused before anything trains.
    let cfg = tiny(&["cldis.channels=1"]);
    let e = ClDisTrainer::new(Phase::DiffAe, &cfg, Device::Cpu, &tmp("channels"), false).err().unwrap().to_string();
    assert!(e.contains("cldis.channels"), "{e}");
    // A later phase without the earlier one says which is missing.
    let e = ClDisTrainer::new(Phase::Loop, &tiny(&[]), Device::Cpu, &tmp("order"), false).err().unwrap().to_string();
    assert!(e.contains("co-pilot") && e.contains("copilot"), "{e}");
    let t = ClDisTrainer::new(Phase::DiffAe, &tiny(&[]), Device::Cpu, &tmp("describe"), false).unwrap();
    assert!(t.describe().contains("Diff-AE"));
}

#[test]
fn the_content_tracking_score_agrees_with_labelled_metrics_on_ground_truth() {
    let _g = global_rng_lock();
    let spec = "shapes3d-like:3x3x3x3x3x3@32".to_string();
    let source = dydis_core::data::open_images(&spec, 32).unwrap();
    let mut ecfg = dydis_core::eval::EvalConfig::quick();
    ecfg.metrics = vec!["factorvae".into(), "dci".into()];
    let opts = dydis_core::eval::ModelEval {
        config: ecfg,
        units: dydis_core::eval::Units::Raw,
        batch: 256,
        fid: None,
        source: "test".into(),
        spec: spec.clone(),
    };
    let mut ct = tiny(&[]).cldis.content_tracking;
    (ct.images, ct.frames, ct.flow.iterations, ct.flow.levels) = (4, 3, 50, 2);
    let r = dydis_core::viz::cldis::ground_truth_check(source.as_ref(), &ct, &opts, 0).unwrap();
    let d = &r.disentangled_scores;
    let e = &r.entangled_scores;
    assert!(d["factorvae"] > e["factorvae"] && d["dci_disentanglement"] > e["dci_disentanglement"]);
    assert!(r.disentangled.score > r.entangled.score, "CT {} vs {}", r.disentangled.score, r.entangled.score);
    assert!(r.disentangled.exclusivity > r.entangled.exclusivity);
}

#[test]
fn the_projection_and_the_widened_co_pilot_take_other_widths() {
    let _g = global_rng_lock();
    tch::manual_seed(2);
    let narrow = ClDis::new(&tiny(&["cldis.diffae.z_sem=6", "cldis.copilot.latent=3"]), Device::Cpu).unwrap();
    let wide =
        ClDis::new(&tiny(&["cldis.diffae.z_sem=6", "cldis.copilot.latent=3", "cldis.copilot.width=2"]), Device::Cpu)
            .unwrap();
    assert!(narrow.proj.is_some(), "d_sem ≠ d: L_dt goes through a projection");
    let count = |m: &ClDis| dydis_core::nn::param_count(&m.vae_vs, "");
    assert!(count(&wide) > 2 * count(&narrow), "{} vs {}", count(&wide), count(&narrow));
    let x = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let t = Tensor::from_slice(&[1i64, 10, 100, 999]);
    for m in [&narrow, &wide] {
        let l = m.loop_losses(&x, &t, &x.randn_like(), 5.0).unwrap();
        assert_eq!(m.project(&m.z_sem(&x, false).unwrap()).size(), [4, 3]);
        (&l.diffusion + &l.distill + &l.copilot[0]).backward();
        assert!(l.distill.double_value(&[]).is_finite() && l.copilot[0].double_value(&[]).is_finite());
        let g = m.proj.as_ref().unwrap().ws.grad();
        assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "L_dt trains the projection");
    }
}

/// Blobs at 32 px: blob k's horizontal position is its base plus 4·z_k pixels (a toy decoder where every direction
/// is visible), images in [−1, 1].
fn toy_decode(z: &Tensor) -> Tensor {
    let n = z.size()[0];
    let x = Tensor::arange(32, (Kind::Float, Device::Cpu)).view([1, 1, 32]);
    let y = Tensor::arange(32, (Kind::Float, Device::Cpu)).view([1, 32, 1]);
    let mut img = Tensor::zeros([n, 32, 32], (Kind::Float, Device::Cpu));
    for (k, row) in [6.0, 16.0, 26.0].iter().enumerate() {
        let cx = (z.select(1, k as i64) * 4.0 + 16.0).view([n, 1, 1]);
        img += (-((&x - cx).square() + (&y - *row).square()) / 8.0).exp();
    }
    (img.clamp(0.0, 1.0) * 2.0 - 1.0).unsqueeze(1)
}

#[test]
fn the_shift_predictor_learns_directions_it_can_see() {
    let _g = global_rng_lock();
    tch::manual_seed(4);
    let vs = nn::VarStore::new(Device::Cpu);
    let p = dydis_core::nn::diffae::ShiftPredictor::new(&vs.root(), 1, 3, 2);
    let mut opt = dydis_core::nn::optim::AdamW::new(&vs, &[], 1e-3, (0.9, 0.999), 0.0);
    let draw = |n: i64| {
        let z = Tensor::randn([n, 3], (Kind::Float, Device::Cpu)) * 0.5;
        let k = Tensor::randint(3, [n], (Kind::Int64, Device::Cpu));
        let mag = Tensor::rand([n], (Kind::Float, Device::Cpu)) * 2.5 + 0.5;
        let shift = mag * (Tensor::randint(2, [n], (Kind::Float, Device::Cpu)) * 2.0 - 1.0);
        let moved = &z + k.onehot(3).to_kind(Kind::Float) * shift.unsqueeze(1) * 0.5;
        (toy_decode(&z), toy_decode(&moved), k, shift)
    };
    for _ in 0..300 {
        let (a, b, k, shift) = draw(32);
        let (logits, shift_hat) = p.forward_t(&a, &b, true);
        let [loss, ..] = losses::navigation(&logits, &k, &shift_hat, &shift, 0.25);
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
    let (a, b, k, shift) = draw(256);
    let (logits, shift_hat) = tch::no_grad(|| p.forward_t(&a, &b, false));
    let [_, _, err, acc] = losses::navigation(&logits, &k, &shift_hat, &shift, 0.25);
    let (acc, err) = (acc.double_value(&[]), err.double_value(&[]));
    assert!(acc > 0.9, "direction accuracy {acc} (chance 1/3)");
    assert!(err < 1.0, "shift error {err} (|ε| up to 3)");
}
