//! The model end to end: parameter counts of the paper preset, Skip Dropout presets, and the smoke
//! preset training both stages, checkpointing, resuming exactly, rejecting mismatched checkpoints and sampling.
use dydis_core::diffusion::Ddim;
use dydis_core::model::Ldm;
use dydis_core::nn::param_count;
use dydis_core::run::{checkpoint, RunConfig};
use dydis_core::train::{AeTrainer, LdmTrainer};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dydis-model-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn paper_preset_parameter_counts_match_the_reference() {
    let _rng = dydis_core::device::global_rng_lock();
    // Reference counts from bench/train_step_ref.py (PyTorch, the same architecture from docs/architecture.md):
    // U-Net 37,549,507 (spec: about 37.5 M), extractor 23,570,324 (about 23.6 M), VQ-f4 3,478,078.
    let cfg = RunConfig::load("paper-shapes3d").unwrap();
    let ldm = Ldm::new(&cfg, Device::Cpu).unwrap();
    assert_eq!(param_count(&ldm.vs, "unet."), 37_549_507);
    assert_eq!(param_count(&ldm.vs, "extractor."), 23_570_324);
    assert_eq!(param_count(&ldm.fs_vs, ""), 3_478_078);
    assert_eq!(ldm.unet.attention_layers, 16, "16 cross-attention layers (6 encoder, 1 middle, 9 decoder)");
    // Skip Dropout: the paper drops the ds-8 level (no cross-attention), the released code levels 0 and 1.
    assert_eq!(ldm.unet.dropped_levels(), &[3]);
    let code =
        RunConfig::load_with("paper-shapes3d", &["model.unet.skip_dropout.levels=\"released-code\"".into()]).unwrap();
    assert_eq!(code.model.unet.skip_levels(16).unwrap(), vec![0, 1]);
    let quick = RunConfig::load("cpu-quick").unwrap();
    let q = Ldm::new(&quick, Device::Cpu).unwrap();
    assert_eq!(param_count(&q.vs, "unet."), 1_723_075);
    assert_eq!(param_count(&q.vs, "extractor."), 1_149_642);
    assert_eq!(param_count(&q.fs_vs, ""), 952_574);
    assert_eq!(q.unet.dropped_levels(), &[2]);
}

#[test]
fn unet_shapes_attention_records_and_skip_dropout() {
    let _rng = dydis_core::device::global_rng_lock();
    let cfg = RunConfig::load("smoke").unwrap();
    let ldm = Ldm::new(&cfg, Device::Cpu).unwrap();
    tch::manual_seed(1);
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[3i64, 900]);
    let c = Tensor::rand([2, 4, 8], (Kind::Float, Device::Cpu));
    let (out, rec) = ldm.unet.forward_recording(&x, &t, &c);
    assert_eq!(out.size(), vec![2, 3, 8, 8]);
    // Attention at ds 1 only: one transformer per res block at level 0 in and out (1 + 2), plus the middle one.
    assert_eq!(rec.len(), ldm.unet.attention_layers);
    for r in &rec {
        assert_eq!(r.probs.size(), vec![2, 4, r.height * r.width, 4]);
        let sums = r.probs.sum_dim_intlist(-1, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5, "softmax over the N units");
    }
    // The recorded (explicit softmax) path and the fused kernel agree.
    let fused = ldm.unet.forward_t(&x, &t, &c, false);
    assert!((fused - out).abs().max().double_value(&[]) < 1e-5);
    // Channel-wise skip dropout: whole channels are zero or scaled by 1/(1-p).
    let s = Tensor::ones([64, 8, 4, 4], (Kind::Float, Device::Cpu));
    let d = dydis_core::nn::unet::channel_dropout(&s, 0.25);
    let per_channel = d.amax([2, 3], false) - d.amin([2, 3], false);
    assert_eq!(per_channel.abs().max().double_value(&[]), 0.0, "a channel is dropped as a whole");
    let vals: Vec<f32> = Vec::try_from(d.flatten(0, -1)).unwrap();
    assert!(vals.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let kept = vals.iter().filter(|&&v| v > 0.0).count() as f64 / vals.len() as f64;
    assert!((kept - 0.75).abs() < 0.06, "keep fraction {kept}");
}

/// Skip Dropout in the forward pass itself: in training the skips entering the dropped levels lose whole channels
/// (the rest scaled by 1/(1-p)) and every other skip arrives untouched; at evaluation every skip arrives untouched.
#[test]
fn skip_dropout_acts_on_the_dropped_levels_only() {
    let _rng = dydis_core::device::global_rng_lock();
    let cfg = RunConfig::load_with("smoke", &["model.unet.skip_dropout.rate=0.5".into()]).unwrap();
    let ldm = Ldm::new(&cfg, Device::Cpu).unwrap();
    let dropped = ldm.unet.dropped_levels().to_vec();
    let levels = cfg.model.unet.channel_mult.len();
    assert!(!dropped.is_empty() && dropped.len() < levels, "smoke drops some levels, not all: {dropped:?}");
    tch::manual_seed(2);
    let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[3i64, 300, 600, 900]);
    let c = Tensor::rand([4, 4, 8], (Kind::Float, Device::Cpu));
    let (_, train) = ldm.unet.forward_skips(&x, &t, &c, true);
    let mut zeroed = 0;
    for r in &train {
        if dropped.contains(&r.level) {
            // Per sample and channel: all zero, or the produced skip times 2 (1 / (1 - 0.5)).
            let (b, ch) = (r.used.size()[0], r.used.size()[1]);
            for i in 0..b {
                for j in 0..ch {
                    let (u, p) = (r.used.get(i).get(j), r.produced.get(i).get(j));
                    let is_zero = u.abs().max().double_value(&[]) == 0.0;
                    let is_scaled = (&u - &p * 2.0).abs().max().double_value(&[]) < 1e-5;
                    assert!(is_zero || is_scaled, "level {} sample {i} channel {j}", r.level);
                    zeroed += usize::from(is_zero && p.abs().max().double_value(&[]) > 0.0);
                }
            }
        } else {
            assert!(r.used.equal(&r.produced), "level {} is not dropped but its skip changed", r.level);
        }
    }
    assert!(zeroed > 0, "some channels of the dropped levels are zero");
    let (_, eval) = ldm.unet.forward_skips(&x, &t, &c, false);
    assert!(eval.iter().all(|r| r.used.equal(&r.produced)), "no skip dropout at evaluation");
}

#[test]
fn smoke_trains_saves_resumes_and_samples() {
    let _rng = dydis_core::device::global_rng_lock();
    let run = tmp("smoke");
    // Bit-exact resumption is checked with one thread: with several, some CPU backward kernels reduce in a
    // thread-dependent order (differences in the 5th digit).
    tch::set_num_threads(1);
    let cfg = RunConfig::load("smoke").unwrap();
    // First stage: 4 steps (GAN term from step 2), checkpoint written.
    let mut ae = AeTrainer::new(&cfg, Device::Cpu, &run, false).unwrap();
    let o = ae.run(None).unwrap();
    assert_eq!(o.steps_done, 4);
    assert!(ae.history().steps.iter().all(|s| s.loss.is_finite()));
    assert!(
        ae.history().steps[3].extra.iter().any(|(k, v)| k == "d_weight" && *v > 0.0),
        "GAN term active after disc_start"
    );
    assert_eq!(checkpoint::list(&run.join("ae")).unwrap().len(), 2, "keep_last = 2");

    // LDM: 4 steps straight.
    let mut a = LdmTrainer::new(&cfg, Device::Cpu, &run, false).unwrap();
    assert!((a.ldm.scale_factor - 1.0).abs() < 1e-12);
    a.run(None).unwrap();
    assert_ne!(a.ldm.scale_factor, 1.0, "scale_by_std set the scale factor");
    let straight: Vec<f64> = a.history().steps.iter().map(|s| s.loss).collect();
    let w_straight = a.ldm.vs.variables()["unet.input.1.0.in_conv.weight"].copy();
    let ema_straight = a.ldm.ema_vs.variables()["unet.input.1.0.in_conv.weight"].copy();
    let units = a.ldm.condition_images(&a.data().images(&[0, 5, 9], Device::Cpu).unwrap()).unwrap();

    // The same run in two halves: 2 steps, then resume for the rest.
    let run2 = tmp("smoke-resume");
    std::fs::create_dir_all(&run2).unwrap();
    std::fs::rename(run.join("ae"), run2.join("ae")).unwrap();
    let mut b = LdmTrainer::new(&cfg, Device::Cpu, &run2, false).unwrap();
    b.run(Some(2)).unwrap();
    drop(b);
    let mut c = LdmTrainer::new(&cfg, Device::Cpu, &run2, true).unwrap();
    assert_eq!(c.step, 2);
    c.run(None).unwrap();
    let resumed: Vec<f64> = c.history().steps.iter().map(|s| s.loss).collect();
    assert_eq!(straight, resumed, "a resumed run continues exactly");
    assert!(w_straight.equal(&c.ldm.vs.variables()["unet.input.1.0.in_conv.weight"]));
    assert!(ema_straight.equal(&c.ldm.ema_vs.variables()["unet.input.1.0.in_conv.weight"]));
    let lines = std::fs::read_to_string(run2.join("ldm/log.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 4, "one JSONL line per step, none duplicated by the resume");

    // Load the final checkpoint and sample conditioned on the same images.
    let ldm = Ldm::load(&run2, Device::Cpu).unwrap();
    assert_eq!(ldm.scale_factor, c.ldm.scale_factor);
    let units2 = ldm.condition_images(&c.data().images(&[0, 5, 9], Device::Cpu).unwrap()).unwrap();
    assert!((units - &units2).abs().max().double_value(&[]) < 1e-6, "eval-mode units survive the checkpoint");
    tch::manual_seed(3);
    let imgs = ldm.sample(&units2, Ddim { steps: 5, eta: 0.0 }, None);
    assert_eq!(imgs.size(), vec![3, 3, 16, 16]);

    // A checkpoint from another configuration is refused, naming the first mismatching tensor.
    let other = RunConfig::load_with("smoke", &["model.extractor.unit_dim=16".into()]).unwrap();
    let mut wrong = Ldm::new(&other, Device::Cpu).unwrap();
    let ck = checkpoint::load(&checkpoint::resolve(&run2, &Ldm::STAGES).unwrap()).unwrap();
    let err = match checkpoint::Checkpoint::restore(&ck, &wrong.vs, "") {
        Err(e) => e.to_string(),
        Ok(()) => panic!("restored into a mismatching model"),
    };
    assert!(err.contains("extractor.units.b2") && err.contains("[4, 1, 8]") && err.contains("[4, 1, 16]"), "{err}");
    let _ = &mut wrong;
    // A half-written checkpoint (.tmp) is never picked up.
    std::fs::create_dir_all(run2.join("ldm/step-00000099.tmp")).unwrap();
    assert!(checkpoint::resolve(&run2, &["ae", "ldm"]).unwrap().ends_with("step-00000004"));
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&run2);
}

#[test]
fn smoke_with_dyga_refits_aligns_and_checkpoints_anchors() {
    let _rng = dydis_core::device::global_rng_lock();
    let run = tmp("dyga");
    // 96 images in batches of 8: 12 steps per epoch, anchors refit after epoch 1, aligned steps after that.
    let cfg = RunConfig::load_with(
        "smoke",
        &[
            "train.steps=14".into(),
            "dyga.enabled=true".into(),
            "dyga.k0=3".into(),
            "dyga.min_size=5".into(),
            "ae.steps=2".into(),
        ],
    )
    .unwrap();
    AeTrainer::new(&cfg, Device::Cpu, &run, false).unwrap().run(None).unwrap();
    let mut t = LdmTrainer::new(&cfg, Device::Cpu, &run, false).unwrap();
    t.run(None).unwrap();
    let shift = |s: &dydis_core::train::StepLog| s.extra.iter().find(|(k, _)| k == "shift_mean").unwrap().1;
    let steps = &t.history().steps;
    assert!(steps[..12].iter().all(|s| shift(s) == 0.0), "no alignment before the first refit");
    assert!(steps[12..].iter().all(|s| shift(s) > 0.0), "alignment after it");
    let a = t.ldm.anchors.as_ref().expect("anchors after epoch 1");
    assert_eq!(a.units.len(), 4);
    assert_eq!(a.epoch, 1);
    assert!(std::fs::read_to_string(run.join("ldm/anchors.jsonl")).unwrap().lines().count() == 1);
    let ldm = Ldm::load(&run, Device::Cpu).unwrap();
    let b = ldm.anchors.as_ref().expect("anchors restored from the checkpoint");
    for (x, y) in a.units.iter().zip(&b.units) {
        assert_eq!(x.ids, y.ids);
        assert!(x.mixture.means.equal(&y.mixture.means));
    }
    evaluation_scores_the_aligned_units_as_headline_and_the_raw_beside(&run);
    let _ = std::fs::remove_dir_all(&run);
}

/// The paper's protocol on a DyGA run: aligned units as the headline (the released evaluation), the raw units'
/// scores beside them, each form's representation and report on disk; the raw column equals a raw-only evaluation.
fn evaluation_scores_the_aligned_units_as_headline_and_the_raw_beside(run_dir: &std::path::Path) {
    use dydis_core::eval::{self, EvalConfig, ModelEval, Report, Units};
    let run = dydis_core::run::Run::open(run_dir, Device::Cpu).unwrap();
    assert!(run.model.has_aligned_form());
    let mut config = EvalConfig::quick();
    config.metrics = vec!["mig".into(), "factorvae".into()];
    let opts =
        ModelEval { config, units: Units::Paper, batch: 32, source: "smoke".into(), spec: run.data.clone(), fid: None };
    let out = run_dir.join("eval");
    let r = eval::evaluate_model_into(run.model.as_ref(), run.images.as_ref(), &opts, &out).unwrap();
    assert!(r.representation.contains("aligned") && r.protocol.contains("released evaluation"), "{r:?}");
    let raw = &r.other_forms["raw units"];
    assert_eq!(Report::read(&out.join("raw/report.json")).unwrap().scores, *raw);
    let (raw_only, raw_latents) =
        eval::evaluate_model(run.model.as_ref(), run.images.as_ref(), &ModelEval { units: Units::Raw, ..opts })
            .unwrap();
    assert_eq!(raw_only.scores, *raw);
    assert!(raw_only.other_forms.is_empty());
    let aligned = eval::represent::load_npz(&out.join("representation.npz")).unwrap();
    assert!(!aligned.allclose(&raw_latents, 1e-6, 1e-6, false), "alignment moved the units");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| metric | aligned units (paper's protocol) | raw units |"), "{md}");
}

#[test]
fn a_user_supplied_perceptual_term_enters_the_first_stage_loss() {
    let _rng = dydis_core::device::global_rng_lock();
    let run = tmp("perceptual");
    let cfg = RunConfig::load_with("smoke", &["ae.steps=2".into(), "ae.perceptual_weight=0.5".into()]).unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut t = AeTrainer::new(&cfg, Device::Cpu, &run, false).unwrap();
    let c = calls.clone();
    // A stand-in distance: mean squared error per image (LPIPS would go here).
    t.perceptual = Some(Box::new(move |x: &Tensor, y: &Tensor| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (x - y).square().mean_dim(&[1i64, 2, 3][..], false, Kind::Float)
    }));
    t.run(None).unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let rec: Vec<f64> = t.history().steps.iter().map(|s| s.extra.iter().find(|(k, _)| k == "rec").unwrap().1).collect();
    assert!(rec.iter().all(|r| r.is_finite() && *r > 0.0));
    let _ = std::fs::remove_dir_all(&run);
}
