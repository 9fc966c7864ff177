//! DAAM-style attention maps per latent unit (docs/architecture.md, paper Fig. 4). During a DDIM run conditioned on
//! an image's latent units, every cross-attention layer's post-softmax probabilities `[B, heads, h·w, N]` are
//! recorded; for each unit the map over the layer's h×w query grid is averaged over the chosen heads, upsampled
//! bicubically to the image size, and averaged over the chosen layers and steps. Maps are clamped at 0 and min-max
//! normalised per unit and image for display.
use super::{normalise_maps, overlay};
use crate::diffusion::Ddim;
use crate::display::{Image, Table};
use crate::model::Ldm;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// What to average over. `None` means all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionOptions {
    pub ddim: Ddim,
    /// Cross-attention layers (spatial transformers in forward order, 0-based).
    pub layers: Option<Vec<usize>>,
    /// Heads of each layer.
    pub heads: Option<Vec<i64>>,
    /// DDIM steps, counted in sampling order (0 = the first, noisiest step).
    pub steps: Option<Vec<usize>>,
    /// Seed of x_T.
    pub seed: u64,
    /// Weight of the heat-map colour over the image in the figure.
    pub alpha: f64,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions {
            ddim: Ddim { steps: 50, eta: 0.0 },
            layers: None,
            heads: None,
            steps: None,
            seed: 0,
            alpha: 0.6,
        }
    }
}

/// Attention maps of a batch of images.
#[derive(Debug)]
pub struct AttentionMaps {
    /// The conditioning images `[B, 3, S, S]` in [-1, 1].
    pub images: Tensor,
    /// The DDIM samples of the same run `[B, 3, S, S]`.
    pub samples: Tensor,
    /// Averaged maps before normalisation `[B, N, S, S]`.
    pub raw: Tensor,
    /// Per image and unit normalised to [0, 1] `[B, N, S, S]`.
    pub maps: Tensor,
    /// (layer index, query grid side) of every layer that entered the average.
    pub layers: Vec<(usize, i64)>,
    /// Number of (layer, step) maps averaged.
    pub averaged: usize,
    pub options: AttentionOptions,
}

/// Record and aggregate attention maps for images `[B, 3, S, S]` (in [-1, 1], at the model's image size).
pub fn attention_maps(ldm: &Ldm, images: &Tensor, opts: &AttentionOptions) -> Result<AttentionMaps> {
    let (b, _, s, _) =
        images.size4().map_err(|_| Error::Shape { got: images.size(), expected: "[B, 3, S, S] images".into() })?;
    let images = ldm.prepare(images)?;
    let cond = ldm.condition_images(&images)?;
    let n_units = cond.size()[1];
    let heads_total = ldm.config.model.unet.num_heads;
    if let Some(h) = opts.heads.as_ref().and_then(|h| h.iter().find(|&&h| h < 0 || h >= heads_total)) {
        return Err(Error::config(
            "attention.heads",
            format!("head {h} does not exist (the U-Net has {heads_total} heads per layer)"),
        ));
    }
    let total_steps = ldm.schedule.ddim_timesteps(opts.ddim.steps).len();
    if let Some(st) = opts.steps.as_ref().and_then(|v| v.iter().find(|&&t| t >= total_steps)) {
        return Err(Error::config(
            "attention.steps",
            format!("step {st} does not exist (the sampler takes {total_steps} steps)"),
        ));
    }
    tch::manual_seed(opts.seed as i64);
    let [c, h, w] = ldm.latent_shape();
    let x_t = Tensor::randn([b, c, h, w], (Kind::Float, ldm.device));
    let mut sum = Tensor::zeros([b, n_units, s, s], (Kind::Float, ldm.device));
    let mut averaged = 0usize;
    let mut layers: Vec<(usize, i64)> = Vec::new();
    let mut step = 0usize;
    let head_idx = opts.heads.as_ref().map(|h| Tensor::from_slice(h).to_device(ldm.device));
    let z = tch::no_grad(|| {
        opts.ddim.sample(
            &ldm.schedule,
            x_t,
            |x, t| {
                let (eps, records) = ldm.ema_unet.forward_recording(x, t, &cond);
                let use_step = opts.steps.as_ref().is_none_or(|v| v.contains(&step));
                step += 1;
                if use_step {
                    for r in records {
                        if opts.layers.as_ref().is_some_and(|l| !l.contains(&r.layer)) {
                            continue;
                        }
                        if !layers.iter().any(|(l, _)| *l == r.layer) {
                            layers.push((r.layer, r.height));
                        }
                        let p = match &head_idx {
                            Some(i) => r.probs.index_select(1, i),
                            None => r.probs.shallow_clone(),
                        };
                        // [B, heads, h·w, N] → mean over heads → [B, N, h, w] → bicubic to S×S.
                        let m =
                            p.mean_dim(1, false, Kind::Float).transpose(1, 2).reshape([b, n_units, r.height, r.width]);
                        sum += m.upsample_bicubic2d([s, s], false, None, None);
                        averaged += 1;
                    }
                }
                eps
            },
            |_, _| {},
        )
    });
    if averaged == 0 {
        return Err(Error::config(
            "attention.layers",
            format!("no cross-attention map matched the chosen layers {:?}", opts.layers),
        ));
    }
    layers.sort();
    let samples = ldm.decode(&z);
    let raw = (sum / averaged as f64).clamp_min(0.0);
    let maps = normalise_maps(&raw.view([b * n_units, s, s])).view([b, n_units, s, s]);
    Ok(AttentionMaps { images, samples, raw, maps, layers, averaged, options: opts.clone() })
}

impl AttentionMaps {
    pub fn num_units(&self) -> i64 {
        self.maps.size()[1]
    }

    /// One row per image: the image, its sample, then the heat map of each unit over the image.
    pub fn figure(&self) -> Result<Image> {
        let (b, n, s, _) = self.maps.size4()?;
        let mut tiles = Vec::new();
        for i in 0..b {
            let img = self.images.get(i).to_kind(Kind::Float);
            tiles.push(img.unsqueeze(0));
            tiles.push(self.samples.get(i).to_kind(Kind::Float).clamp(-1.0, 1.0).unsqueeze(0));
            tiles.push(overlay(&img.unsqueeze(0).expand([n, 3, s, s], false), &self.maps.get(i), self.options.alpha));
        }
        super::tile(
            &Tensor::cat(&tiles, 0),
            (n + 2) as usize,
            format!(
                "columns: image, DDIM sample, then attention of unit 0..{} (viridis: yellow = most attended); averaged over {} layer-steps of layers {:?}",
                n - 1,
                self.averaged,
                self.layers
            ),
        )
    }

    /// The maps alone (no image underneath), one row per image, `[B·N]` tiles.
    pub fn heatmaps(&self) -> Result<Image> {
        let (b, n, s, _) = self.maps.size4()?;
        let c = super::colourise(&self.maps.view([b * n, s, s])) * 2.0 - 1.0;
        super::tile(&c, n as usize, "attention maps per unit (rows: images)".into())
    }

    /// Per unit: where its attention sits (centre of mass in [0, 1]² of the normalised map) and how concentrated it
    /// is (share of the map's mass in its top 10% pixels), averaged over the images.
    pub fn table(&self) -> Table {
        let (b, n, s, _) = self.maps.size4().unwrap_or((0, 0, 0, 0));
        let mut t = Table::new(["unit", "centre (x, y)", "mass in top 10% pixels", "raw mean"]).with_title(format!(
            "attention per unit ({b} image(s), {} layer-steps, layers {:?})",
            self.averaged, self.layers
        ));
        if s == 0 {
            return t;
        }
        let coord = Tensor::arange(s, (Kind::Float, self.maps.device())) / (s - 1).max(1) as f64;
        for u in 0..n {
            let m = self.maps.select(1, u); // [B, S, S]
            let mass = m.sum_dim_intlist(&[1i64, 2][..], false, Kind::Float).clamp_min(1e-12);
            let cx = (&m * coord.view([1, 1, s])).sum_dim_intlist(&[1i64, 2][..], false, Kind::Float) / &mass;
            let cy = (&m * coord.view([1, s, 1])).sum_dim_intlist(&[1i64, 2][..], false, Kind::Float) / &mass;
            let flat = m.flatten(1, -1);
            let k = ((s * s) as f64 * 0.1).ceil() as i64;
            let top = flat.topk(k, 1, true, false).0.sum_dim_intlist(1, false, Kind::Float) / &mass;
            let raw = self.raw.select(1, u).mean(Kind::Float).double_value(&[]);
            t.push_row([
                u.to_string(),
                format!(
                    "({:.2}, {:.2})",
                    cx.mean(Kind::Float).double_value(&[]),
                    cy.mean(Kind::Float).double_value(&[])
                ),
                format!("{:.2}", top.mean(Kind::Float).double_value(&[])),
                format!("{raw:.4}"),
            ]);
        }
        t
    }

    /// Write the figure as PNG and, next to it (`.json`), the summary with the dataset indices of the images.
    pub fn save(&self, png: &std::path::Path, images: &[usize]) -> Result<()> {
        self.figure()?.save_png(png)?;
        let mut json = self.summary_json();
        json["images"] = serde_json::json!(images);
        let text = serde_json::to_string_pretty(&json).map_err(|e| crate::Error::json("the attention summary", e))?;
        crate::fs::write_atomic(&png.with_extension("json"), text.as_bytes())
    }

    /// A JSON summary (options, layers, the per-unit table) for reports.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "options": self.options, "layers": self.layers, "averaged": self.averaged, "table": self.table().to_json()
        })
    }
}

super::show_figure_and_table!(AttentionMaps);
