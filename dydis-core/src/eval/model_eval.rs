//! A trained model evaluated over a whole ground-truth grid, whatever its family: its representation of every
//! image ([`Model::represent`]), reduced to one scalar per unit (PCA(1)), then the metric suite.
use super::{evaluate, pca_codes, represent, Codes, EvalConfig, Report};
use crate::data::ImageSource;
use crate::method::Model;
use crate::{Error, Result};
use std::time::Instant;
use tch::Tensor;

/// How [`evaluate_model`] runs.
#[derive(Debug, Clone)]
pub struct ModelEval {
    pub config: EvalConfig,
    /// Score the form the family's released evaluation scores (the LDM: aligned units).
    pub aligned: bool,
    /// Extraction batch size.
    pub batch: usize,
    /// What is evaluated (a checkpoint path) and on which data (a dataset spec), for the report.
    pub source: String,
    pub spec: String,
}

/// The representation `[n, N, D]` of every grid image and the report of the metrics on it.
pub fn evaluate_model(model: &dyn Model, images: &dyn ImageSource, opts: &ModelEval) -> Result<(Report, Tensor)> {
    let latents = represent_grid(model, images, opts)?;
    let space = images.factors().expect("represent_grid checked the grid");
    let report = evaluate_representation(&latents, space, opts)?;
    Ok((report, latents))
}

/// The representation `[n, N, D]` of every image of a ground-truth grid, row i for grid index i (the evaluation
/// configuration is validated first, so that a bad value fails before the extraction).
pub fn represent_grid(model: &dyn Model, images: &dyn ImageSource, opts: &ModelEval) -> Result<Tensor> {
    opts.config.validate()?;
    let space = images.factors().ok_or_else(|| {
        Error::data(&opts.spec, "has no ground-truth factor grid; the disentanglement metrics need one")
    })?;
    if images.num_images() != space.len() {
        return Err(Error::data(
            &opts.spec,
            format!("{} images but {} factor combinations", images.num_images(), space.len()),
        ));
    }
    let idx: Vec<usize> = (0..space.len()).collect();
    let t = Instant::now();
    let latents = represent::extract(model, images, &idx, opts.batch, opts.aligned)?;
    eprintln!(
        "extracted {} x {:?} representations in {:.1} s",
        space.len(),
        &latents.size()[1..],
        t.elapsed().as_secs_f64()
    );
    Ok(latents)
}

/// [`evaluate_model`] with its files: the representation is saved as `<out>/representation.npz` before the metrics
/// run (a failing metric loses no extraction), then the report as `<out>/report.{json,md,html}`.
pub fn evaluate_model_into(
    model: &dyn Model,
    images: &dyn ImageSource,
    opts: &ModelEval,
    out: &std::path::Path,
) -> Result<Report> {
    let latents = represent_grid(model, images, opts)?;
    represent::save_npz(&out.join("representation.npz"), &latents)?;
    let space = images.factors().expect("represent_grid checked the grid");
    let report = evaluate_representation(&latents, space, opts)?;
    report.write(out)?;
    Ok(report)
}

/// The metric report of a representation `[n, N, D]` whose rows are the grid's indices.
pub fn evaluate_representation(latents: &Tensor, space: &crate::data::FactorSpace, opts: &ModelEval) -> Result<Report> {
    let codes = Codes::from_tensor(&pca_codes(latents)?, space)?;
    let what = format!(
        "{} units of D = {}, {}PCA(1) per unit",
        latents.size()[1],
        latents.size()[2],
        if opts.aligned { "aligned, " } else { "" }
    );
    evaluate(&codes, space, &opts.config, &opts.source, &opts.spec, &what)
}
