//! Conditional generation from an anchor's region (paper Fig. 1b): keep an image's latent units, replace one unit
//! by values drawn from one DyGA anchor's Gaussian, and generate. Every anchor of the unit gets a row; all samples
//! start from one x_T, so a row differs from another only by the region its unit came from.
use crate::diffusion::Ddim;
use crate::display::{Image, Table};
use crate::dyga::Anchors;
use crate::model::Ldm;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorSamplesOptions {
    /// Samples drawn per anchor (columns).
    pub per_anchor: usize,
    /// At most this many anchors (rows), the heaviest first.
    pub max_anchors: usize,
    pub ddim: Ddim,
    pub seed: u64,
}

impl Default for AnchorSamplesOptions {
    fn default() -> Self {
        AnchorSamplesOptions { per_anchor: 6, max_anchors: 8, ddim: Ddim { steps: 50, eta: 0.0 }, seed: 0 }
    }
}

/// Samples generated from the regions of one unit's anchors.
#[derive(Debug)]
pub struct AnchorSamples {
    pub unit: usize,
    /// The conditioning image `[3, S, S]`.
    pub image: Tensor,
    /// Rows of samples `[rows · per_anchor, 3, S, S]`.
    pub samples: Tensor,
    /// (anchor position in the mixture, its id, weight) of each row.
    pub rows: Vec<(usize, usize, f64)>,
    pub per_anchor: usize,
}

/// Draw `per_anchor` values of `unit` from each of its anchors' Gaussians (in the raw feature space) and generate
/// with the rest of `image`'s units (`[1, 3, S, S]` or `[3, S, S]`) unchanged.
pub fn anchor_samples(
    ldm: &Ldm,
    anchors: &Anchors,
    image: &Tensor,
    unit: usize,
    opts: &AnchorSamplesOptions,
) -> Result<AnchorSamples> {
    let image = if image.dim() == 3 { image.unsqueeze(0) } else { image.shallow_clone() };
    let ua = anchors.units.iter().find(|u| u.unit == unit).ok_or_else(|| {
        Error::config(
            "unit",
            format!("unit {unit} has no anchors (the model has {} units with anchors)", anchors.units.len()),
        )
    })?;
    if opts.per_anchor == 0 || opts.max_anchors == 0 {
        return Err(Error::config("anchor-samples", "per_anchor and max_anchors must be at least 1"));
    }
    let x = ldm.prepare(&image)?;
    let units = tch::no_grad(|| ldm.units(&x, false))?; // [1, N, D]
    let (_, n_units, d) = units.size3()?;
    if unit as i64 >= n_units {
        return Err(Error::config("unit", format!("unit {unit} does not exist (the model has {n_units})")));
    }
    let m = &ua.mixture;
    let w: Vec<f64> = Vec::try_from(m.weights.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|a, b| w[*b].total_cmp(&w[*a]));
    order.truncate(opts.max_anchors);
    let chol = m.cholesky()?.to_kind(Kind::Float).to_device(ldm.device);
    let means = m.means.to_kind(Kind::Float).to_device(ldm.device);
    tch::manual_seed(opts.seed as i64);
    let p = opts.per_anchor as i64;
    let mut conds = Vec::new();
    for &k in &order {
        let z = Tensor::randn([p, d], (Kind::Float, ldm.device));
        let v = means.get(k as i64).unsqueeze(0) + z.matmul(&chol.get(k as i64).transpose(0, 1));
        let raw = ua.norm.invert(&v); // back to the extractor's feature space
        let c = units.repeat([p, 1, 1]);
        c.select(1, unit as i64).copy_(&raw);
        conds.push(c);
    }
    let cond = ldm.condition(&Tensor::cat(&conds, 0), false)?;
    let total = cond.size()[0];
    let [c, h, wd] = ldm.latent_shape();
    let x_t = Tensor::randn([1, c, h, wd], (Kind::Float, ldm.device)).repeat([total, 1, 1, 1]);
    let samples = ldm.sample(&cond, opts.ddim, Some(x_t));
    let rows = order.iter().map(|&k| (k, ua.ids.get(k).copied().unwrap_or(k), w[k])).collect();
    Ok(AnchorSamples { unit, image: x.get(0), samples, rows, per_anchor: opts.per_anchor })
}

impl AnchorSamples {
    /// One row per anchor (heaviest first): the conditioning image, then the samples from that anchor's region.
    pub fn figure(&self) -> Result<Image> {
        let p = self.per_anchor as i64;
        let mut tiles = Vec::new();
        for (r, _) in self.rows.iter().enumerate() {
            tiles.push(self.image.unsqueeze(0));
            tiles.push(self.samples.narrow(0, r as i64 * p, p).clamp(-1.0, 1.0));
        }
        let rows: Vec<String> = self.rows.iter().map(|(_, id, w)| format!("#{id} (π {w:.2})")).collect();
        super::tile(
            &Tensor::cat(&tiles, 0),
            self.per_anchor + 1,
            format!(
                "unit {} drawn from one anchor per row: {}; first column the conditioning image, one x_T for all",
                self.unit,
                rows.join(", ")
            ),
        )
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(["row", "anchor id", "weight"])
            .with_title(format!("anchors of unit {} used for generation", self.unit));
        for (r, (_, id, w)) in self.rows.iter().enumerate() {
            t.push_row([r.to_string(), id.to_string(), format!("{w:.3}")]);
        }
        t
    }
}

super::show_figure_and_table!(AnchorSamples);
