//! The `dydis` command as a user runs it.
use std::process::Command;

fn dydis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dydis"))
}

/// Run `dydis args`, assert success, return stdout and stderr together.
fn run_ok(args: &[&str]) -> String {
    let out = dydis().args(args).output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dydis {args:?}:\n{text}");
    text
}

fn empty_home(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dydis-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn doctor_without_the_kernel_says_exactly_what_to_run() {
    let home = empty_home("nokernel");
    let out = dydis().arg("doctor").env("DYDIS_HOME", &home).env_remove("LIBTORCH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("run `scripts/setup.sh`"), "{stderr}");
    assert!(stderr.contains("run `./dydis kernel install`"), "{stderr}");
    // The runtime part still works: libtorch is found through the binary's rpath, not the environment.
    assert!(stdout.contains("libtorch version") && stdout.contains("2.13.0"), "{stdout}");
    assert!(stdout.contains(&home.join("data").display().to_string()), "{stdout}");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn doctor_is_happy_once_the_kernel_is_installed() {
    let status = dydis().args(["kernel", "install"]).status().unwrap();
    assert!(status.success());
    let out = dydis().args(["doctor", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all good"));
    let json_start = stdout.find('{').unwrap();
    let json_end = stdout.rfind('}').unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout[json_start..=json_end]).unwrap();
    assert!(v["runtime"]["libtorch_version"].as_str().unwrap().starts_with("2.13.0"));
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn bad_device_values_are_clear_errors() {
    let out = dydis().args(["--device", "tpu:0", "doctor"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto, cpu, cuda or cuda:<index>"));
    if !dydis_core::device::cuda_available() {
        let out = dydis().args(["--device", "cuda", "doctor"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cuda:0 was requested") && stderr.contains("--device cpu"), "{stderr}");
    }
}

#[test]
fn binaries_carry_an_rpath_and_link_libtorch_cuda() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_dydis")).unwrap();
    let has = |needle: &[u8]| bin.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"libtorch_cpu.so"));
    let lib = dydis_core::device::loaded_libtorch_dir().expect("libtorch loaded in the test process");
    assert!(has(lib.display().to_string().as_bytes()), "no rpath to {}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        assert!(has(b"libtorch_cuda.so"), "libtorch_cuda.so dropped by --as-needed");
    }
}

#[test]
fn quickstart_writes_a_report() {
    let name = format!("test-quickstart-{}", std::process::id());
    // The smoke preset keeps this quick; the README's main job trains cpu-quick the same way.
    let out = dydis().args(["quickstart", "--name", &name, "--config", "smoke"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let run = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runs").join(&name);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("libtorch version") && report.contains("ran cleanly"), "{report}");
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("environment.json")).unwrap()).unwrap();
    assert!(env["runtime"]["threads"].as_u64().unwrap() >= 1);
    assert!(run.join("notebooks/00-environment.ipynb").exists());
    let page = std::fs::read_to_string(run.join("gallery/00-environment.html")).unwrap();
    assert!(page.contains("<pre class=\"source\">") && kernel_ext::external_references(&page).is_empty());
    assert!(report.contains("shapes3d-like") && report.contains("10000 images"), "{report}");
    for f in ["samples.png", "traversal-orientation.png", "traversal-floor_hue.png"] {
        assert!(run.join("data").join(f).exists(), "{f}");
    }
    assert!(report.contains("## Model (`smoke`)") && report.contains("U-Net"), "{report}");
    for f in [
        "samples.png",
        "interchange.png",
        "interpolation.png",
        "ae/loss.svg",
        "ldm/loss.svg",
        "config.toml",
        "eval/report.json",
        "eval/representation.npz",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    assert!(
        report.contains("### Disentanglement metrics")
            && report.contains("| FactorVAE score |")
            && report.contains("| Acc₁₀₀/Acc₁₀₀₀ |"),
        "{report}"
    );
    assert!(
        report.contains("### Attention maps per latent unit") && report.contains("### Latent units projected"),
        "{report}"
    );
    for f in ["attention.png", "attention.json", "projections.svg", "projections.json"] {
        assert!(run.join(f).exists(), "{f}");
    }
    std::fs::remove_dir_all(run).unwrap();
    let bad = dydis().args(["quickstart", "--name", "../escape"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid run name"));
}

/// `dydis notebook` serves JupyterLab with the `dydis` kernel: start it headless on a free port, ask its REST API
/// for the kernelspecs, stop it.
#[test]
fn notebook_command_serves_jupyterlab_with_the_dydis_kernel() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = dydis()
        .args([
            "notebook",
            "--no-browser",
            "--ip=127.0.0.1",
            &format!("--port={port}"),
            "--IdentityProvider.token=",
            "--ServerApp.password=",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut body = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let req = format!("GET /api/kernelspecs HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                body.clear();
                let _ = s.read_to_string(&mut body);
                if body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200") {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(body.contains("\"dydis\"") && body.contains("Rust (dydis)"), "no dydis kernelspec served:\n{body}");
}

#[test]
fn data_commands_list_inspect_and_compare() {
    let out = dydis().args(["data", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("dsprites-like:subgrid") && text.contains("dsprites-real:subgrid"),
        "{text}"
    );

    let dir = empty_home("datainfo");
    let out = dydis().args(["data", "info", "dsprites-like:subgrid", "--out"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("46080 images"));
    for f in ["samples.png", "traversal-shape.png", "traversal-posY.png"] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
    let out = dydis().args(["data", "info", "no-such-set"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'no-such-set' is neither a known dataset"));

    // A CelebA folder (synthetic content in the real layout): attribute table, samples, one grid per attribute.
    let celeba = dydis_core::data::celeba::write_synthetic(dir.join("celeba"), 30, 1).unwrap();
    let out_dir = dir.join("celeba-info");
    let text = run_ok(&["data", "info", celeba.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(text.contains("celeba: 30 images") && text.contains("Large_Object"), "{text}");
    assert_eq!(&std::fs::read(out_dir.join("samples.png")).unwrap()[1..4], b"PNG");
    let grids = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("attribute-"))
        .count();
    assert!(grids >= 3 && text.contains(&format!("{grids} attribute grids")), "{grids}: {text}");

    // synthetic: folders in the Cars3D and CelebA layouts, which `data info` then reads; an existing folder or an
    // unknown layout is refused.
    let cars = dir.join("cars");
    let text = run_ok(&["data", "synthetic", "cars3d", "--count", "2", "--out", cars.to_str().unwrap()]);
    assert!(text.contains("2 objects"), "{text}");
    let text = run_ok(&["data", "info", cars.to_str().unwrap(), "--out", dir.join("cars-info").to_str().unwrap()]);
    assert!(text.contains("cars3d (2 objects") && text.contains("192 images"), "{text}");
    let out = dydis().args(["data", "synthetic", "cars3d", "--out"]).arg(&cars).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = dydis().args(["data", "synthetic", "svhn", "--out"]).arg(dir.join("x")).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown layout 'svhn'"));
    let text = run_ok(&["data", "synthetic", "celeba", "--count", "5", "--out", dir.join("celeba5").to_str().unwrap()]);
    assert!(text.contains("5 images"), "{text}");

    // export: an RGB grid to .npz takes MPI3D's layout and opens again by path.
    let npz = dir.join("grid.npz");
    run_ok(&["data", "export", "shapes3d-like:2x2x1x2x2x3@16", "--out", npz.to_str().unwrap()]);
    let text = run_ok(&["data", "info", npz.to_str().unwrap(), "--out", dir.join("npz-info").to_str().unwrap()]);
    assert!(text.contains("npz images (grid.npz): 48 images of 3x16x16") && text.contains("orientation"), "{text}");

    // fetch: names are checked before any network access; CelebA explains how to obtain it.
    let out = dydis().args(["data", "fetch", "shapes4d"]).output().unwrap();
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("known: shapes3d, dsprites, mpi3d_toy, cars3d")
    );
    let out = dydis().args(["data", "fetch", "celeba"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("forbids redistribution"));

    let json = dir.join("compare.json");
    let out = dydis().args(["data", "compare", "--out"]).arg(&json).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["dsprites"]["mean"].as_f64().unwrap() >= 0.99);
    assert!(v["shapes3d"]["mean_abs_error"].as_f64().unwrap() < 12.5);
    assert!(json.with_extension("shapes3d.png").exists());

    // render fills the cache once; a second run reuses it.
    let data_dir = dir.join("data");
    let run = || {
        dydis().args(["data", "render", "shapes3d-like:2x2x2x2x2x3@16"]).env("DYDIS_DATA", &data_dir).output().unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("96/96 images"));
    let second = run();
    assert!(
        second.status.success() && !String::from_utf8_lossy(&second.stderr).contains("96/96"),
        "the cache is reused"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// scripts/setup.sh refuses a libtorch or a venv torch of the wrong version, naming the directory and the fix.
#[test]
fn setup_refuses_a_wrong_torch_version() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = empty_home("wrongtorch");
    // A user-supplied LIBTORCH of another version.
    let fake = home.join("libtorch");
    std::fs::create_dir_all(fake.join("lib")).unwrap();
    std::fs::write(fake.join("lib/libtorch_cpu.so"), b"").unwrap();
    std::fs::write(fake.join("version.py"), "__version__ = '2.12.1+cpu'\n").unwrap();
    let out =
        Command::new("bash").arg(repo.join("scripts/setup.sh")).arg("-q").env("LIBTORCH", &fake).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is version '2.12.1', but dydis needs 2.13.0") && err.contains("Unset LIBTORCH"), "{err}");
    // A venv (not yet marked installed) holding another torch.
    let venv_torch = home.join("venv/lib/python3.11/site-packages/torch");
    std::fs::create_dir_all(&venv_torch).unwrap();
    std::fs::write(venv_torch.join("version.py"), "__version__ = '2.12.1'\n").unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/setup.sh"))
        .env("DYDIS_HOME", &home)
        .env_remove("LIBTORCH")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("holds torch 2.12.1, but dydis needs torch 2.13.0") && err.contains("rm -rf"), "{err}");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn train_sample_interchange_interpolate_and_resume() {
    let dir = empty_home("train");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let ok = run_ok;
    let text = ok(&["train", "--config", "smoke", "--out", r, "--steps", "2", "--set", "ae.steps=2"]);
    assert!(text.contains("training the first stage first") && text.contains("ldm: 2 steps"), "{text}");
    let text = ok(&["train", "--config", "smoke", "--out", r, "--resume", "--set", "ae.steps=2"]);
    assert!(text.contains("ldm: 2 steps"), "resumed for the remaining 2 of 4 steps: {text}");
    assert!(run.join("ldm/step-00000004/model.safetensors").exists());
    ok(&["sample", r, "--images", "0,7,50", "--ddim-steps", "3"]);
    ok(&["interchange", r, "--pairs", "1", "--ddim-steps", "3"]);
    ok(&["interpolate", r, "--from", "1", "--to", "90", "--steps", "3", "--ddim-steps", "3"]);
    for f in ["samples.png", "interchange.png", "interpolation.png"] {
        let bytes = std::fs::read(run.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{f}");
    }
    // Evaluation of the checkpoint: representation over the whole grid, report in three formats.
    let text = ok(&[
        "eval",
        r,
        "--preset",
        "quick",
        "--metrics",
        "factorvae,betavae,dci,mig,sap,modularity,infomec,downstream",
    ]);
    assert!(text.contains("representations extracted in"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval/report.json")).unwrap()).unwrap();
    for k in [
        "factorvae",
        "betavae",
        "dci_disentanglement",
        "dci_completeness",
        "mig",
        "sap",
        "modularity",
        "infom",
        "infoe",
        "downstream_acc100_over_acc1000",
    ] {
        let v = report["scores"][k].as_f64().unwrap_or_else(|| panic!("score {k} missing: {report}"));
        assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
    }
    assert_eq!(report["config"]["num_train"], 1000);
    let md = std::fs::read_to_string(run.join("eval/report.md")).unwrap();
    assert!(
        md.contains("| DCI disentanglement |") && md.contains("| downstream accuracy, 100 training samples |"),
        "{md}"
    );
    assert!(text.contains("Acc_100/Acc_1000"), "{text}");
    assert!(std::fs::read_to_string(run.join("eval/report.html")).unwrap().contains("<table"));
    // The saved representation evaluates to the same scores (same codes, same seeds).
    let npz = run.join("eval/representation.npz");
    let again = dir.join("again");
    ok(&[
        "eval",
        npz.to_str().unwrap(),
        "--data",
        "shapes3d-like:2x2x2x2x2x3@16",
        "--preset",
        "quick",
        "--metrics",
        "factorvae,mig",
        "--out",
        again.to_str().unwrap(),
    ]);
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("report.json")).unwrap()).unwrap();
    for k in ["factorvae", "mig"] {
        assert!((r2["scores"][k].as_f64().unwrap() - report["scores"][k].as_f64().unwrap()).abs() < 1e-9, "{k}");
    }
    // Aligned units: this model has no anchors, so alignment is the identity and the scores stay the same.
    let aligned = dir.join("aligned");
    ok(&[
        "eval",
        r,
        "--units",
        "aligned",
        "--batch",
        "7",
        "--preset",
        "quick",
        "--metrics",
        "factorvae,mig",
        "--out",
        aligned.to_str().unwrap(),
    ]);
    let r3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(aligned.join("report.json")).unwrap()).unwrap();
    for k in ["factorvae", "mig"] {
        assert!((r3["scores"][k].as_f64().unwrap() - report["scores"][k].as_f64().unwrap()).abs() < 1e-9, "{k}");
    }
    let text = ok(&[
        "eval-compare",
        run.join("eval/report.json").to_str().unwrap(),
        again.join("report.json").to_str().unwrap(),
        "--paper",
        "shapes3d",
    ]);
    assert!(text.contains("DyGA+SD (paper) (Table 1)") && text.contains("1.000±0.000"), "{text}");
    let bad = dydis().args(["eval", npz.to_str().unwrap()]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--data is needed"));
    let bad = dydis().args(["eval", r, "--metrics", "fvae"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown metric 'fvae'"));
    let bad = dydis()
        .args(["eval", npz.to_str().unwrap(), "--data", "dsprites-like:subgrid", "--metrics", "mig"])
        .output()
        .unwrap();
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("one code per grid index"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Errors name what is wrong.
    let bad = dydis().args(["train", "--config", "smoke", "--out", r, "--set", "train.lr=-1"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("train.lr"));
    let bad = dydis().args(["sample", r, "--images", "100000"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("out of range"));
    let bad = dydis().args(["sample", dir.join("nothing").to_str().unwrap()]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no such checkpoint"));
    // Another model in the same folder is refused instead of mixing runs.
    let bad =
        dydis().args(["train", "--config", "smoke", "--out", r, "--set", "model.extractor.units=5"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("another model configuration"));
    celeba_table_2_from_dydis_eval(&dir, r);
    let _ = std::fs::remove_dir_all(dir);
}

/// CelebA's Table 2 through `dydis eval`: TAD on a seeded sample of an attribute folder (here the synthetic one,
/// read at the run's image size) and FID of the run's conditioned samples with a TorchScript feature network.
fn celeba_table_2_from_dydis_eval(dir: &std::path::Path, r: &str) {
    let celeba = dydis_core::data::celeba::write_synthetic(dir.join("celeba-eval"), 40, 2).unwrap();
    let out = dir.join("celeba-report");
    let net = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_features.pt");
    let text = run_ok(&[
        "eval",
        r,
        "--data",
        celeba.to_str().unwrap(),
        "--preset",
        "quick",
        "--inception",
        net,
        "--fid-samples",
        "12",
        "--fid-ddim-steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let per = report["details"]["tad"]["per_attribute"].as_array().unwrap();
    assert_eq!(per.len(), dydis_core::data::celeba::SYNTHETIC_ATTRIBUTES.len());
    let captured: Vec<&serde_json::Value> = per.iter().filter(|a| a["captured"] == true).collect();
    let sum: f64 = captured.iter().map(|a| a["gap"].as_f64().unwrap()).sum();
    assert!((report["scores"]["tad"].as_f64().unwrap() - sum).abs() < 1e-12, "{report}");
    assert_eq!(report["scores"]["tad_attributes"].as_f64().unwrap(), captured.len() as f64);
    let fid = report["scores"]["fid"].as_f64().unwrap();
    assert!(fid.is_finite() && fid > 0.0, "FID {fid}");
    assert_eq!(report["details"]["fid"]["samples"], 12);
    assert!(report["representation"].as_str().unwrap().contains("fitted on 40 sampled images"), "{report}");
    assert!(text.contains("TAD") && text.contains("max AUROC"), "{text}");
    // A folder without attributes or grid is refused by name, and FID needs a run.
    let npz = std::path::Path::new(r).join("eval/representation.npz");
    let bad = dydis()
        .args(["eval", npz.to_str().unwrap(), "--data", celeba.to_str().unwrap(), "--inception", net])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--inception needs a run"));
}

#[test]
fn ctrl_c_finishes_the_step_and_saves() {
    let dir = empty_home("interrupt");
    let run = dir.join("run");
    let child = dydis()
        .args([
            "train",
            "--config",
            "smoke",
            "--out",
            run.to_str().unwrap(),
            "--set",
            "train.steps=100000",
            "--set",
            "ae.steps=2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = run.join("ldm/log.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0) < 3 {
        assert!(start.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("interrupted: resume with --resume"), "{stdout}");
    let steps = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        run.join(format!("ldm/step-{steps:08}/meta.json")).exists(),
        "a checkpoint at the last finished step {steps}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The visual tools from the command line write their figures, and the library — what the notebooks call — draws
/// the same figures from the same checkpoint and seed.
#[test]
fn visual_tools_match_the_library() {
    use dydis_core::prelude::*;
    let dir = empty_home("viz");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let ok = run_ok;
    // 96 images, batch 8: an epoch is 12 steps, so 24 steps give two anchor refits.
    let text = ok(&[
        "train",
        "--config",
        "smoke",
        "--out",
        r,
        "--set",
        "train.steps=24",
        "--set",
        "ae.steps=2",
        "--set",
        "dyga.enabled=true",
        "--set",
        "dyga.k0=3",
        "--set",
        "dyga.min_size=5",
    ]);
    assert!(text.contains("[dyga] epoch 2"), "{text}");
    ok(&["attention", r, "--images", "3,40", "--ddim-steps", "4", "--seed", "5"]);
    ok(&[
        "attention",
        r,
        "--images",
        "3",
        "--ddim-steps",
        "4",
        "--layers",
        "1",
        "--heads",
        "0,2",
        "--steps",
        "3",
        "--seed",
        "5",
        "--out",
        dir.join("one-layer.png").to_str().unwrap(),
    ]);
    ok(&["anchor-samples", r, "--image", "7", "--unit", "1", "--per-anchor", "3", "--ddim-steps", "4"]);
    let text = ok(&["project", r, "--n", "96"]);
    assert!(text.contains("factor (max NMI)"), "{text}");
    let text = ok(&["anchors", r]);
    assert!(text.contains("k-over-refits.svg") && text.contains("splits-filters.svg"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("attention.json")).unwrap()).unwrap();
    assert_eq!(json["images"], serde_json::json!([3, 40]));
    assert_eq!(json["table"]["rows"].as_array().unwrap().len(), 4);
    let refits = RefitRecord::read_log(&run.join("ldm/anchors.jsonl")).unwrap();
    assert_eq!(refits.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert!(refits
        .iter()
        .all(|r| r.k.len() == 4 && r.splits.len() == 4 && r.log_likelihood.iter().all(|v| v.is_finite())));

    // The same figures in-process.
    let ldm = Ldm::load(&run, Device::Cpu).unwrap();
    let ds = data::open_images(&ldm.config.data, 16).unwrap();
    // Same pixels, same caption: the PNG files are byte for byte what the library encodes.
    let same = |file: &std::path::Path, img: Image| {
        assert!(
            std::fs::read(file).unwrap() == img.to_png().unwrap(),
            "{} differs from the library's figure",
            file.display()
        );
    };
    let opts = AttentionOptions { ddim: Ddim { steps: 4, eta: 0.0 }, seed: 5, ..Default::default() };
    let maps = attention_maps(&ldm, &ds.images(&[3, 40], Device::Cpu).unwrap(), &opts).unwrap();
    same(&run.join("attention.png"), maps.figure().unwrap());
    assert_eq!(maps.maps.size(), vec![2, 4, 16, 16]);
    let (lo, hi) = (maps.maps.min().double_value(&[]), maps.maps.max().double_value(&[]));
    assert!(lo == 0.0 && (hi - 1.0).abs() < 1e-6, "normalised maps span [0, 1]: {lo} {hi}");
    let one = AttentionOptions { layers: Some(vec![1]), heads: Some(vec![0, 2]), steps: Some(vec![3]), ..opts.clone() };
    let m1 = attention_maps(&ldm, &ds.images(&[3], Device::Cpu).unwrap(), &one).unwrap();
    assert_eq!((m1.averaged, m1.layers.len()), (1, 1));
    same(&dir.join("one-layer.png"), m1.figure().unwrap());
    let anchors = ldm.anchors.as_ref().unwrap();
    let s = anchor_samples(
        &ldm,
        anchors,
        &ds.images(&[7], Device::Cpu).unwrap(),
        1,
        &AnchorSamplesOptions { per_anchor: 3, ddim: Ddim { steps: 4, eta: 0.0 }, ..Default::default() },
    )
    .unwrap();
    assert_eq!(s.rows.len(), anchors.units[1].k().min(8));
    same(&run.join("anchor-samples-unit1.png"), s.figure().unwrap());
    let idx = generate::pick(ds.as_ref(), 96, 0);
    let units = ldm.collect_units(ds.as_ref(), &idx, 256).unwrap();
    let space = data::open(&ldm.config.data).unwrap().factors().clone();
    let p = project_units(&units, &idx, &space, Some(anchors)).unwrap();
    assert_eq!(std::fs::read_to_string(run.join("projections.svg")).unwrap(), p.figure().unwrap().svg);
    assert!(p.units.iter().all(|u| u.anchors.len() == anchors.units[u.unit].k()));

    // Bad input is named.
    let bad = dydis().args(["attention", r, "--heads", "9", "--ddim-steps", "2"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("head 9 does not exist"));
    let bad = dydis().args(["attention", r, "--layers", "42", "--ddim-steps", "2"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no cross-attention map matched"));
    let bad = dydis().args(["anchor-samples", r, "--unit", "9"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unit 9"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Any preset a user can train can be benchmarked, a TOML file in a folder included (the reference's files are
/// named after the preset), and the benchmark compares against the PyTorch reference in the same run.
#[test]
fn bench_train_step_takes_a_preset_file_in_a_folder() {
    let dir = empty_home("bench-preset");
    let preset = dir.join("presets").join("my smoke.toml");
    std::fs::create_dir_all(preset.parent().unwrap()).unwrap();
    std::fs::write(&preset, dydis_core::run::RunConfig::load("smoke").unwrap().to_toml()).unwrap();
    let out = dir.join("bench").join("train-step.json");
    let p = preset.to_str().unwrap();
    let args = ["--threads", "1", "bench", "train-step", "--presets", p, "--warmup", "1", "--steps", "2"];
    run_ok(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let entry = &json["results"][0];
    assert_eq!(entry["preset"], p);
    let ratio = entry["ratio_dydis_over_best_pytorch"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{entry}");
    assert!(out.parent().unwrap().read_dir().unwrap().any(|e| {
        e.unwrap().file_name().to_string_lossy().starts_with("reference-") // the reference's files, one name each
    }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_vae_baseline_trains_evaluates_and_draws_through_the_same_commands() {
    let dir = empty_home("vae");
    let run = dir.join("fvae");
    let r = run.to_str().unwrap();
    let set = |kv: &str| ["--set".to_string(), kv.to_string()];
    let mut args: Vec<String> =
        ["train", "--config", "cpu-factor-vae", "--out", r].iter().map(|s| s.to_string()).collect();
    for kv in ["data=\"shapes3d-like:2x2x2x2x2x3@16\"", "vae.image_size=16", "vae.batch_size=8", "vae.steps=4"] {
        args.extend(set(kv));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run_ok(&a);
    assert!(text.contains("FactorVAE") && text.contains("discriminator"), "{text}");
    assert!(run.join("vae/step-00000002").is_dir(), "two updates for four disentanglement_lib steps");
    let text = run_ok(&["eval", r, "--preset", "quick", "--metrics", "mig,factorvae"]);
    assert!(text.contains("MIG"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval/report.json")).unwrap()).unwrap();
    assert!(report["representation"].as_str().unwrap().starts_with("10 units of D = 1"), "{report}");
    run_ok(&["traverse", r, "--values", "-1,0,1"]);
    run_ok(&["reconstruct", r, "--n", "3"]);
    for f in ["traversal.png", "reconstructions.png"] {
        assert!(std::fs::metadata(run.join(f)).unwrap().len() > 100, "{f}");
    }
    // LDM-only tools name the run's family.
    let bad = dydis().args(["sample", r]).output().unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && e.contains("`vae` run"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `dydis study`: Ctrl-C during a cell's training exits 130 with the cell's checkpoint saved; the same command
/// again continues that training (no step repeated) and finishes; `--report` and `eval-compare` read the study.
#[test]
fn a_study_is_interrupted_with_ctrl_c_and_continued_by_running_it_again() {
    let dir = empty_home("study");
    let file = dir.join("cli-study.toml");
    std::fs::write(
        &file,
        "name = \"cli-study\"\nseeds = [3]\nsteps = [100]\n[eval]\nmetrics = [\"mig\"]\n\
         [[arm]]\nname = \"a\"\nconfig = \"smoke\"\nset = [\"ae.steps=2\", \"train.checkpoint_every=1000\"]\n",
    )
    .unwrap();
    let root = dir.join("studies");
    let args = ["study", file.to_str().unwrap(), "--root", root.to_str().unwrap()];
    let child =
        dydis().args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let cells = root.join("cells");
    let log = || {
        let cell = std::fs::read_dir(&cells).ok()?.next()?.ok()?.path();
        std::fs::read_to_string(cell.join("ldm/log.jsonl")).ok()
    };
    let start = std::time::Instant::now();
    while log().map(|t| t.lines().count()).unwrap_or(0) < 3 {
        assert!(start.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("interrupted: run the same command again to continue"), "{stdout}");
    let done = log().unwrap().lines().count();
    assert!(done < 100, "interrupted before the end ({done} steps)");

    let text = run_ok(&args);
    assert!(text.contains("finished  1"), "{text}");
    let steps: Vec<u64> = log()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=100).collect::<Vec<u64>>(), "the interrupted training continued, no step repeated");
    let study = root.join("cli-study");
    let report = run_ok(&["study", file.to_str().unwrap(), "--root", root.to_str().unwrap(), "--report"]);
    assert!(report.contains("a (100 steps)"), "{report}");
    let compare = run_ok(&["eval-compare", study.to_str().unwrap()]);
    assert!(compare.contains("cli-study/a") && compare.contains("(n=1)"), "{compare}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A Multi-β VAE trains both stages, is evaluated through `dydis eval`, and draws its β sweep, denoising,
/// generation, σ_t and traversals at several β from the command line.
#[test]
fn a_multi_beta_vae_trains_both_stages_and_draws_through_the_commands() {
    let dir = empty_home("multibeta");
    let run = dir.join("mb");
    let r = run.to_str().unwrap();
    let mut args: Vec<String> =
        ["train", "--config", "cpu-multibeta", "--out", r].iter().map(|s| s.to_string()).collect();
    for kv in [
        "data=\"shapes3d-like:2x2x2x2x2x3@16\"",
        "multibeta.image_size=16",
        "multibeta.batch_size=8",
        "multibeta.steps=4",
        "multibeta.denoiser.batch_size=16",
        "multibeta.denoiser.steps=4",
        "multibeta.denoiser.sampler_steps=20",
        "multibeta.denoiser.start_stat_images=32",
    ] {
        args.extend(["--set".to_string(), kv.to_string()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run_ok(&a);
    assert!(text.contains("β-conditioned VAE") && text.contains("denoiser over β"), "{text}");
    assert!(run.join("mbvae/step-00000004").is_dir() && run.join("denoiser/step-00000004").is_dir());
    let text = run_ok(&["eval", r, "--preset", "quick", "--metrics", "mig"]);
    assert!(text.contains("10 units of D = 1"), "{text}");
    let text = run_ok(&["beta-sweep", r, "--levels", "0,1", "--metrics", "mig"]);
    assert!(text.contains("t 1 (β 16.00)"), "{text}");
    run_ok(&["denoise", r, "--n", "2", "--levels", "0.5", "--stride", "5"]);
    run_ok(&["traverse", r, "--levels", "0,1", "--values", "-1,0,1"]);
    run_ok(&["reconstruct", r, "--n", "2"]);
    for f in ["beta-sweep.svg", "beta-sweep.json", "denoising.png", "generation.png", "schedule.svg", "traversal.png"] {
        assert!(std::fs::metadata(run.join(f)).unwrap().len() > 100, "{f}");
    }
    // TAD on an attribute folder and FID of its image-free samples, through `dydis eval`.
    let celeba = dydis_core::data::celeba::write_synthetic(dir.join("celeba"), 40, 5).unwrap();
    let out = dir.join("celeba-report");
    let net = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_features.pt");
    let c = celeba.to_str().unwrap();
    let o = out.to_str().unwrap();
    run_ok(&[
        "eval",
        r,
        "--data",
        c,
        "--preset",
        "quick",
        "--inception",
        net,
        "--fid-samples",
        "12",
        "--fid-ddim-steps",
        "4",
        "--out",
        o,
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(report["scores"]["tad"].as_f64().is_some_and(f64::is_finite), "{report}");
    assert!(report["scores"]["fid"].as_f64().is_some_and(|f| f.is_finite() && f > 0.0), "{report}");
    assert_eq!(report["details"]["fid"]["generated"], "generated without input images");
    let _ = std::fs::remove_dir_all(dir);
}

/// CL-Dis trains its three phases, navigates, and is evaluated (metrics, FID of samples and reconstructions) and
/// drawn through the commands; the content-tracking check runs on a factor grid.
#[test]
fn cl_dis_trains_navigates_and_evaluates_through_the_commands() {
    let dir = empty_home("cldis");
    let run = dir.join("cl");
    let r = run.to_str().unwrap();
    let mut args: Vec<String> = ["train", "--config", "cpu-cl-dis", "--out", r].iter().map(|s| s.to_string()).collect();
    for kv in [
        "data=\"shapes3d-like:2x2x2x2x2x3@16\"",
        "cldis.image_size=16",
        "cldis.batch_size=8",
        "cldis.diffae_steps=3",
        "cldis.copilot.steps=3",
        "cldis.loop_steps=3",
        "cldis.ddim_steps=3",
        "cldis.inversion_steps=3",
        "cldis.diffae.channel_mult=[1, 2]",
        "cldis.diffae.enc_channel_mult=[1, 2]",
        "cldis.feedback.variance_images=32",
        "cldis.navigation.steps=2",
        "cldis.navigation.batch_size=4",
        "cldis.navigation.ddim_steps=2",
        "cldis.content_tracking.images=2",
        "cldis.content_tracking.frames=3",
        "cldis.content_tracking.flow.levels=2",
    ] {
        args.extend(["--set".to_string(), kv.to_string()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run_ok(&a);
    assert!(
        text.contains("Diff-AE (P0)") && text.contains("co-pilot β-VAE (P1)") && text.contains("feedback form"),
        "{text}"
    );
    for stage in ["diffae", "copilot", "loop"] {
        assert!(run.join(format!("{stage}/step-00000003")).is_dir(), "{stage}");
    }
    let text = run_ok(&["navigate", r, "--pairs", "4"]);
    assert!(text.contains("CT-score") && text.contains("shift error"), "{text}");
    run_ok(&["traverse", r, "--values", "-1,0,1"]);
    run_ok(&["reconstruct", r, "--n", "2"]);
    for f in ["nav/report.json", "nav/directions.png", "feedback.svg", "traversal.png", "reconstructions.png"] {
        assert!(std::fs::metadata(run.join(f)).unwrap().len() > 100, "{f}");
    }
    let net = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_features.pt");
    let out = dir.join("report");
    let o = out.to_str().unwrap();
    let text = run_ok(&[
        "eval",
        r,
        "--preset",
        "quick",
        "--metrics",
        "dci",
        "--inception",
        net,
        "--fid-samples",
        "8",
        "--fid-ddim-steps",
        "2",
        "--out",
        o,
    ]);
    assert!(text.contains("10 units of D = 1"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for k in ["fid", "fid_reconstruction", "dci_disentanglement"] {
        assert!(report["scores"][k].as_f64().is_some_and(f64::is_finite), "{k}: {report}");
    }
    let j = dir.join("ct.json");
    let text = run_ok(&[
        "content-tracking",
        "--data",
        "shapes3d-like:2x2x2x2x2x3@16",
        "--size",
        "16",
        "--images",
        "2",
        "--frames",
        "2",
        "--out",
        j.to_str().unwrap(),
    ]);
    assert!(text.contains("FactorVAE score") && j.is_file(), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
