//! Ground-truth datasets: every dataset with known generative factors is a complete factor grid
//! ([`FactorSpace`]) whose index `i` has one image. Training and every metric use this one abstraction.
//!
//! Images are CHW `f32` in [-1, 1] (the paper's normalisation). Decoding a batch runs in parallel (rayon).
pub mod cache;
pub mod cars3d;
pub mod celeba;
pub mod dsprites;
pub mod factors;
pub mod fetch;
pub mod mpi3d;
pub mod npz;
pub mod registry;
pub mod sampling;
pub mod shapes3d;
pub mod shapes3d_h5;

pub use cache::{cached, CachedGrid};
pub use cars3d::Cars3D;
pub use celeba::CelebA;
pub use dsprites::{DSpritesGrid, DSpritesRenderer};
pub use factors::{Factor, FactorSpace};
pub use mpi3d::Mpi3dToy;
pub use registry::{catalogue, open, open_images, resolve_spec};
pub use sampling::{shuffled_subset, BatchIter, FactorSampler};
pub use shapes3d::Shapes3DRenderer;
pub use shapes3d_h5::Shapes3dH5;

use crate::display::{image_grid, GridOptions, Image, Panel, Show, Table};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Channels, height, width of every image of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A dataset with ground-truth factors: a complete grid, one image per factor combination.
pub trait GroundTruth: Send + Sync {
    /// A short name for displays and run records.
    fn name(&self) -> String;
    fn factors(&self) -> &FactorSpace;
    fn image_shape(&self) -> ImageShape;
    /// Write image `index` (CHW, values in [-1, 1]) into `out`, whose length is `image_shape().numel()`.
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()>;

    /// Everything that determines the images (for cache keys): by default the name; procedural datasets add
    /// their renderer's constants.
    fn fingerprint(&self) -> String {
        format!("{} {:?}", self.name(), self.factors())
    }

    /// Drop whatever a dataset memoises between images (the Shapes3D renderer keeps ray-cast geometry), so that
    /// a measurement starts cold; images are unaffected.
    fn clear_memo(&self) {}

    fn len(&self) -> usize {
        self.factors().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Anything training can draw images from by index: every ground-truth grid, and CelebA (attributes, no factors).
pub trait ImageSource: Send + Sync {
    fn source_name(&self) -> String;
    fn num_images(&self) -> usize;
    fn shape(&self) -> ImageShape;
    /// Images `indices` as `[B, C, H, W]` in [-1, 1].
    fn images(&self, indices: &[usize], device: Device) -> Result<Tensor>;
    /// The factor grid when the source is a ground-truth dataset (image `i` is grid index `i`); None otherwise.
    fn factors(&self) -> Option<&FactorSpace> {
        None
    }
    /// Names of the source's binary attributes (CelebA's 40) when it has them instead of a factor grid.
    fn attribute_names(&self) -> Option<&[String]> {
        None
    }
    /// Image `index`'s attribute labels (0/1, in `attribute_names` order) when the source has attributes.
    fn attribute_labels(&self, _index: usize) -> Option<&[u8]> {
        None
    }
}

/// A ground-truth grid as an [`ImageSource`].
pub struct Grid(pub Arc<dyn GroundTruth>);

impl ImageSource for Grid {
    fn source_name(&self) -> String {
        self.0.name()
    }
    fn factors(&self) -> Option<&FactorSpace> {
        Some(self.0.factors())
    }
    fn num_images(&self) -> usize {
        self.0.len()
    }
    fn shape(&self) -> ImageShape {
        self.0.image_shape()
    }
    fn images(&self, indices: &[usize], device: Device) -> Result<Tensor> {
        batch(self.0.as_ref(), indices, device)
    }
}

impl ImageSource for celeba::CelebA {
    fn source_name(&self) -> String {
        "celeba".into()
    }
    fn attribute_names(&self) -> Option<&[String]> {
        Some(celeba::CelebA::attribute_names(self))
    }
    fn attribute_labels(&self, index: usize) -> Option<&[u8]> {
        (index < self.len()).then(|| self.attributes(index))
    }
    fn num_images(&self) -> usize {
        self.len()
    }
    fn shape(&self) -> ImageShape {
        self.image_shape()
    }
    fn images(&self, indices: &[usize], device: Device) -> Result<Tensor> {
        self.batch(indices, device)
    }
}

/// Interleaved RGB bytes (HWC, as image files store them) into CHW floats in [-1, 1].
pub fn rgb_bytes_to_chw(px: &[u8], out: &mut [f32]) {
    let hw = px.len() / 3;
    for (i, p) in px.chunks_exact(3).enumerate() {
        for (c, &v) in p.iter().enumerate() {
            out[c * hw + i] = v as f32 / 127.5 - 1.0;
        }
    }
}

fn check_index(ds: &dyn GroundTruth, index: usize) -> Result<()> {
    if index >= ds.len() {
        return Err(Error::config("index", format!("{index} is out of range for {} ({} images)", ds.name(), ds.len())));
    }
    Ok(())
}

/// Images `indices` as one `[B, C, H, W]` float tensor on `device`, decoded in parallel straight into the
/// tensor's storage (no intermediate buffer: measured, the extra copy cost more than the decoding).
pub fn batch(ds: &dyn GroundTruth, indices: &[usize], device: Device) -> Result<Tensor> {
    for &i in indices {
        check_index(ds, i)?;
    }
    decode_batch(indices.len(), ds.image_shape(), device, |k, out| ds.write_image(indices[k], out))
}

/// A `[count, C, H, W]` float tensor whose image `k` is written by `write(k, out)`, in parallel, directly into
/// the tensor's storage; moved to `device` at the end.
pub fn decode_batch<F>(count: usize, shape: ImageShape, device: Device, write: F) -> Result<Tensor>
where
    F: Fn(usize, &mut [f32]) -> Result<()> + Sync,
{
    let n = shape.numel();
    let dims = [count as i64, shape.channels as i64, shape.height as i64, shape.width as i64];
    let t = Tensor::empty(dims, (Kind::Float, Device::Cpu));
    if count > 0 && n > 0 {
        // SAFETY: `t` is a new, contiguous CPU float tensor of exactly count * n elements that nothing else
        // references until this function returns it; the slice does not outlive this block.
        let buf = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, count * n) };
        buf.par_chunks_mut(n).enumerate().try_for_each(|(k, out)| write(k, out))?;
    }
    Ok(if device == Device::Cpu { t } else { t.to_device(device) })
}

/// Images `indices` as interleaved 8-bit bytes (`[B, H, W, C]`, the layout of the real image files), decoded
/// in parallel; values in [-1, 1] map to 0..=255 by rounding.
pub fn hwc_bytes(ds: &dyn GroundTruth, indices: &[usize]) -> Result<Vec<u8>> {
    let t = batch(ds, indices, Device::Cpu)?; // [B, C, H, W] in [-1, 1]
    let hwc = ((t + 1.0) * 127.5).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).permute([0, 2, 3, 1]).contiguous();
    Ok(Vec::<u8>::try_from(hwc.flatten(0, -1))?)
}

/// One image `[C, H, W]` on the CPU.
pub fn image(ds: &dyn GroundTruth, index: usize) -> Result<Tensor> {
    Ok(batch(ds, &[index], Device::Cpu)?.squeeze_dim(0))
}

/// Class indices of `indices` as an `[B, F]` int64 tensor.
pub fn classes(ds: &dyn GroundTruth, indices: &[usize]) -> Result<Tensor> {
    let f = ds.factors().num_factors();
    let mut out = vec![0i64; indices.len() * f];
    let mut tmp = vec![0usize; f];
    for (row, &i) in out.chunks_mut(f).zip(indices) {
        ds.factors().classes_into(i, &mut tmp)?;
        for (o, &c) in row.iter_mut().zip(&tmp) {
            *o = c as i64;
        }
    }
    Ok(Tensor::from_slice(&out).view([indices.len() as i64, f as i64]).to_kind(Kind::Int64))
}

/// Indices of one factor's traversal: `factor` runs over all its classes, the others stay as in `base`.
pub fn traversal_indices(space: &FactorSpace, factor: usize, base: usize) -> Result<Vec<usize>> {
    if factor >= space.num_factors() {
        return Err(Error::config("factor", format!("{factor} is out of range 0..{}", space.num_factors())));
    }
    let mut classes = space.classes_of(base)?;
    (0..space.factor(factor).size())
        .map(|c| {
            classes[factor] = c;
            space.index_of(&classes)
        })
        .collect()
}

/// A grid image of one factor's traversal (one row).
pub fn traversal(ds: &dyn GroundTruth, factor: usize, base: usize, scale: usize) -> Result<Image> {
    let idx = traversal_indices(ds.factors(), factor, base)?;
    let imgs = batch(ds, &idx, Device::Cpu)?;
    Ok(image_grid(&imgs, GridOptions { ncol: idx.len(), scale, ..Default::default() })?.with_caption(format!(
        "{}: all {} classes",
        ds.factors().factor(factor).name,
        idx.len()
    )))
}

/// A few random images of a dataset (seeded), as an 8-column grid.
pub fn sample_grid(ds: &dyn GroundTruth, n: usize, seed: u64, scale: usize) -> Result<Image> {
    let mut sampler = FactorSampler::new(seed);
    let idx = sampler.uniform_indices(ds.factors(), n.max(1));
    let imgs = batch(ds, &idx, Device::Cpu)?;
    Ok(image_grid(&imgs, GridOptions { ncol: 8, scale, ..Default::default() })?
        .with_caption(format!("{n} random images")))
}

/// How a dataset shows itself: its factor table (CelebA: its attribute table) beside a sample grid.
pub struct DatasetView {
    pub title: String,
    pub table: Table,
    pub samples: Image,
}

impl DatasetView {
    pub fn new(ds: &dyn GroundTruth) -> Result<Self> {
        let s = ds.image_shape();
        let title = format!("{}: {} images, {}x{}x{}", ds.name(), ds.len(), s.channels, s.height, s.width);
        Ok(Self::of(title, ds.factors().table(), sample_grid(ds, 16, 0, view_scale(s.height))?))
    }
    /// A view from its parts; the title goes on the table.
    pub(crate) fn of(title: String, table: Table, samples: Image) -> Self {
        DatasetView { table: table.with_title(title.clone()), samples, title }
    }
    fn panel(&self) -> Panel {
        Panel::row().push(&self.table).push(&self.samples)
    }
}

crate::display::impl_show_via!(DatasetView, panel);

/// Sample grids in views are enlarged 2x for images of 32 px or less.
pub(crate) fn view_scale(height: usize) -> usize {
    if height <= 32 {
        2
    } else {
        1
    }
}

/// `ds.view()` for any dataset: `DatasetView::new(&ds)`.
pub fn view(ds: &dyn GroundTruth) -> Result<DatasetView> {
    DatasetView::new(ds)
}

impl Show for FactorSpace {
    fn to_html(&self) -> String {
        self.table().to_html()
    }
    fn to_text(&self) -> String {
        self.table().to_text()
    }
}
crate::display::rich_display!(FactorSpace);

/// A dataset at a glance, as files in `dir`: `samples.png` (32 seeded images) and one `traversal-<factor>.png` per
/// factor through the grid's middle image, enlarged `scale` times.
pub fn save_overview(ds: &dyn GroundTruth, dir: &Path, scale: usize) -> Result<()> {
    sample_grid(ds, 32, 0, scale)?.save_png(dir.join("samples.png"))?;
    let middle: Vec<usize> = ds.factors().sizes().iter().map(|s| s / 2).collect();
    let base = ds.factors().index_of(&middle)?;
    for f in 0..ds.factors().num_factors() {
        let name = crate::fs::file_safe(&ds.factors().factor(f).name);
        traversal(ds, f, base, scale)?.save_png(dir.join(format!("traversal-{name}.png")))?;
    }
    Ok(())
}
