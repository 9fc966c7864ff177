//! Conditional generation from a trained model (docs/architecture.md): samples conditioned on the latent units of
//! dataset images, latent interchange (one unit swapped, Fig. 3) and interpolation (Fig. 6).
use crate::data::ImageSource;
use crate::diffusion::Ddim;
use crate::display::{image_grid, GridOptions, Image};
use crate::model::Ldm;
use crate::{Error, Result};
use tch::{Kind, Tensor};

fn images_of(ldm: &Ldm, ds: &dyn ImageSource, indices: &[usize]) -> Result<Tensor> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= ds.num_images()) {
        return Err(Error::config(
            "images",
            format!("index {bad} is out of range for {} ({} images)", ds.source_name(), ds.num_images()),
        ));
    }
    ldm.prepare(&ds.images(indices, ldm.device)?)
}

/// `n` seeded standard-normal starting points x_T of the model's latent shape.
pub(crate) fn noise(ldm: &Ldm, n: i64, seed: u64) -> Tensor {
    tch::manual_seed(seed as i64);
    let [c, h, w] = ldm.latent_shape();
    Tensor::randn([n, c, h, w], (Kind::Float, ldm.device))
}

/// Originals (top row) and DDIM samples conditioned on their units (bottom row): `[2B, 3, S, S]` in [-1, 1].
pub fn conditioned_samples(
    ldm: &Ldm,
    ds: &dyn ImageSource,
    indices: &[usize],
    ddim: Ddim,
    seed: u64,
) -> Result<Tensor> {
    let x = images_of(ldm, ds, indices)?;
    let c = ldm.condition_images(&x)?;
    let s = ldm.sample(&c, ddim, Some(noise(ldm, indices.len() as i64, seed)));
    Ok(Tensor::cat(&[x, s], 0))
}

/// Latent interchange for one (source, target) pair: [source, target, source with unit i from target for each i]
/// (`[N + 2, 3, S, S]`). With `same_noise` all samples start from one x_T; otherwise each from its own, as the
/// released script does.
pub fn interchange(
    ldm: &Ldm,
    ds: &dyn ImageSource,
    source: usize,
    target: usize,
    ddim: Ddim,
    seed: u64,
    same_noise: bool,
) -> Result<Tensor> {
    let x = images_of(ldm, ds, &[source, target])?;
    let c = ldm.condition_images(&x)?;
    let n = c.size()[1];
    let mut conds = vec![c.get(0), c.get(1)];
    for i in 0..n {
        let swapped = c.get(0).copy();
        swapped.get(i).copy_(&c.get(1).get(i));
        conds.push(swapped);
    }
    let cond = Tensor::stack(&conds, 0);
    let total = n + 2;
    let x_t = if same_noise { noise(ldm, 1, seed).repeat([total, 1, 1, 1]) } else { noise(ldm, total, seed) };
    Ok(ldm.sample(&cond, ddim, Some(x_t)))
}

/// Linear interpolation of all units between two images, `steps` points, one fixed x_T: `[steps, 3, S, S]`.
pub fn interpolate(
    ldm: &Ldm,
    ds: &dyn ImageSource,
    from: usize,
    to: usize,
    steps: usize,
    ddim: Ddim,
    seed: u64,
) -> Result<Tensor> {
    interpolate_between(ldm, &images_of(ldm, ds, &[from, to])?, steps, ddim, seed)
}

/// [`interpolate`] from the two prepared images `x` `[2, 3, S, S]`.
fn interpolate_between(ldm: &Ldm, x: &Tensor, steps: usize, ddim: Ddim, seed: u64) -> Result<Tensor> {
    if steps < 2 {
        return Err(Error::config("steps", "an interpolation needs at least 2 points"));
    }
    let c = ldm.condition_images(x)?;
    let conds: Vec<Tensor> = (0..steps)
        .map(|k| {
            let a = k as f64 / (steps - 1) as f64;
            c.get(0) * (1.0 - a) + c.get(1) * a
        })
        .collect();
    let x_t = noise(ldm, 1, seed).repeat([steps as i64, 1, 1, 1]);
    Ok(ldm.sample(&Tensor::stack(&conds, 0), ddim, Some(x_t)))
}

/// A row-wise grid of generated images (`ncol` per row), enlarged for viewing.
pub fn grid(images: &Tensor, ncol: usize, caption: &str) -> Result<Image> {
    let scale = (128 / images.size()[3].max(1)).clamp(1, 4) as usize;
    Ok(image_grid(images, GridOptions { ncol, scale, ..Default::default() })?.with_caption(caption))
}

/// `n` distinct random image indices (seeded).
pub fn pick(ds: &dyn ImageSource, n: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rand::seq::index::sample(&mut rng, ds.num_images(), n.min(ds.num_images())).into_vec()
}

/// Figure: dataset images `indices` (top row) and DDIM samples conditioned on their latent units (bottom row).
pub fn samples_figure(ldm: &Ldm, ds: &dyn ImageSource, indices: &[usize], ddim: Ddim, seed: u64) -> Result<Image> {
    let out = conditioned_samples(ldm, ds, indices, ddim, seed)?;
    grid(
        &out,
        indices.len(),
        &format!("top: images {indices:?}; bottom: DDIM-{} samples conditioned on their latent units", ddim.steps),
    )
}

/// Figure (Fig. 3): one row per (source, target) pair: the source, the target, then the source with each unit in
/// turn taken from the target. Row `k` is seeded with `seed + k`.
pub fn interchange_figure(
    ldm: &Ldm,
    ds: &dyn ImageSource,
    pairs: &[(usize, usize)],
    ddim: Ddim,
    seed: u64,
    same_noise: bool,
) -> Result<Image> {
    if pairs.is_empty() {
        return Err(Error::config("pairs", "an interchange figure needs at least one (source, target) pair"));
    }
    let rows = pairs
        .iter()
        .enumerate()
        .map(|(k, &(s, t))| interchange(ldm, ds, s, t, ddim, seed + k as u64, same_noise))
        .collect::<Result<Vec<_>>>()?;
    let n = rows[0].size()[0] as usize;
    grid(
        &Tensor::cat(&rows, 0),
        n,
        &format!("pairs {pairs:?}: columns source, target, then source with unit 0..{} taken from target", n - 3),
    )
}

/// Figure (Fig. 6): image `from`, `steps` samples with all units interpolated linearly under one fixed x_T, and
/// image `to`.
pub fn interpolation_figure(
    ldm: &Ldm,
    ds: &dyn ImageSource,
    from: usize,
    to: usize,
    steps: usize,
    ddim: Ddim,
    seed: u64,
) -> Result<Image> {
    let ends = images_of(ldm, ds, &[from, to])?;
    let out = interpolate_between(ldm, &ends, steps, ddim, seed)?;
    let row = Tensor::cat(&[ends.get(0).unsqueeze(0), out, ends.get(1).unsqueeze(0)], 0);
    grid(
        &row,
        steps + 2,
        &format!(
            "image {from} -> image {to}: all latent units interpolated linearly, one fixed x_T (ends: the real images)"
        ),
    )
}

/// `n` seeded random (source, target) pairs of distinct images.
pub fn pick_pairs(ds: &dyn ImageSource, n: usize, seed: u64) -> Vec<(usize, usize)> {
    pick(ds, 2 * n, seed).chunks_exact(2).map(|c| (c[0], c[1])).collect()
}
