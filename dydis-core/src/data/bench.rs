//! Dataset throughput, measured in one run: rendering and decoding one image at a time on one thread (the
//! reference) versus the parallel batch path, and full epochs of batch iteration; and for each real file format,
//! how fast its loader opens and decodes a file written in that format.
use super::{batch, BatchIter, GroundTruth, ImageSource};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    pub dataset: String,
    pub images: usize,
    /// One image at a time on the calling thread.
    pub sequential_images_per_s: f64,
    /// `data::batch` (rayon over images).
    pub parallel_images_per_s: f64,
    /// parallel / sequential, measured in the same run.
    pub parallel_speedup: f64,
    /// A shuffled pass in batches of 128 over the same images, tensors included: `BatchIter` for ground-truth
    /// grids, `ImageSource::images` (what the trainer calls) for CelebA.
    pub batch_iter_images_per_s: f64,
}

impl Throughput {
    fn new(dataset: String, images: usize, sequential: f64, parallel: f64, batch_iter: f64) -> Self {
        Throughput {
            dataset,
            images,
            sequential_images_per_s: sequential,
            parallel_images_per_s: parallel,
            parallel_speedup: parallel / sequential,
            batch_iter_images_per_s: batch_iter,
        }
    }
}

/// The first `n` indices of a seeded shuffle of `0..len`.
fn shuffled(len: usize, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    order.truncate(n.min(len).max(1));
    order
}

fn per_second(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

/// Sequential and parallel rates over `order`: `write` decodes one image into a buffer of `numel` floats,
/// `parallel` decodes a batch; `cold` runs before each pass (a renderer forgets its memo, so that the second pass
/// does not reuse what the first one computed).
fn rates<W, P>(order: &[usize], numel: usize, write: W, parallel: P, cold: impl Fn()) -> Result<(f64, f64)>
where
    W: Fn(usize, &mut [f32]) -> Result<()>,
    P: Fn(&[usize]) -> Result<Tensor>,
{
    cold();
    let start = Instant::now();
    let mut buf = vec![0f32; numel];
    for &i in order {
        write(i, &mut buf)?;
    }
    let seq = per_second(order.len(), start);
    cold();
    let start = Instant::now();
    for chunk in order.chunks(256) {
        let _ = parallel(chunk)?;
    }
    Ok((seq, per_second(order.len(), start)))
}

/// Measure `n` images of `ds` (the first `n` indices of a seeded shuffle).
pub fn measure(ds: Arc<dyn GroundTruth>, n: usize) -> Result<Throughput> {
    let order = shuffled(ds.len(), n);
    let (seq, par) = rates(
        &order,
        ds.image_shape().numel(),
        |i, out| ds.write_image(i, out),
        |idx| batch(ds.as_ref(), idx, Device::Cpu),
        || ds.clear_memo(),
    )?;
    ds.clear_memo();
    let start = Instant::now();
    let mut seen = 0;
    for b in BatchIter::over(ds.clone(), order.clone(), 128, Some(1), Device::Cpu)? {
        seen += b?.indices.len();
    }
    Ok(Throughput::new(ds.name(), order.len(), seq, par, per_second(seen, start)))
}

/// Measure `n` images of a CelebA folder (JPEG decoding, the D2C crop and the resize are all per image).
pub fn measure_celeba(ds: &super::CelebA, n: usize) -> Result<Throughput> {
    let order = shuffled(ds.len(), n);
    let (seq, par) = rates(
        &order,
        ds.image_shape().numel(),
        |i, out| ds.write_image(i, out),
        |idx| ds.batch(idx, Device::Cpu),
        || (),
    )?;
    let start = Instant::now();
    for chunk in order.chunks(128) {
        let _ = ds.images(chunk, Device::Cpu)?;
    }
    Ok(Throughput::new(format!("celeba ({} images)", ds.len()), order.len(), seq, par, per_second(order.len(), start)))
}

/// One real file format: a file (or folder) written in it, how long writing and opening took, and the loader's
/// decoding rates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FormatRate {
    pub format: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub images: usize,
    pub write_s: f64,
    /// The loader's `open`: the h5 and MAT loaders decode every image here; the npz (MPI3D) loader memory-maps;
    /// the dSprites loader inflates the archive; CelebA reads its attribute list.
    pub open_s: f64,
    /// `images / open_s`.
    pub open_images_per_s: f64,
    pub throughput: Throughput,
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).map(|d| d.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum()).unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = Instant::now();
    let v = f()?;
    Ok((v, start.elapsed().as_secs_f64()))
}

/// What the format benchmark needs of a dataset its loader opened.
trait Opened {
    fn count(&self) -> usize;
    fn rates(self, n: usize) -> Result<Throughput>;
}

impl<G: GroundTruth + 'static> Opened for G {
    fn count(&self) -> usize {
        self.len()
    }
    fn rates(self, n: usize) -> Result<Throughput> {
        measure(Arc::new(self), n)
    }
}

impl Opened for super::CelebA {
    fn count(&self) -> usize {
        self.len()
    }
    fn rates(self, n: usize) -> Result<Throughput> {
        measure_celeba(&self, n)
    }
}

/// Write `path` in one format, open it with the format's loader, and measure `n` of its images.
fn format_rate<D: Opened>(
    format: &str,
    path: PathBuf,
    n: usize,
    write: impl FnOnce(&Path) -> Result<()>,
    open: impl FnOnce(&Path) -> Result<D>,
) -> Result<FormatRate> {
    let ((), write_s) = timed(|| write(&path))?;
    let (ds, open_s) = timed(|| open(&path))?;
    let images = ds.count();
    let throughput = ds.rates(n)?;
    Ok(FormatRate {
        format: format.into(),
        bytes: size_of(&path),
        path,
        images,
        write_s,
        open_s,
        open_images_per_s: images as f64 / open_s,
        throughput,
    })
}

/// Write one file (or folder) per real format into `dir` (synthetic content: Shapes3D-like scenes, dSprites-like
/// sprites), open each with its loader and measure decoding `n` images of it. `dir` is removed afterwards.
///
/// Files: `3dshapes.h5` layout (5x5x5x4x4x5 = 10,000 images at 64 px, deflated chunks as in the release); the
/// dSprites `.npz` (the 46,080-image sub-grid, compressed like the release); MPI3D's uncompressed `.npz` (the same
/// 10,000 scenes); a Cars3D folder of `cars3d_objects` MAT files (96 views of 128 px each); a CelebA folder of
/// `celeba_images` JPEGs.
pub fn formats(dir: &Path, n: usize, cars3d_objects: usize, celeba_images: usize) -> Result<Vec<FormatRate>> {
    use super::{
        cars3d, celeba, dsprites, mpi3d, shapes3d_h5, Cars3D, CelebA, DSpritesGrid, DSpritesRenderer, Mpi3dToy,
        Shapes3DRenderer, Shapes3dH5,
    };
    if dir.exists() {
        return Err(Error::File {
            path: dir.to_path_buf(),
            message: "already exists; the format benchmark writes into a new folder".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let run = || -> Result<Vec<FormatRate>> {
        let scenes = Shapes3DRenderer::subsampled([5, 5, 5, 4, 4, 5], 64)?;
        Ok(vec![
            format_rate(
                "Shapes3D .h5",
                dir.join("3dshapes.h5"),
                n,
                |p| shapes3d_h5::save_h5(&scenes, p),
                |p| Shapes3dH5::open(p),
            )?,
            format_rate(
                "dSprites .npz",
                dir.join("dsprites.npz"),
                n,
                |p| dsprites::save_npz(&DSpritesRenderer::subgrid(), p),
                |p| DSpritesGrid::open(p),
            )?,
            format_rate(
                "MPI3D .npz (memory-mapped)",
                dir.join("mpi3d_layout.npz"),
                n,
                |p| mpi3d::save_npz(&scenes, p),
                |p| Mpi3dToy::open_with_factors(p, scenes.factors().clone()),
            )?,
            format_rate(
                "Cars3D .mat (128 -> 64 px)",
                dir.join("cars"),
                n,
                |p| cars3d::write_synthetic(p, cars3d_objects, 0).map(drop),
                |p| Cars3D::open(p),
            )?,
            format_rate(
                "CelebA .jpg (crop, 128 -> 64 px)",
                dir.join("celeba"),
                n,
                |p| celeba::write_synthetic(p, celeba_images, 0).map(drop),
                |p| CelebA::open(p, 64),
            )?,
        ])
    };
    let result = run();
    let _ = std::fs::remove_dir_all(dir);
    result
}
