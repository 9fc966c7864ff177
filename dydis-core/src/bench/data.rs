//! Dataset throughput, measured in one run: rendering and decoding one image at a time on one thread (the
//! reference) versus the parallel batch path, and full epochs of batch iteration; and for each real file format,
//! how fast its loader opens and decodes a file written in that format.
use crate::data::{batch, BatchIter, CelebA, GroundTruth, ImageSource};
use crate::display::{Show, Table};
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
pub fn measure_celeba(ds: &CelebA, n: usize) -> Result<Throughput> {
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

impl Opened for CelebA {
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
    use crate::data::{
        cars3d, celeba, dsprites, mpi3d, shapes3d_h5, Cars3D, DSpritesGrid, DSpritesRenderer, Mpi3dToy,
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

/// What `dydis bench data` measures.
#[derive(Debug, Clone)]
pub struct Options {
    /// Images per throughput measurement.
    pub images: usize,
    /// Measure every real-format loader too: (Cars3D objects, CelebA images) of the folders written for it.
    pub formats: Option<(usize, usize)>,
}

/// Throughput of the look-alikes (and the real dSprites sub-grid when the reference data is configured), then
/// each real format's loader; tables on stdout, the results as JSON.
pub fn run(opts: &Options) -> Result<serde_json::Value> {
    let images = opts.images;
    let mut specs = vec![
        ("dsprites-like".to_string(), images),
        ("shapes3d-like".to_string(), images / 20),
        ("shapes3d-like@32".to_string(), images / 10),
    ];
    let mut load = serde_json::Value::Null;
    if let Some(p) = crate::data::DSpritesGrid::reference_subgrid() {
        let start = Instant::now();
        let real = crate::data::DSpritesGrid::open(&p)?;
        let secs = start.elapsed().as_secs_f64();
        load = serde_json::json!({
            "file": p, "images": real.len(), "seconds": secs, "images_per_s": real.len() as f64 / secs
        });
        specs.push((p.display().to_string(), images));
    }
    let runtime = crate::device::RuntimeInfo::collect();
    let mut t = Table::new(["dataset", "images", "1 thread img/s", "parallel img/s", "speed-up", "BatchIter img/s"])
        .with_title(format!("dataset throughput ({} threads)", runtime.threads));
    let mut results = Vec::new();
    for (spec, n) in specs {
        let r = measure(crate::data::open(&spec)?, n)?;
        t.push_row([
            r.dataset.clone(),
            r.images.to_string(),
            format!("{:.0}", r.sequential_images_per_s),
            format!("{:.0}", r.parallel_images_per_s),
            format!("{:.2}x", r.parallel_speedup),
            format!("{:.0}", r.batch_iter_images_per_s),
        ]);
        results.push(r);
    }
    println!("{}", t.to_text());
    let mut rates = Vec::new();
    if let Some((cars3d_objects, celeba_images)) = opts.formats {
        let dir = std::env::temp_dir().join(format!("dydis-bench-formats-{}", std::process::id()));
        eprintln!("writing one file per real format under {} (removed afterwards) ...", dir.display());
        rates = formats(&dir, images.min(5_000), cars3d_objects, celeba_images)?;
        println!("\n{}", formats_table(&rates).to_text());
    }
    Ok(serde_json::json!({
        "runtime": runtime,
        "rayon_threads": rayon::current_num_threads(),
        "throughput": results,
        "real_file_load": load,
        "formats": rates,
    }))
}

fn formats_table(rates: &[FormatRate]) -> Table {
    let mut t = Table::new([
        "format",
        "images",
        "MB",
        "write s",
        "open s",
        "open img/s",
        "1 thread img/s",
        "parallel img/s",
        "batches img/s",
    ])
    .with_title("real file formats (synthetic content, written and read back)");
    for r in rates {
        let th = &r.throughput;
        t.push_row([
            r.format.clone(),
            r.images.to_string(),
            format!("{:.1}", r.bytes as f64 / 1e6),
            format!("{:.2}", r.write_s),
            format!("{:.3}", r.open_s),
            format!("{:.0}", r.open_images_per_s),
            format!("{:.0}", th.sequential_images_per_s),
            format!("{:.0}", th.parallel_images_per_s),
            format!("{:.0}", th.batch_iter_images_per_s),
        ]);
    }
    t
}
