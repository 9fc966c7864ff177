//! The real Shapes3D file, `3dshapes.h5`: `images` (N, 64, 64, 3) uint8 and `labels` (N, 6) float64 holding the
//! factor **values** (floor, wall, object hue 0.0..0.9; scale linspace(0.75, 1.25, 8); shape 0..3; orientation
//! linspace(-30, 30, 15)), chunked and compressed. Values are mapped to classes by matching the official value
//! sets (tolerance 1e-6: the file stores e.g. 0.30000000000000004); the grid is whatever complete sub-grid the
//! rows form (the real file: all 480,000). Images are read in blocks into memory (5.9 GB for the real file).
//!
//! [`save_h5`] writes any Shapes3D-family dataset in the same layout, so the look-alike can be used through this
//! reader, and by Python tools that read 3dshapes.h5.
use super::shapes3d::full_factors;
use super::{Factor, FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct Shapes3dH5 {
    path: PathBuf,
    factors: FactorSpace,
    shape: ImageShape,
    /// HWC bytes per image, in grid-index order.
    pixels: Vec<u8>,
}

fn h5err(path: &Path) -> impl Fn(hdf5_metno::Error) -> Error + '_ {
    move |e| Error::File { path: path.to_path_buf(), message: format!("HDF5: {e}") }
}

impl Shapes3dH5 {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bad = |m: String| Error::File { path: path.clone(), message: m };
        if !path.exists() {
            return Err(Error::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        let file = hdf5_metno::File::open(&path).map_err(|e| bad(format!("not a readable HDF5 file: {e}")))?;
        let images = file.dataset("images").map_err(|_| bad("missing dataset 'images'".into()))?;
        let labels_ds = file.dataset("labels").map_err(|_| bad("missing dataset 'labels'".into()))?;
        let ishape = images.shape();
        if ishape.len() != 4 || ishape[3] != 3 {
            return Err(bad(format!("'images' has shape {ishape:?}, expected (N, H, W, 3)")));
        }
        let n = ishape[0];
        let labels: ndarray::Array2<f64> =
            labels_ds.read_2d().map_err(|e| bad(format!("'labels' cannot be read as a float64 (N, 6) array: {e}")))?;
        if labels.shape() != [n, 6] {
            return Err(bad(format!("'labels' has shape {:?}, expected ({n}, 6)", labels.shape())));
        }
        // Classes of each row from the official value sets; keep the values that occur.
        let full = full_factors();
        let mut used = vec![vec![false; 15]; 6];
        let mut classes = vec![[0usize; 6]; n];
        for (row, lab) in labels.outer_iter().enumerate() {
            for f in 0..6 {
                let v = lab[f];
                let c = full.factor(f).values.iter().position(|x| (x - v).abs() < 1e-6).ok_or_else(|| {
                    bad(format!(
                        "row {row}: {} = {v} is not one of the official values {:?}",
                        full.factor(f).name,
                        full.factor(f).values
                    ))
                })?;
                classes[row][f] = c;
                used[f][c] = true;
            }
        }
        let kept: Vec<Vec<usize>> =
            (0..6).map(|f| (0..full.factor(f).size()).filter(|&c| used[f][c]).collect()).collect();
        let factors = FactorSpace::new(
            (0..6)
                .map(|f| {
                    Factor::new(
                        full.factor(f).name.clone(),
                        kept[f].iter().map(|&c| full.factor(f).values[c]).collect(),
                    )
                })
                .collect(),
        )?;
        if factors.len() != n {
            return Err(bad(format!(
                "{n} images do not form a complete grid of sizes {:?} ({} combinations)",
                factors.sizes(),
                factors.len()
            )));
        }
        let shape = ImageShape { channels: 3, height: ishape[1], width: ishape[2] };
        let per = shape.numel();
        let mut pixels = vec![0u8; n * per];
        let mut seen = vec![false; n];
        let block = 4096;
        let mut start = 0;
        while start < n {
            let end = (start + block).min(n);
            let chunk: ndarray::Array4<u8> =
                images.read_slice(ndarray::s![start..end, .., .., ..]).map_err(h5err(&path))?;
            let chunk = chunk.as_standard_layout();
            let raw = chunk.as_slice().expect("standard layout");
            for (k, row) in (start..end).enumerate() {
                let cls: Vec<usize> =
                    (0..6).map(|f| kept[f].iter().position(|&c| c == classes[row][f]).expect("kept")).collect();
                let idx = factors.index_of(&cls)?;
                if std::mem::replace(&mut seen[idx], true) {
                    return Err(bad(format!("row {row} repeats the factor combination {cls:?}")));
                }
                pixels[idx * per..(idx + 1) * per].copy_from_slice(&raw[k * per..(k + 1) * per]);
            }
            start = end;
        }
        Ok(Shapes3dH5 { path, factors, shape, pixels })
    }
}

impl GroundTruth for Shapes3dH5 {
    fn name(&self) -> String {
        format!("shapes3d ({})", self.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        self.shape
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let per = self.shape.numel();
        let px = &self.pixels[index * per..(index + 1) * per];
        super::rgb_bytes_to_chw(px, out);
        Ok(())
    }
}

/// Write a Shapes3D-family dataset (the six factors in h5 order, RGB images) as an HDF5 file in the layout of
/// `3dshapes.h5` (chunked per image, deflate), to a temporary file renamed into place.
pub fn save_h5(ds: &dyn GroundTruth, path: &Path) -> Result<()> {
    let names = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"];
    let s = ds.image_shape();
    if ds.factors().names() != names || s.channels != 3 {
        return Err(Error::config("dataset", format!("{} is not a Shapes3D-family dataset", ds.name())));
    }
    let n = ds.len();
    crate::fs::write_atomic_with(path, |tmp| {
        let file = hdf5_metno::File::create(tmp).map_err(h5err(tmp))?;
        let images = file
            .new_dataset::<u8>()
            .chunk((1, s.height, s.width, 3))
            .deflate(4)
            .shape((n, s.height, s.width, 3))
            .create("images")
            .map_err(h5err(tmp))?;
        let block = 2048;
        let mut start = 0;
        while start < n {
            let end = (start + block).min(n);
            let idx: Vec<usize> = (start..end).collect();
            let bytes = super::hwc_bytes(ds, &idx)?;
            let arr = ndarray::Array4::from_shape_vec((end - start, s.height, s.width, 3), bytes).expect("sizes agree");
            images.write_slice(&arr, ndarray::s![start..end, .., .., ..]).map_err(h5err(tmp))?;
            start = end;
        }
        let mut labels = ndarray::Array2::<f64>::zeros((n, 6));
        for i in 0..n {
            for (f, v) in ds.factors().values_of(i)?.into_iter().enumerate() {
                labels[[i, f]] = v;
            }
        }
        file.new_dataset_builder().with_data(&labels).create("labels").map_err(h5err(tmp))?;
        file.close().map_err(h5err(tmp))
    })
}
