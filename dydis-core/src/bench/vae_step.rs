//! `dydis bench vae-step`: time per training step of the VAE baselines (the library's own [`vae_step`]: encoder,
//! sampled code, decoder, Bernoulli loss and the objective, backward, Adam; FactorVAE's discriminator update from
//! the same pass) at the study's size (batch 64, 64 px), side by side with the same networks in PyTorch eager
//! (`bench/vae_step_ref.py`) at the same thread count. Parameter counts must agree.
use super::stats;
use crate::model::vae::Vae;
use crate::nn::param_count;
use crate::run::config::RunConfig;
use crate::train::{vae_optimizers, vae_step};
use crate::{Error, Result};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to time.
pub type Options = super::StepOptions;

fn time_steps(cfg: &RunConfig, device: Device, warmup: usize, steps: usize) -> Result<(Vec<f64>, Vae)> {
    tch::manual_seed(0);
    let vae = Vae::new(cfg, device)?;
    let (mut opt, mut opt_d) = vae_optimizers(&vae);
    let v = &cfg.vae;
    let batches: Vec<Tensor> = (0..4)
        .map(|_| {
            Tensor::rand([v.batch_size as i64, v.channels, v.image_size, v.image_size], (Kind::Float, device)) * 2.0
                - 1.0
        })
        .collect();
    let mut times = Vec::new();
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let (out, _) = vae_step(&vae, &mut opt, opt_d.as_mut(), &batches[i % batches.len()], i)?;
        let _ = out.loss.double_value(&[]);
        if let Device::Cuda(d) = device {
            tch::Cuda::synchronize(d as i64);
        }
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((times, vae))
}

/// Time every preset (and the reference on each); the results as JSON.
pub fn run(opts: &Options) -> Result<serde_json::Value> {
    let threads = tch::get_num_threads();
    let mut results = Vec::new();
    for name in &opts.presets {
        let cfg = RunConfig::load(name)?;
        let v = &cfg.vae;
        let objective = match v.objective {
            crate::vae::Objective::FactorVae { .. } => "factor-vae",
            crate::vae::Objective::BetaVae { .. } => "beta-vae",
            _ => return Err(Error::config("presets", format!("{name}: the reference times beta-vae and factor-vae"))),
        };
        println!("{name}: timing {} dydis steps (batch {}, {} px) ...", opts.steps, v.batch_size, v.image_size);
        let (times, vae) = time_steps(&cfg, opts.device, opts.warmup, opts.steps)?;
        let ours = stats(&times);
        let params = serde_json::json!({
            "encoder": param_count(&vae.vs, "enc."), "decoder": param_count(&vae.vs, "dec."),
            "discriminator": vae.discriminator.as_ref().map(|(d, _)| param_count(d, "")).unwrap_or(0),
        });
        let mut entry = serde_json::json!({"preset": name, "params": params, "dydis": {"step_ms": ours}});
        let ours_ms = entry["dydis"]["step_ms"]["median"].as_f64().unwrap_or(f64::NAN);
        if let Some(r) = &opts.reference {
            std::fs::create_dir_all(&opts.work_dir).map_err(|e| Error::io(&opts.work_dir, e))?;
            let out = opts.work_dir.join(format!("vae-step-reference-{objective}.json"));
            let args: Vec<String> = [
                "--objective",
                objective,
                "--image-size",
                &v.image_size.to_string(),
                "--channels",
                &v.channels.to_string(),
                "--batch",
                &v.batch_size.to_string(),
                "--latent",
                &v.latent.to_string(),
                "--out",
                &out.to_string_lossy(),
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(opts.timing_args(threads))
            .collect();
            let res = r.run("vae_step_ref.py", &args, &out, false)?;
            if res["params"] != entry["params"] {
                return Err(Error::failed(
                    "the VAE step benchmark",
                    format!("parameter counts differ: dydis {} vs PyTorch {}", entry["params"], res["params"]),
                ));
            }
            let theirs = res["step_ms"]["median"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{name}: dydis {ours_ms:.1} ms/step, PyTorch eager {theirs:.1} ms/step, ratio {:.3}",
                ours_ms / theirs
            );
            entry["pytorch"] = res;
            entry["ratio_dydis_over_pytorch"] = serde_json::json!(ours_ms / theirs);
        } else {
            println!("{name}: dydis {ours_ms:.1} ms/step (median)");
        }
        results.push(entry);
    }
    Ok(serde_json::json!({
        "benchmark": "vae-step", "device": format!("{:?}", opts.device), "threads": threads,
        "warmup": opts.warmup, "steps": opts.steps, "results": results
    }))
}
