//! Studies end to end on the smoke preset: a 2-arm x 2-seed study paused, one cell's training interrupted midway,
//! resumed without redoing finished cells; its statistics against a hand computation on its recorded numbers; a
//! failed cell recorded without stopping the others; malformed study files named by field.
use dydis_core::method::{self, TrainOptions};
use dydis_core::run::RunDir;
use dydis_core::study::{self, Ending, StudyOptions, StudyResults, StudySpec};
use std::path::{Path, PathBuf};
use tch::Device;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dydis-study-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TINY: &str = r#"
name = "tiny"
seeds = [0, 1]
steps = [2, 4]
reference = "baseline"
paper = { table = "Table 4", dataset = "mpi3d" }

[eval]
preset = "quick"
metrics = ["mig", "sap"]

[[arm]]
name = "baseline"
config = "smoke"
set = ["model.unet.skip_dropout.enabled=false"]
paper_method = "baseline"

[[arm]]
name = "sd"
config = "smoke"
paper_method = "+SD"
"#;

fn options(root: &Path, max_cells: Option<usize>) -> StudyOptions {
    StudyOptions { root: root.into(), device: Device::Cpu, commit: "test".into(), max_cells, only_arms: None }
}

fn log_steps(dir: &Path, stage: &str) -> Vec<u64> {
    std::fs::read_to_string(RunDir::new(dir).log(stage))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_tiny_study_pauses_resumes_and_its_statistics_match_a_hand_computation() {
    let _g = dydis_core::device::global_rng_lock();
    let root = tmp("tiny");
    let spec = StudySpec::parse(TINY, "tiny").unwrap();
    spec.validate().unwrap();
    let cells = spec.cells().unwrap();
    assert_eq!(cells.len(), 4);

    // Three evaluations, then a pause (what Ctrl-C between cells leaves).
    let (partial, ending) = study::run_study(&spec, &options(&root, Some(3))).unwrap();
    assert_eq!(ending, Ending::Paused);
    assert_eq!((partial.records.len(), partial.pending.len()), (3, 5));
    let first = study::cell_dir(&root, &cells[0]);
    let first_log = log_steps(&first, "ldm");
    let eval = spec.eval.config().unwrap();
    let units = spec.eval.units().unwrap();
    let record_text = |c: usize, steps: usize| {
        std::fs::read_to_string(study::eval_dir(&root, &cells[c], &eval, units, steps).join("record.json")).unwrap()
    };
    let before: Vec<String> = vec![record_text(0, 2), record_text(0, 4), record_text(1, 2)];

    // A cell interrupted after one training step (its checkpoint is what Ctrl-C leaves).
    let c3 = &cells[2];
    assert_eq!((c3.arm.as_str(), c3.seed), ("baseline", 1));
    let mut cfg = c3.config.clone();
    cfg.name = format!("cell-{}", study::config_hash(&cfg));
    let dir3 = RunDir::new(study::cell_dir(&root, c3));
    let opts = TrainOptions { resume: true, max_steps: Some(1), only_stage: None };
    method::train(&cfg, &dir3, Device::Cpu, &opts).unwrap();
    assert_eq!(dir3.newest("ldm").unwrap().unwrap().0, 1);

    let (results, ending) = study::run_study(&spec, &options(&root, None)).unwrap();
    assert_eq!(ending, Ending::Complete);
    assert_eq!((results.records.len(), results.pending.len()), (8, 0));
    assert!(results.records.iter().all(|r| r.ok()), "{:?}", results.status_table());
    // Finished cells were neither retrained nor re-evaluated.
    assert_eq!(log_steps(&first, "ldm"), first_log);
    assert_eq!(vec![record_text(0, 2), record_text(0, 4), record_text(1, 2)], before);
    // The interrupted cell continued from its checkpoint: every step logged once.
    assert_eq!(log_steps(dir3.root(), "ldm"), vec![1, 2, 3, 4]);
    // Both arms of a seed share one first stage.
    assert_eq!(std::fs::read_dir(root.join("stages")).unwrap().count(), 2);
    let r = &results.records[0];
    assert_eq!((r.commit.as_str(), r.config_hash.len()), ("test", 12));
    assert!(r.train_seconds.unwrap() > 0.0 && r.first_stage_seconds.unwrap() > 0.0 && r.eval_seconds.is_some());

    // The statistics, by hand from the recorded numbers.
    let value = |arm: &str, seed: u64, steps: usize, m: &str| {
        results.records.iter().find(|r| r.arm == arm && r.seed == seed && r.steps == steps).unwrap().scores[m]
    };
    for steps in [2, 4] {
        for m in ["mig", "sap"] {
            for arm in ["baseline", "sd"] {
                let (a, b) = (value(arm, 0, steps, m), value(arm, 1, steps, m));
                let s = &results.stat("shapes3d-like:2x2x2x2x2x3@16", steps, arm, m).unwrap().summary;
                let mean = (a + b) / 2.0;
                let std = ((a - mean).powi(2) + (b - mean).powi(2)).sqrt();
                assert!((s.mean - mean).abs() < 1e-12 && (s.std - std).abs() < 1e-12, "{arm} {m} {steps}");
                // Two seeds: the bootstrap's 2.5% and 97.5% quantiles are the two values; t has 1 df.
                assert_eq!(s.bootstrap, (a.min(b), a.max(b)));
                let h = 12.7062 * std / 2f64.sqrt();
                let t = s.t_interval.unwrap();
                assert!((t.0 - (mean - h)).abs() < 1e-12 && (t.1 - (mean + h)).abs() < 1e-12);
            }
            let d = results.difference("shapes3d-like:2x2x2x2x2x3@16", Some(steps), "sd", m).unwrap();
            let diffs = [
                value("sd", 0, steps, m) - value("baseline", 0, steps, m),
                value("sd", 1, steps, m) - value("baseline", 1, steps, m),
            ];
            assert_eq!(d.differences, diffs.to_vec());
            assert!((d.summary.mean - (diffs[0] + diffs[1]) / 2.0).abs() < 1e-12);
            assert_eq!(d.wins, diffs.iter().filter(|x| **x > 0.0).count());
        }
    }
    let paper = results.stat("shapes3d-like:2x2x2x2x2x3@16", 4, "sd", "mig").unwrap().paper;
    assert_eq!(paper, None, "Table 4 has no MIG");

    // The files: JSON that reads back, one CSV row per record, a plot per metric; eval-compare's columns.
    let dir = study::study_dir(&root, &spec);
    assert_eq!(StudyResults::load(&dir).unwrap(), results);
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9);
    assert!(csv.lines().next().unwrap().starts_with("arm,dataset,seed,steps,status,protocol,mig,sap,"));
    assert!(dir.join("plots/shapes3d-like_2x2x2x2x2x3_16-mig.svg").exists());
    let cols = results.compare_columns();
    assert_eq!(cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["tiny/baseline", "tiny/sd"]);
    let table = dydis_core::eval::compare_columns(&cols, Some("mpi3d"));
    assert!(table.headers.iter().any(|h| h == "tiny/sd"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_failed_cell_is_recorded_and_the_others_still_run() {
    let _g = dydis_core::device::global_rng_lock();
    let root = tmp("failed");
    let text = r#"
name = "failing"
seeds = [0]
steps = [2, 4]
[eval]
metrics = ["mig"]
[[arm]]
name = "broken"
config = "smoke"
set = ['data="/nonexistent/images.npz"']
[[arm]]
name = "fine"
config = "smoke"
"#;
    let spec = StudySpec::parse(text, "failing").unwrap();
    let (results, ending) = study::run_study(&spec, &options(&root, None)).unwrap();
    assert_eq!(ending, Ending::Complete);
    let broken: Vec<_> = results.records.iter().filter(|r| r.arm == "broken").collect();
    assert_eq!(broken.len(), 1, "a failed training is not retried for the later budget in the same invocation");
    assert!(!broken[0].ok() && broken[0].error.as_ref().unwrap().contains("/nonexistent/images.npz"), "{broken:?}");
    assert_eq!(results.records.iter().filter(|r| r.arm == "fine" && r.ok()).count(), 2);
    assert_eq!(results.pending.len(), 1);
    let csv = std::fs::read_to_string(study::study_dir(&root, &spec).join("results.csv")).unwrap();
    assert!(csv.contains(",failed,") && csv.contains("nonexistent"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn malformed_study_files_name_the_field() {
    let arm = "[[arm]]\nname = \"a\"\nconfig = \"smoke\"\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("name = \"x\"\nseed = [0]\n{arm}"), "seed"),
        (format!("name = \"x\"\nseeds = []\n{arm}"), "seeds"),
        (format!("name = \"x\"\nseeds = [1, 1]\n{arm}"), "seeds"),
        (format!("name = \"x\"\nseeds = [0]\nsteps = [4, 2]\n{arm}"), "steps"),
        (format!("name = \"x\"\nseeds = [0]\nreference = \"b\"\n{arm}"), "reference"),
        (format!("name = \"x y\"\nseeds = [0]\n{arm}"), "name"),
        (format!("name = \"x\"\nseeds = [0]\n{arm}{arm}"), "arm.a.name"),
        ("name = \"x\"\nseeds = [0]\n[[arm]]\nname = \"a\"\nconfig = \"nope\"\n".into(), "arm.a"),
        (
            "name = \"x\"\nseeds = [0]\n[[arm]]\nname = \"a\"\nconfig = \"smoke\"\nset = [\"train.lr=-1\"]\n".into(),
            "arm.a",
        ),
        (format!("name = \"x\"\nseeds = [0]\n[eval]\nmetrics = [\"nope\"]\n{arm}"), "eval.metrics"),
        (format!("name = \"x\"\nseeds = [0]\n[eval]\nunits = \"nope\"\n{arm}"), "eval.units"),
        (format!("name = \"x\"\nseeds = [0]\npaper = {{ table = \"Table 4\", dataset = \"cars3d\" }}\n{arm}"), "paper"),
        ("name = \"x\"\nseeds = [0]\n".into(), "arm"),
    ];
    for (text, field) in cases {
        let err = StudySpec::parse(&text, "case").and_then(|s| s.validate()).unwrap_err().to_string();
        assert!(err.contains(field), "expected an error naming '{field}', got: {err}\n{text}");
    }
}

#[test]
fn shipped_studies_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("studies");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = StudySpec::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(p.file_stem().unwrap().to_str().unwrap(), s.name);
            n += 1;
        }
    }
    assert!(n >= 3, "studies/ holds the shipped studies");
}

const CLDIS: &str = r#"
name = "tiny-cldis"
seeds = [0]
steps = [2, 3]
reference = "loop"

[eval]
preset = "quick"
metrics = ["dci"]

[[arm]]
name = "loop"
config = "cpu-cl-dis"
set = ["data=\"shapes3d-like:2x2x2x2x2x3@16\"", "cldis.image_size=16", "cldis.batch_size=4",
       "cldis.diffae_steps=2", "cldis.copilot.steps=2", "cldis.diffae.channel_mult=[1, 2]",
       "cldis.diffae.enc_channel_mult=[1, 2]", "cldis.feedback.variance_images=16", "cldis.ddim_steps=2",
       "cldis.inversion_steps=2"]

[[arm]]
name = "no-distill"
config = "cpu-cl-dis"
set = ["data=\"shapes3d-like:2x2x2x2x2x3@16\"", "cldis.image_size=16", "cldis.batch_size=4",
       "cldis.diffae_steps=2", "cldis.copilot.steps=2", "cldis.diffae.channel_mult=[1, 2]",
       "cldis.diffae.enc_channel_mult=[1, 2]", "cldis.feedback.variance_images=16", "cldis.ddim_steps=2",
       "cldis.inversion_steps=2", "cldis.distill.weight=0.0"]
"#;

#[test]
fn cl_dis_arms_share_their_first_two_phases_and_are_evaluated_at_each_loop_budget() {
    let _g = dydis_core::device::global_rng_lock();
    let root = tmp("cldis");
    let spec = StudySpec::parse(CLDIS, "tiny-cldis").unwrap();
    let (results, ending) = study::run_study(&spec, &options(&root, None)).unwrap();
    assert_eq!(ending, Ending::Complete);
    assert_eq!(results.records.len(), 4, "two arms × two loop budgets");
    assert!(results.records.iter().all(|r| r.ok()), "{:?}", results.status_table());
    // The arms differ only in the loop: one Diff-AE and one co-pilot stage, trained once and shared.
    let mut shared: Vec<String> = std::fs::read_dir(root.join("stages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().split('-').next().unwrap().to_string())
        .collect();
    shared.sort();
    assert_eq!(shared, ["copilot", "diffae"]);
    let cells = spec.cells().unwrap();
    let logs: Vec<Vec<u64>> = cells.iter().map(|c| log_steps(&study::cell_dir(&root, c), "loop")).collect();
    assert!(logs.iter().all(|l| *l == vec![1, 2, 3]), "{logs:?}");
    let _ = std::fs::remove_dir_all(root);
}
