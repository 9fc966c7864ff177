//! A trained model evaluated whatever its family: its representation ([`Model::represent`]) reduced to one scalar per
//! unit (PCA(1)), then the metric suite over every image of a ground-truth grid, or TAD (and on request FID) over a
//! seeded sample of an attribute dataset such as CelebA (reference-spec §7.3-7.4).
use super::fid::{FeatureNet, FidOptions};
use super::{evaluate, pca_codes, represent, tad, Codes, EvalConfig, Report};
use crate::data::{FactorSpace, ImageSource};
use crate::method::Model;
use crate::{Error, Result};
use std::time::Instant;
use tch::Tensor;

/// Which form of a model's representation is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// The paper's protocol as the headline and the other form beside it: for a model with an aligned form (an LDM
    /// with DyGA anchors) the aligned units, which the released evaluation scores, then the raw units; otherwise the
    /// raw units alone.
    Paper,
    /// The raw units alone.
    Raw,
    /// The aligned units alone (the raw ones, named so, for a model without alignment).
    Aligned,
}

impl Units {
    /// The forms to score, headline first: `true` for aligned.
    pub fn forms(self, model: &dyn Model) -> Vec<bool> {
        match self {
            Units::Paper if model.has_aligned_form() => vec![true, false],
            Units::Paper | Units::Raw => vec![false],
            Units::Aligned => vec![model.has_aligned_form()],
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Units::Paper),
            "raw" => Ok(Units::Raw),
            "aligned" => Ok(Units::Aligned),
            other => Err(Error::config("units", format!("unknown form '{other}' (paper, raw or aligned)"))),
        }
    }
}

/// The name of a form in reports.
fn form_name(aligned: bool) -> &'static str {
    if aligned {
        "aligned units"
    } else {
        "raw units"
    }
}

/// FID on request: the feature network (a TorchScript Inception-v3) and how to sample.
#[derive(Debug, Clone)]
pub struct FidRequest {
    pub network: std::path::PathBuf,
    pub options: FidOptions,
}

/// What the metrics read: every image of a factor grid (disentanglement metrics), or a seeded sample of an
/// attribute dataset (TAD).
enum Protocol<'a> {
    Grid(&'a FactorSpace),
    Attributes { names: &'a [String], indices: Vec<usize> },
}

impl Protocol<'_> {
    fn indices(&self) -> Vec<usize> {
        match self {
            Protocol::Grid(space) => (0..space.len()).collect(),
            Protocol::Attributes { indices, .. } => indices.clone(),
        }
    }
}

fn protocol_of<'a>(images: &'a dyn ImageSource, opts: &ModelEval) -> Result<Protocol<'a>> {
    if images.factors().is_some() {
        return Ok(Protocol::Grid(grid_of(images, opts)?));
    }
    let names = images.attribute_names().ok_or_else(|| {
        Error::data(&opts.spec, "has neither a ground-truth factor grid nor binary attributes: nothing to score")
    })?;
    // One shuffled batch of `tad_samples` images, as the released evaluation's data loader draws it.
    let indices = crate::data::shuffled_subset(images.num_images(), opts.config.tad_samples, opts.config.seed);
    if indices.len() < 2 {
        return Err(Error::data(&opts.spec, "TAD needs at least two images"));
    }
    Ok(Protocol::Attributes { names, indices })
}

/// How [`evaluate_model`] runs.
#[derive(Debug, Clone)]
pub struct ModelEval {
    pub config: EvalConfig,
    pub units: Units,
    /// Extraction batch size.
    pub batch: usize,
    /// FID of the model's samples (an LDM's representation-conditioned ones, a Multi-β VAE's generated without
    /// input images), added to the headline report.
    pub fid: Option<FidRequest>,
    /// What is evaluated (a checkpoint path) and on which data (a dataset spec), for the report.
    pub source: String,
    pub spec: String,
}

/// The headline representation `[n, N, D]` of every grid image (the paper's form) and the report of the metrics on
/// it, with the other form's scores beside them when `opts.units` is [`Units::Paper`] and the model has one.
pub fn evaluate_model(model: &dyn Model, images: &dyn ImageSource, opts: &ModelEval) -> Result<(Report, Tensor)> {
    evaluate_forms(model, images, opts, None)
}

/// [`evaluate_model`] with its files: each form's representation is saved (`<out>/representation.npz` for the
/// headline, `<out>/raw/…` for raw units beside aligned ones) before its metrics run, so a failing metric loses no
/// extraction; then each form's report as `report.{json,md,html}`.
pub fn evaluate_model_into(
    model: &dyn Model,
    images: &dyn ImageSource,
    opts: &ModelEval,
    out: &std::path::Path,
) -> Result<Report> {
    Ok(evaluate_forms(model, images, opts, Some(out))?.0)
}

fn evaluate_forms(
    model: &dyn Model,
    images: &dyn ImageSource,
    opts: &ModelEval,
    out: Option<&std::path::Path>,
) -> Result<(Report, Tensor)> {
    opts.config.validate()?;
    let forms = opts.units.forms(model);
    let protocol = protocol_of(images, opts)?;
    // Load the feature network before any extraction: a wrong path fails in a second, not after the metrics.
    let fid = opts.fid.as_ref().map(|f| FeatureNet::load(&f.network, model.device()).map(|n| (n, f))).transpose()?;
    let indices = protocol.indices();
    let mut headline: Option<(Report, Tensor)> = None;
    for (i, &aligned) in forms.iter().enumerate() {
        let dir = out.map(|o| if i == 0 { o.to_path_buf() } else { o.join("raw") });
        let t = Instant::now();
        let latents = represent::extract(model, images, &indices, opts.batch, aligned)?;
        let extract_seconds = t.elapsed().as_secs_f64();
        if let Some(d) = &dir {
            represent::save_npz(&d.join("representation.npz"), &latents)?;
        }
        let mut report = match &protocol {
            Protocol::Grid(space) => evaluate_representation(&latents, space, opts, aligned)?,
            Protocol::Attributes { names, indices } => {
                evaluate_attributes(&latents, images, names, indices, opts, aligned)?
            }
        };
        report.protocol = protocol_text(aligned, forms.len() > 1);
        report.seconds.insert("extraction".into(), extract_seconds);
        if let Some(d) = &dir {
            report.write(d)?;
        }
        match &mut headline {
            None => headline = Some((report, latents)),
            Some((h, _)) => {
                h.other_forms.insert(form_name(aligned).into(), report.scores);
            }
        }
    }
    let (mut report, latents) = headline.expect("at least one form");
    if let Some((net, request)) = fid {
        let t = Instant::now();
        let any = model.as_any();
        let (v, samples) = if let Some(ldm) = any.downcast_ref::<crate::model::Ldm>() {
            (super::fid::conditioned_fid(ldm, images, &net, &request.options)?, "representation-conditioned")
        } else if let Some(mb) = any.downcast_ref::<crate::model::multibeta::MultiBeta>() {
            (super::fid::generated_fid(mb, images, &net, &request.options)?, "generated without input images")
        } else if let Some(cl) = any.downcast_ref::<crate::model::cldis::ClDis>() {
            let (samples, reconstructions) = super::fid::cldis_fid(cl, images, &net, &request.options)?;
            report.scores.insert("fid_reconstruction".into(), reconstructions);
            (samples, "decoded from fresh noise given dataset images' z_sem")
        } else {
            return Err(Error::config(
                "fid",
                "FID scores an LDM's representation-conditioned samples, a Multi-β VAE's generated ones or CL-Dis's \
                 decodings; this run is none of them",
            ));
        };
        report.scores.insert("fid".into(), v);
        report.details.insert(
            "fid".into(),
            serde_json::json!({
                "network": request.network.display().to_string(),
                "samples": request.options.samples,
                "generated": samples,
                "ddim_steps": request.options.ddim_steps,
                "seed": request.options.seed,
            }),
        );
        report.seconds.insert("fid".into(), t.elapsed().as_secs_f64());
    }
    if let Some(o) = out {
        report.write(o)?;
    }
    Ok((report, latents))
}

/// TAD (reference-spec §7.3) of a sample's representation `[n, N, D]`: PCA(1) per unit fitted on the sample, each
/// attribute's labels over the same images.
fn evaluate_attributes(
    latents: &Tensor,
    images: &dyn ImageSource,
    names: &[String],
    indices: &[usize],
    opts: &ModelEval,
    aligned: bool,
) -> Result<Report> {
    let t = Instant::now();
    let codes = pca_codes(latents)?;
    let units = codes.size()[1];
    let z: Vec<Vec<f64>> = (0..units)
        .map(|u| Vec::try_from(codes.select(1, u).to_kind(tch::Kind::Double).contiguous()).map_err(Error::Torch))
        .collect::<Result<_>>()?;
    let mut attributes = vec![Vec::with_capacity(indices.len()); names.len()];
    for &i in indices {
        let labels = images
            .attribute_labels(i)
            .ok_or_else(|| Error::data(&opts.spec, format!("image {i} has no attribute labels")))?;
        for (a, &l) in attributes.iter_mut().zip(labels) {
            a.push(l);
        }
    }
    let x = tad(&z, &attributes, names)?;
    let mut report = Report::new(
        &opts.source,
        &opts.spec,
        &format!(
            "{units} units of D = {}, {}PCA(1) per unit fitted on {} sampled images",
            latents.size()[2],
            if aligned { "aligned, " } else { "" },
            indices.len()
        ),
        &opts.config,
    );
    report.scores.insert("tad".into(), x.tad);
    report.scores.insert("tad_attributes".into(), x.attributes_captured as f64);
    report.details.insert("tad".into(), serde_json::to_value(&x).map_err(|e| Error::json("the TAD result", e))?);
    report.seconds.insert("tad".into(), t.elapsed().as_secs_f64());
    Ok(report)
}

fn protocol_text(aligned: bool, both: bool) -> String {
    match (aligned, both) {
        (true, true) => "aligned units: the released evaluation's protocol, which produced the paper's tables (raw \
                         units beside them)"
            .into(),
        (true, false) => "aligned units: the released evaluation's protocol".into(),
        (false, true) => "raw units (the paper's protocol scores the aligned ones)".into(),
        (false, false) => "raw units".into(),
    }
}

fn grid_of<'a>(images: &'a dyn ImageSource, opts: &ModelEval) -> Result<&'a FactorSpace> {
    let space = images.factors().ok_or_else(|| {
        Error::data(&opts.spec, "has no ground-truth factor grid; the disentanglement metrics need one")
    })?;
    if images.num_images() != space.len() {
        return Err(Error::data(
            &opts.spec,
            format!("{} images but {} factor combinations", images.num_images(), space.len()),
        ));
    }
    Ok(space)
}

/// The metric report of a representation `[n, N, D]` whose rows are the grid's indices (`aligned` names the form).
pub fn evaluate_representation(
    latents: &Tensor,
    space: &FactorSpace,
    opts: &ModelEval,
    aligned: bool,
) -> Result<Report> {
    let codes = Codes::from_tensor(&pca_codes(latents)?, space)?;
    let what = format!(
        "{} units of D = {}, {}PCA(1) per unit",
        latents.size()[1],
        latents.size()[2],
        if aligned { "aligned, " } else { "" }
    );
    evaluate(&codes, space, &opts.config, &opts.source, &opts.spec, &what)
}
