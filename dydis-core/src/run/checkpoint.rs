//! Checkpoints: a folder `step-NNNNNNNN/` with `model.safetensors` (named parameter paths), `optimizer.safetensors`
//! (AdamW moments) and `meta.json` (config, step, epoch, seeds, EMA and optimizer counters, scale factor, a slot
//! for DyGA state). Written into a `.tmp` folder and renamed, so a crash never leaves a half-written checkpoint.
use super::config::RunConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

pub const FORMAT: &str = "dydis-checkpoint/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    /// `ae` (first stage) or `ldm`.
    pub kind: String,
    pub config: RunConfig,
    /// Optimizer steps completed.
    pub step: usize,
    /// Epoch of the next step.
    pub epoch: usize,
    pub seed: u64,
    pub scale_factor: f64,
    pub ema_updates: i64,
    /// Optimizer name -> its step count.
    pub optimizer_steps: HashMap<String, i64>,
    /// DyGA state (anchors); null when DyGA is off or not yet fitted.
    #[serde(default)]
    pub dyga: serde_json::Value,
    /// A family's own state beyond tensors (CL-Dis: which feedback form ran); null for the others.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub family: serde_json::Value,
    /// Wall-clock seconds spent training so far.
    pub elapsed_s: f64,
    pub dydis_version: String,
    pub libtorch_version: String,
    /// Unix time of writing.
    pub written_at: u64,
}

impl Meta {
    pub fn new(kind: &str, config: &RunConfig) -> Self {
        Meta {
            format: FORMAT.into(),
            kind: kind.into(),
            config: config.clone(),
            step: 0,
            epoch: 0,
            seed: config.seed,
            scale_factor: 1.0,
            ema_updates: 0,
            optimizer_steps: HashMap::new(),
            dyga: serde_json::Value::Null,
            family: serde_json::Value::Null,
            elapsed_s: 0.0,
            dydis_version: env!("CARGO_PKG_VERSION").into(),
            libtorch_version: env!("DYDIS_LIBTORCH_VERSION").into(),
            written_at: 0,
        }
    }
}

/// A loaded checkpoint (tensors on the CPU until restored into a var store).
pub struct Checkpoint {
    pub path: PathBuf,
    pub meta: Meta,
    pub tensors: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// Write a checkpoint into `stage_dir/step-NNNNNNNN` atomically and keep only the newest `keep_last`.
pub fn save(
    stage_dir: &Path,
    meta: &Meta,
    tensors: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
    keep_last: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(stage_dir).map_err(|e| Error::io(stage_dir, e))?;
    let name = step_dir_name(meta.step);
    let tmp = stage_dir.join(format!("{name}.tmp"));
    let dst = stage_dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let cpu = |v: &[(String, Tensor)]| -> Vec<(String, Tensor)> {
        v.iter().map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous())).collect()
    };
    Tensor::write_safetensors(&cpu(tensors), tmp.join("model.safetensors"))?;
    Tensor::write_safetensors(&cpu(optimizer), tmp.join("optimizer.safetensors"))?;
    let mut meta = meta.clone();
    meta.written_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
    std::fs::write(tmp.join("meta.json"), json).map_err(|e| Error::io(tmp.join("meta.json"), e))?;
    for f in ["model.safetensors", "optimizer.safetensors", "meta.json"] {
        if let Ok(file) = std::fs::File::open(tmp.join(f)) {
            let _ = file.sync_all();
        }
    }
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    let mut all = list(stage_dir)?;
    while all.len() > keep_last.max(1) {
        let (_, old) = all.remove(0);
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(dst)
}

/// Complete checkpoints in a stage folder, oldest first.
pub fn list(stage_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(stage_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(stage_dir, e)),
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<usize>().ok()) {
            if entry.path().join("meta.json").exists() {
                out.push((step, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Resolve a checkpoint argument: a step folder, a stage folder (its newest step), or a run folder (the newest
/// checkpoint of the latest of `stages`, in training order, that has one).
pub fn resolve(path: &Path, stages: &[&str]) -> Result<PathBuf> {
    if path.join("meta.json").exists() {
        return Ok(path.to_path_buf());
    }
    if !path.exists() {
        return Err(Error::File { path: path.into(), message: "no such checkpoint or run folder".into() });
    }
    if let Some((_, p)) = list(path)?.pop() {
        return Ok(p);
    }
    for stage in stages.iter().rev() {
        if let Some((_, p)) = list(&path.join(stage))?.pop() {
            return Ok(p);
        }
    }
    let looked = if stages.is_empty() { String::new() } else { format!(" (looked in {})", stages.join(", ")) };
    Err(Error::File {
        path: path.into(),
        message: format!("contains no complete checkpoint (step-*/meta.json){looked}"),
    })
}

/// Load a checkpoint: a step folder, or a stage folder (its newest step).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let dir = resolve(path, &[])?;
    let meta_path = dir.join("meta.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| Error::File { path: meta_path.clone(), message: format!("not a dydis checkpoint: {e}") })?;
    if meta.format != FORMAT {
        return Err(Error::File {
            path: meta_path,
            message: format!("format '{}', this build reads '{FORMAT}'", meta.format),
        });
    }
    let read = |f: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(f);
        if !p.exists() {
            return Err(Error::File { path: p, message: "missing from the checkpoint".into() });
        }
        Ok(Tensor::read_safetensors(&p)
            .map_err(|e| Error::File { path: p.clone(), message: format!("unreadable: {e}") })?
            .into_iter()
            .collect())
    };
    Ok(Checkpoint { tensors: read("model.safetensors")?, optimizer: read("optimizer.safetensors")?, meta, path: dir })
}

impl Checkpoint {
    /// Copy the checkpoint's tensors into every variable of `vs`; stored names are `stored_prefix` + the variable's
    /// name. Errors name the first variable that is missing or has another shape.
    pub fn restore(&self, vs: &nn::VarStore, stored_prefix: &str) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut var) in vars {
            let key = format!("{stored_prefix}{name}");
            let src = self.tensors.get(&key).ok_or_else(|| Error::File {
                path: self.path.clone(),
                message: format!("tensor '{key}' is missing: the checkpoint does not match this configuration"),
            })?;
            if src.size() != var.size() {
                return Err(Error::File {
                    path: self.path.clone(),
                    message: format!(
                        "tensor '{key}' has shape {:?} but the configuration needs {:?}",
                        src.size(),
                        var.size()
                    ),
                });
            }
            tch::no_grad(|| var.copy_(src));
        }
        Ok(())
    }
}

/// Named tensors of a var store, with a prefix added to each name.
pub fn named(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("{prefix}{n}"), t)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
