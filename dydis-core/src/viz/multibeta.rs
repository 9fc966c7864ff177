//! The Multi-β VAE's figures: the metrics of the representation μ(x, t) across the β spectrum (disentanglement
//! against β), decoding before and after denoising, image-free generation, latent traversals at several β, and the
//! learned schedule σ_t.
use crate::data::ImageSource;
use crate::display::{line_plot, Image, Series, Svg, Table};
use crate::eval::{evaluate_representation, ModelEval};
use crate::model::multibeta::MultiBeta;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// The metric suite on μ(x, t) over every image of a grid, at each level t.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BetaSweep {
    pub levels: Vec<f64>,
    pub betas: Vec<f64>,
    /// One score map per level.
    pub scores: Vec<BTreeMap<String, f64>>,
    pub dataset: String,
}

/// Run the evaluation `opts` on the representation at each of `levels` (t in [0, 1]).
pub fn beta_sweep(model: &MultiBeta, images: &dyn ImageSource, levels: &[f64], opts: &ModelEval) -> Result<BetaSweep> {
    if levels.is_empty() || levels.iter().any(|t| !(0.0..=1.0).contains(t)) {
        return Err(Error::config("levels", format!("{levels:?}: give levels t in [0, 1]")));
    }
    let space = images
        .factors()
        .ok_or_else(|| Error::data(&opts.spec, "has no ground-truth factor grid: the metrics need one"))?;
    let indices: Vec<usize> = (0..space.len()).collect();
    let mut scores = Vec::new();
    for &t in levels {
        let mut parts = Vec::new();
        for chunk in indices.chunks(opts.batch.max(1)) {
            let x = images.images(chunk, model.device)?;
            parts.push(model.encode(&x, t)?.to_device(Device::Cpu));
        }
        let latents = Tensor::cat(&parts, 0).unsqueeze(-1);
        scores.push(evaluate_representation(&latents, space, opts, false)?.scores);
    }
    let betas = levels.iter().map(|&t| model.config.multibeta.beta(t)).collect();
    Ok(BetaSweep { levels: levels.to_vec(), betas, scores, dataset: opts.spec.clone() })
}

impl BetaSweep {
    /// Rows: metrics; columns: levels (with their β).
    pub fn table(&self) -> Table {
        let mut headers = vec!["metric".to_string()];
        headers.extend(self.levels.iter().zip(&self.betas).map(|(t, b)| format!("t {t} (β {b:.2})")));
        let mut t = Table::new(headers).with_title(format!("metrics of μ(x, t) across β on {}", self.dataset));
        let keys = crate::eval::report::ordered_keys(self.scores.iter().flat_map(|s| s.keys()));
        for k in keys {
            let mut row = vec![crate::eval::report::label(&k)];
            row.extend(self.scores.iter().map(|s| s.get(&k).map(|v| format!("{v:.3}")).unwrap_or_default()));
            t.push_row(row);
        }
        t
    }

    /// One line per metric against β.
    pub fn figure(&self) -> Result<Svg> {
        let keys = crate::eval::report::ordered_keys(self.scores.iter().flat_map(|s| s.keys()));
        let series: Vec<Series> = keys
            .iter()
            .map(|k| {
                let pts = self.betas.iter().zip(&self.scores).filter_map(|(b, s)| s.get(k).map(|v| (*b, *v)));
                Series::new(crate::eval::report::label(k), pts)
            })
            .collect();
        line_plot(&format!("disentanglement across β ({})", self.dataset), "β", "score", &series)
    }
}

super::show_figure_and_table!(BetaSweep);

/// Rows: the images; for each level t_e, decoding μ(x, t_e) directly at t_e, then denoise-then-decode from t_e
/// (the reverse process with a stride of `stride` steps). Columns: the images.
pub fn denoising_figure(model: &MultiBeta, images: &Tensor, levels: &[f64], stride: usize, seed: u64) -> Result<Image> {
    let x = images.to_device(model.device);
    let mut rows = vec![x.to_device(Device::Cpu)];
    for &t in levels {
        let mu = model.encode(&x, t)?;
        rows.push(tch::no_grad(|| model.decode(&mu, t)).to_device(Device::Cpu));
        rows.push(model.denoised_reconstruction(&x, t, stride, seed)?.to_device(Device::Cpu));
    }
    let caption = format!(
        "top: images; then per level t_e ∈ {levels:?}: μ(x, t_e) decoded at t_e, and denoised to t = 0 then decoded"
    );
    super::tile(&Tensor::cat(&rows, 0), images.size()[0] as usize, caption)
}

/// `n` images generated without input images (the start distribution, then the reverse process).
pub fn generation_figure(model: &MultiBeta, n: i64, stride: usize, seed: u64) -> Result<Image> {
    let g = model.generate(n, stride, seed)?.to_device(Device::Cpu);
    super::tile(&g, n.min(8) as usize, format!("{n} images generated from the start distribution (stride {stride})"))
}

/// Latent traversals of one image at several levels: for each level t (rows grouped by level) and latent j, μ(x, t)
/// with dimension j set to μ_j + v for each offset v, decoded at t.
pub fn traversals(model: &MultiBeta, image: &Tensor, levels: &[f64], values: &[f64]) -> Result<Image> {
    if image.size()[0] != 1 || values.is_empty() {
        return Err(Error::config("traversal", "one image and at least one value"));
    }
    let d = model.config.multibeta.latent;
    let vals = Tensor::from_slice(values).to_kind(Kind::Float).to_device(model.device);
    let mut rows = Vec::new();
    for &t in levels {
        let mu = model.encode(image, t)?;
        for j in 0..d {
            let z = mu.repeat([values.len() as i64, 1]);
            let col = z.select(1, j) + &vals;
            let z = z.index_copy(1, &Tensor::from_slice(&[j]).to_device(model.device), &col.unsqueeze(1));
            rows.push(tch::no_grad(|| model.decode(&z, t)).to_device(Device::Cpu));
        }
    }
    let caption = format!("rows: levels {levels:?} × latents 0..{d}; columns: offsets {values:?} from μ(x, t)");
    super::tile(&Tensor::cat(&rows, 0), values.len(), caption)
}

/// σ_t and β(t) over t (the learned schedule; it should grow at least linearly near t = 0).
pub fn schedule_plot(model: &MultiBeta) -> Result<Svg> {
    let grid: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
    let t = Tensor::from_slice(&grid).to_kind(Kind::Float).to_device(model.device);
    let s: Vec<f64> =
        Vec::try_from(tch::no_grad(|| model.sigma2(&t).sqrt()).to_kind(Kind::Double).to_device(Device::Cpu))
            .map_err(Error::Torch)?;
    line_plot("σ_t of the β-conditioned VAE", "t", "σ_t", &[Series::new("σ_t", grid.into_iter().zip(s))])
}
