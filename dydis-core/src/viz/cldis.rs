//! CL-Dis's figures and its navigation report: the closed loop's curves (C_dyn, the co-pilot's KL, the
//! distillation and diffusion losses against the loop step), reconstructions by DDIM inversion, the directions of
//! z_sem as traversals, the predictor's accuracy per direction, and the label-free content-tracking score.
use crate::data::ImageSource;
use crate::display::{impl_show_via, line_plot, Image, Series, Svg, Table};
use crate::eval::metrics::content_tracking::{content_tracking, ContentTracking};
use crate::model::cldis::ClDis;
use crate::train::History;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// `n` distinct image indices of a source drawn with `seed`.
pub fn pick(images: &dyn ImageSource, n: usize, seed: u64) -> Vec<usize> {
    crate::data::shuffled_subset(images.num_images(), n, seed)
}

/// A named value of every logged step of a history, as (step, value).
fn logged(history: &History, key: &str) -> Vec<(f64, f64)> {
    history
        .steps
        .iter()
        .filter_map(|s| s.extra.iter().find(|(k, _)| k == key).map(|(_, v)| (s.step as f64, *v)))
        .collect()
}

/// The loop's feedback: C_dyn and the co-pilot's KL (nats) against the loop step.
pub fn feedback_plot(history: &History) -> Result<Svg> {
    let series = [Series::new("C_dyn", logged(history, "c_dyn")), Series::new("co-pilot KL", logged(history, "kl"))];
    line_plot(
        "closed loop: capacity C_dyn fed back by the diffusion, and the co-pilot's KL",
        "loop step",
        "nats",
        &series,
    )
}

/// The loop's losses: L_diff and L_dt against the loop step.
pub fn loop_losses_plot(history: &History) -> Result<Svg> {
    let series = [Series::new("L_diff", logged(history, "diffusion")), Series::new("L_dt", logged(history, "distill"))];
    line_plot("closed loop: diffusion and distillation losses", "loop step", "loss", &series)
}

/// Images (top row) above their reconstructions by DDIM inversion then decoding.
pub fn reconstruction_figure(model: &ClDis, images: &Tensor) -> Result<Image> {
    let r = model.reconstruct_images(images)?.to_device(Device::Cpu);
    let n = images.size()[0] as usize;
    let caption = format!(
        "top: images; bottom: DDIM inversion ({} steps) to x_T, then DDIM decoding ({} steps), both given z_sem",
        model.cfg().inversion_steps,
        model.cfg().ddim_steps
    );
    super::tile(&Tensor::cat(&[images.to_device(Device::Cpu), r], 0), n, caption)
}

/// The shifts of a traversal: `frames` values evenly over [−s, s].
pub fn shifts(model: &ClDis, frames: usize) -> Vec<f64> {
    let s = model.cfg().navigation.shift_max;
    (0..frames).map(|i| -s + 2.0 * s * i as f64 / (frames.max(2) - 1) as f64).collect()
}

/// One image's traversal along each direction (rows, in `order`), the shift running over the columns.
pub fn directions_figure(model: &ClDis, image: &Tensor, order: &[usize], frames: usize) -> Result<Image> {
    if image.size()[0] != 1 {
        return Err(Error::config("directions", "give one image"));
    }
    let s = shifts(model, frames);
    let all = model.traversal_frames(image, &s, model.cfg().ddim_steps)?; // [K, 1, M, C, H, W]
    let rows: Vec<Tensor> = order.iter().map(|&k| all.get(k as i64).get(0)).collect();
    let caption = format!(
        "rows: directions {order:?} of z_sem (axis mode); columns: shifts {:?} × the coordinate's spread",
        s.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>()
    );
    super::tile(&Tensor::cat(&rows, 0), frames, caption)
}

/// The navigation's result: how well the predictor tells the directions apart, and the CT-score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NavigationReport {
    /// Accuracy of the predicted direction, per direction, on fresh pairs.
    pub accuracy: Vec<f64>,
    /// Mean absolute error of the predicted shift, per direction.
    pub shift_error: Vec<f64>,
    /// Directions from the most to the least recognisable ("interpretable").
    pub ranking: Vec<usize>,
    pub content_tracking: ContentTracking,
    pub images: usize,
}

/// Score the predictor on `pairs` fresh pairs per direction (codes of images drawn with `seed`, shifts as in
/// training), and the CT-score on `content_tracking.images` images.
pub fn navigation_report(model: &ClDis, images: &dyn ImageSource, pairs: usize, seed: u64) -> Result<NavigationReport> {
    let c = model.cfg();
    let k_all = c.diffae.z_sem;
    let idx = pick(images, pairs, seed);
    let x = images.images(&idx, model.device)?;
    let z = model.z_sem(&x, true)?;
    let (mut accuracy, mut shift_error) = (Vec::new(), Vec::new());
    tch::manual_seed(seed as i64);
    for k in 0..k_all {
        let n = z.size()[0];
        let kk = Tensor::full([n], k, (Kind::Int64, model.device));
        let shift = model.draw_shifts(n);
        let x_t = x.randn_like();
        let [_, _, err, acc] = tch::no_grad(|| model.navigation_loss(&z, &x_t, &kk, &shift, false));
        accuracy.push(acc.double_value(&[]));
        shift_error.push(err.double_value(&[]));
    }
    let mut ranking: Vec<usize> = (0..k_all as usize).collect();
    ranking.sort_by(|&a, &b| accuracy[b].total_cmp(&accuracy[a]));
    let content_tracking = content_tracking_of(model, images, seed)?;
    Ok(NavigationReport { accuracy, shift_error, ranking, content_tracking, images: pairs })
}

/// The CT-score of z_sem's directions on `content_tracking.images` images drawn with `seed`.
pub fn content_tracking_of(model: &ClDis, images: &dyn ImageSource, seed: u64) -> Result<ContentTracking> {
    let c = &model.cfg().content_tracking;
    let idx = pick(images, c.images, seed ^ 0xc7);
    let x = images.images(&idx, model.device)?;
    let frames = model.traversal_frames(&x, &shifts(model, c.frames), model.cfg().ddim_steps)?;
    content_tracking(&frames, c)
}

impl NavigationReport {
    pub fn table(&self) -> Table {
        let mut t =
            Table::new(["direction", "accuracy", "shift error", "tracking TC", "locality L"]).with_title(format!(
                "navigation: CT-score {:.3}, exclusivity {:.3} (content tracking: ours)",
                self.content_tracking.score, self.content_tracking.exclusivity
            ));
        for &k in &self.ranking {
            let d = &self.content_tracking.directions[k];
            t.push_row([
                k.to_string(),
                format!("{:.3}", self.accuracy[k]),
                format!("{:.3}", self.shift_error[k]),
                format!("{:.3}", d.tracking),
                format!("{:.3}", d.locality),
            ]);
        }
        t
    }
}

impl_show_via!(NavigationReport, table);

/// The label-free score against the labelled ones on ground truth: a factor grid's own renderer as the generator.
/// Disentangled directions move one factor each; entangled ones move factor k and factor k + 1 together. The
/// codes the labelled metrics read are built the same way: each factor's class (scaled to [0, 1]) as one
/// coordinate, or the sum of two neighbouring factors' classes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruthCheck {
    pub factors: Vec<String>,
    pub disentangled: ContentTracking,
    pub entangled: ContentTracking,
    /// The labelled metrics of the two codes.
    pub disentangled_scores: std::collections::BTreeMap<String, f64>,
    pub entangled_scores: std::collections::BTreeMap<String, f64>,
}

/// Run [`GroundTruthCheck`] on a factor grid: `images` base images drawn with `seed`, `frames` steps along each
/// direction (each factor's classes spread evenly), the labelled metrics `opts` on every image of the grid.
pub fn ground_truth_check(
    source: &dyn ImageSource,
    cfg: &crate::cldis::ContentTrackingConfig,
    opts: &crate::eval::ModelEval,
    seed: u64,
) -> Result<GroundTruthCheck> {
    let space = source
        .factors()
        .ok_or_else(|| Error::data(&opts.spec, "has no ground-truth factor grid: the check needs one"))?
        .clone();
    let nf = space.num_factors();
    if nf < 2 || space.sizes().iter().any(|&s| s < 2) {
        return Err(Error::data(&opts.spec, "needs at least two factors with two classes each"));
    }
    let bases = pick(source, cfg.images, seed);
    // The class of a factor of size s at frame m of M: evenly spread over 0..s.
    let class_at = |size: usize, m: usize| (m * (size - 1) + (cfg.frames - 1) / 2) / (cfg.frames - 1);
    let render = |moved: &[usize]| -> Result<Tensor> {
        let mut per_image = Vec::new();
        for &b in &bases {
            let base = space.classes_of(b)?;
            let idx = (0..cfg.frames)
                .map(|m| {
                    let mut c = base.clone();
                    for &f in moved {
                        c[f] = class_at(space.sizes()[f], m);
                    }
                    space.index_of(&c)
                })
                .collect::<Result<Vec<usize>>>()?;
            per_image.push(source.images(&idx, Device::Cpu)?);
        }
        Ok(Tensor::stack(&per_image, 0))
    };
    let dis: Vec<Tensor> = (0..nf).map(|f| render(&[f])).collect::<Result<_>>()?;
    let ent: Vec<Tensor> = (0..nf).map(|f| render(&[f, (f + 1) % nf])).collect::<Result<_>>()?;
    let disentangled = content_tracking(&Tensor::stack(&dis, 0), cfg)?;
    let entangled = content_tracking(&Tensor::stack(&ent, 0), cfg)?;
    // Codes over the whole grid.
    let sizes = space.sizes();
    let mut d_code = Vec::with_capacity(space.len() * nf);
    let mut e_code = Vec::with_capacity(space.len() * nf);
    for i in 0..space.len() {
        let c = space.classes_of(i)?;
        let v: Vec<f32> = (0..nf).map(|f| c[f] as f32 / (sizes[f] - 1) as f32).collect();
        d_code.extend(v.iter().copied());
        e_code.extend((0..nf).map(|f| v[f] + v[(f + 1) % nf]));
    }
    let as_latents = |v: Vec<f32>| Tensor::from_slice(&v).view([space.len() as i64, nf as i64, 1]);
    let score =
        |v: Vec<f32>| crate::eval::evaluate_representation(&as_latents(v), &space, opts, false).map(|r| r.scores);
    Ok(GroundTruthCheck {
        factors: space.names().iter().map(|s| s.to_string()).collect(),
        disentangled,
        entangled,
        disentangled_scores: score(d_code)?,
        entangled_scores: score(e_code)?,
    })
}

impl GroundTruthCheck {
    pub fn table(&self) -> Table {
        let mut t =
            Table::new(["metric", "disentangled (one factor per direction)", "entangled (two factors)"]).with_title(
                format!("the CT-score (ours) beside labelled metrics on ground truth ({})", self.factors.join(", ")),
            );
        t.push_row([
            "CT-score".to_string(),
            format!("{:.3}", self.disentangled.score),
            format!("{:.3}", self.entangled.score),
        ]);
        t.push_row([
            "exclusivity".to_string(),
            format!("{:.3}", self.disentangled.exclusivity),
            format!("{:.3}", self.entangled.exclusivity),
        ]);
        for (k, v) in &self.disentangled_scores {
            let e = self.entangled_scores.get(k).map(|x| format!("{x:.3}")).unwrap_or_default();
            t.push_row([crate::eval::report::label(k), format!("{v:.3}"), e]);
        }
        t
    }
}

impl_show_via!(GroundTruthCheck, table);
