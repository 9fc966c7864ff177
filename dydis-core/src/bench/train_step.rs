//! `dydis bench train-step`: time per LDM training step (encode, extractor, U-Net, L1, backward, AdamW, EMA: the
//! library's own [`ldm_step`]) of presets on random images, side by side with the same network in PyTorch eager
//! (`bench/train_step_ref.py`, matmul and SDPA attention) at the same thread count.
use super::{peak_rss_bytes, stats, Reference};
use crate::fs::file_safe;
use crate::model::Ldm;
use crate::nn::FirstStageConfig;
use crate::run::config::RunConfig;
use crate::train::{ldm_optimizers, ldm_step};
use crate::{Error, Result};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to time.
pub type Options = super::StepOptions;

/// The reference script's JSON description of a model.
fn reference_config(cfg: &RunConfig) -> Result<serde_json::Value> {
    let m = &cfg.model;
    let fs = match &m.first_stage {
        FirstStageConfig::Vq(v) => serde_json::json!({
            "kind": "vq", "ch": v.ch, "ch_mult": v.ch_mult, "num_res_blocks": v.num_res_blocks,
            "n_embed": v.n_embed, "embed_dim": v.embed_dim
        }),
        FirstStageConfig::Identity => serde_json::json!({"kind": "identity"}),
    };
    let u = &m.unet;
    let e = &m.extractor;
    let levels = u.skip_levels(m.latent_shape().1)?;
    Ok(serde_json::json!({
        "image_size": m.image_size, "batch_size": cfg.train.batch_size, "first_stage": fs,
        "extractor": {"width": e.width, "fc": e.fc, "mlp": e.mlp, "units": e.units, "unit_dim": e.unit_dim},
        "unet": {
            "model_channels": u.model_channels, "channel_mult": u.channel_mult, "num_res_blocks": u.num_res_blocks,
            "attention_ds": u.attention_ds, "num_heads": u.num_heads, "dropout": u.dropout,
            "transformer_depth": u.transformer_depth,
            "skip_dropout": if u.skip_dropout.enabled { u.skip_dropout.rate } else { 0.0 }, "skip_levels": levels
        },
    }))
}

/// Milliseconds of each timed step and the last loss.
fn time_steps(cfg: &RunConfig, device: Device, warmup: usize, steps: usize) -> Result<(Vec<f64>, f64)> {
    tch::manual_seed(0);
    let mut ldm = Ldm::new(cfg, device)?;
    let s = cfg.model.image_size;
    let b = cfg.train.batch_size as i64;
    let batches: Vec<Tensor> =
        (0..(warmup + steps).min(8)).map(|_| Tensor::rand([b, 3, s, s], (Kind::Float, device)) * 2.0 - 1.0).collect();
    ldm.fit_scale(&batches[0])?;
    let (mut opt, mut ema) = ldm_optimizers(&ldm, cfg);
    let mut times = Vec::new();
    let mut last = 0.0;
    for i in 0..warmup + steps {
        let x = &batches[i % batches.len()];
        sync(device);
        let t0 = Instant::now();
        let parts = ldm_step(&ldm, &mut opt, &mut ema, x)?;
        last = parts.loss.double_value(&[]);
        sync(device);
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((times, last))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Time every preset (and the reference on each); the results as JSON.
pub fn run(opts: &Options) -> Result<serde_json::Value> {
    let device = opts.device;
    let threads = tch::get_num_threads();
    let mut results = Vec::new();
    for name in &opts.presets {
        let cfg = RunConfig::load(name)?;
        println!(
            "{name}: timing {} dydis steps (batch {}, {} px) on {device:?} ...",
            opts.steps, cfg.train.batch_size, cfg.model.image_size
        );
        let (times, loss) = time_steps(&cfg, device, opts.warmup, opts.steps)?;
        let mut entry = serde_json::json!({
            "preset": name, "batch_size": cfg.train.batch_size, "image_size": cfg.model.image_size,
            "dydis": {"step_ms": stats(&times), "last_loss": loss}
        });
        let ours_ms = entry["dydis"]["step_ms"]["median"].as_f64().unwrap_or(f64::NAN);
        match &opts.reference {
            Some(r) => {
                let best = reference_runs(r, opts, name, &cfg, threads, &mut entry)?;
                entry["ratio_dydis_over_best_pytorch"] = serde_json::json!(ours_ms / best);
                println!(
                    "{name}: dydis {ours_ms:.1} ms/step, best PyTorch eager {best:.1} ms/step, ratio {:.3}",
                    ours_ms / best
                );
            }
            None => println!("{name}: dydis {ours_ms:.1} ms/step (median)"),
        }
        results.push(entry);
    }
    Ok(serde_json::json!({
        "benchmark": "train-step", "device": format!("{device:?}"), "threads": threads,
        "warmup": opts.warmup, "steps": opts.steps, "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_memory": "not exposed by tch; see the reference's peak_memory_bytes",
        "results": results,
    }))
}

/// The PyTorch reference with both attention kernels; adds them to `entry` and returns the faster median.
fn reference_runs(
    r: &Reference,
    opts: &Options,
    name: &str,
    cfg: &RunConfig,
    threads: i32,
    entry: &mut serde_json::Value,
) -> Result<f64> {
    let dir = &opts.work_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // A preset given as a path (`configs/x.toml`) becomes one file name.
    let safe = file_safe(name);
    let cfg_path = dir.join(format!("reference-{safe}.json"));
    let json = serde_json::to_vec_pretty(&reference_config(cfg)?).map_err(|e| Error::json("the reference", e))?;
    crate::fs::write_atomic(&cfg_path, &json)?;
    for attn in ["matmul", "sdpa"] {
        println!("{name}: PyTorch eager reference ({attn} attention) ...");
        let res = dir.join(format!("reference-{safe}-{attn}.out.json"));
        let args: Vec<String> = [
            "--config",
            &cfg_path.to_string_lossy(),
            "--device",
            if opts.device.is_cuda() { "cuda" } else { "cpu" },
            "--attn",
            attn,
            "--out",
            &res.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(opts.timing_args(threads))
        .collect();
        entry[format!("pytorch_{attn}")] = r.run("train_step_ref.py", &args, &res, true)?;
    }
    Ok(["pytorch_matmul", "pytorch_sdpa"]
        .iter()
        .filter_map(|k| entry[*k]["step_ms"]["median"].as_f64())
        .fold(f64::INFINITY, f64::min))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_preset_path_becomes_one_file_name() {
        assert_eq!(crate::fs::file_safe("configs/my run.toml"), "configs_my_run.toml");
    }
}
