//! A trained model evaluated over a whole ground-truth grid, whatever its family: its representation of every
//! image ([`Model::represent`]), reduced to one scalar per unit (PCA(1)), then the metric suite.
use super::{evaluate, pca_codes, represent, Codes, EvalConfig, Report};
use crate::data::ImageSource;
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
    /// The aligned units alone (the raw units for a model without alignment).
    Aligned,
}

impl Units {
    /// The forms to score, headline first: `true` for aligned.
    pub fn forms(self, model: &dyn Model) -> Vec<bool> {
        match self {
            Units::Paper if model.has_aligned_form() => vec![true, false],
            Units::Paper | Units::Raw => vec![false],
            Units::Aligned => vec![true],
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

/// How [`evaluate_model`] runs.
#[derive(Debug, Clone)]
pub struct ModelEval {
    pub config: EvalConfig,
    pub units: Units,
    /// Extraction batch size.
    pub batch: usize,
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
    let forms = opts.units.forms(model);
    let space = grid_of(images, opts)?;
    let mut headline: Option<(Report, Tensor)> = None;
    for (i, &aligned) in forms.iter().enumerate() {
        let dir = out.map(|o| if i == 0 { o.to_path_buf() } else { o.join("raw") });
        let latents = represent_grid(model, images, opts, aligned)?;
        if let Some(d) = &dir {
            represent::save_npz(&d.join("representation.npz"), &latents)?;
        }
        let mut report = evaluate_representation(&latents, space, opts, aligned)?;
        report.protocol = protocol(aligned, forms.len() > 1);
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
    let (report, latents) = headline.expect("at least one form");
    if let Some(o) = out {
        report.write(o)?;
    }
    Ok((report, latents))
}

fn protocol(aligned: bool, both: bool) -> String {
    match (aligned, both) {
        (true, true) => "aligned units: the released evaluation's protocol, which produced the paper's tables (raw \
                         units beside them)"
            .into(),
        (true, false) => "aligned units: the released evaluation's protocol".into(),
        (false, true) => "raw units (the paper's protocol scores the aligned ones)".into(),
        (false, false) => "raw units".into(),
    }
}

fn grid_of<'a>(images: &'a dyn ImageSource, opts: &ModelEval) -> Result<&'a crate::data::FactorSpace> {
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

/// The representation `[n, N, D]` of every image of a ground-truth grid, row i for grid index i, raw or aligned (the
/// evaluation configuration is validated first, so that a bad value fails before the extraction).
pub fn represent_grid(model: &dyn Model, images: &dyn ImageSource, opts: &ModelEval, aligned: bool) -> Result<Tensor> {
    opts.config.validate()?;
    let space = grid_of(images, opts)?;
    let idx: Vec<usize> = (0..space.len()).collect();
    let t = Instant::now();
    let latents = represent::extract(model, images, &idx, opts.batch, aligned)?;
    eprintln!(
        "extracted {} x {:?} {} in {:.1} s",
        space.len(),
        &latents.size()[1..],
        form_name(aligned),
        t.elapsed().as_secs_f64()
    );
    Ok(latents)
}

/// The metric report of a representation `[n, N, D]` whose rows are the grid's indices (`aligned` names the form).
pub fn evaluate_representation(
    latents: &Tensor,
    space: &crate::data::FactorSpace,
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
