//! dSprites: the real `.npz` files (full dataset, or complete sub-grids such as the 46,080-image one in
//! reference data folder, `$DYDIS_REFERENCE_DATA`) and a procedural renderer calibrated against the real images.
//!
//! Factors (the constant `color` column is dropped, as in disentanglement_lib): shape (1 square, 2 ellipse,
//! 3 heart), scale (0.5..1.0), orientation (radians, counter-clockwise on screen), posX (→ column), posY (→ row).
use super::npz::Npz;
use super::{Factor, FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};
use ndarray::{Array2, Array3, Ix2, Ix3};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub const SIZE: usize = 64;
const NAMES: [&str; 5] = ["shape", "scale", "orientation", "posX", "posY"];

/// The factor grid of the full dataset: 3 x 6 x 40 x 32 x 32 = 737,280 images.
pub fn full_factors() -> FactorSpace {
    FactorSpace::new(vec![
        Factor::new("shape", vec![1.0, 2.0, 3.0]),
        Factor::linspace("scale", 0.5, 1.0, 6),
        Factor::linspace("orientation", 0.0, std::f64::consts::TAU, 40),
        Factor::linspace("posX", 0.0, 1.0, 32),
        Factor::linspace("posY", 0.0, 1.0, 32),
    ])
    .expect("valid grid")
}

/// The sub-grid of `dsprites_downsampled.npz`: every 4th orientation, every 2nd position (46,080 images).
pub fn subgrid_factors() -> FactorSpace {
    let f = full_factors();
    FactorSpace::new(vec![
        f.factor(0).clone(),
        f.factor(1).clone(),
        f.factor(2).every(4),
        f.factor(3).every(2),
        f.factor(4).every(2),
    ])
    .expect("valid grid")
}

// ---------------------------------------------------------------------------------------------------------------
// Real files

/// A real dSprites `.npz` holding a complete grid: images `{0,1}` and their class labels.
pub struct DSpritesGrid {
    path: PathBuf,
    factors: FactorSpace,
    /// `SIZE * SIZE` bytes per image, in grid-index order.
    pixels: Vec<u8>,
}

impl DSpritesGrid {
    /// Open a dSprites `.npz` (`imgs` uint8 N x 64 x 64 with values {0, 1}; `latents_classes` int64 N x 6 with
    /// the color column, or N x 5 without it; `latents_values` float64 of the same shape). The rows must form a
    /// complete grid (in any order); the factor values are taken from `latents_values`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err = |m: String| Error::File { path: path.clone(), message: m };
        let mut npz = Npz::open(&path)?;
        let imgs: Array3<u8> = npz.array::<u8, Ix3>("imgs")?;
        let classes: Array2<i64> = npz.array::<i64, Ix2>("latents_classes")?;
        let values: Array2<f64> = npz.array::<f64, Ix2>("latents_values")?;
        let n = imgs.shape()[0];
        if imgs.shape()[1..] != [SIZE, SIZE] {
            return Err(err(format!("'imgs' has shape {:?}, expected (N, 64, 64)", imgs.shape())));
        }
        if classes.shape() != values.shape() || classes.shape()[0] != n {
            return Err(err(format!(
                "'latents_classes' {:?} and 'latents_values' {:?} do not match 'imgs' ({n} images)",
                classes.shape(),
                values.shape()
            )));
        }
        let skip = match classes.shape()[1] {
            6 => {
                if classes.column(0).iter().any(|&c| c != 0) {
                    return Err(err("column 0 (color) of 'latents_classes' is not constant 0".into()));
                }
                1
            }
            5 => 0,
            k => return Err(err(format!("'latents_classes' has {k} columns, expected 6 (with color) or 5"))),
        };
        if let Some(bad) = imgs.iter().find(|&&v| v > 1) {
            return Err(err(format!("'imgs' holds the value {bad}; dSprites images are binary {{0, 1}}")));
        }
        // Factor sizes and per-class values from the labels.
        let mut factors = Vec::new();
        for (k, name) in NAMES.iter().enumerate() {
            let col = classes.column(k + skip);
            if let Some(&bad) = col.iter().find(|&&c| c < 0) {
                return Err(err(format!("negative class {bad} in factor '{name}'")));
            }
            let size = col.iter().copied().max().unwrap_or(-1) + 1;
            let mut vals = vec![f64::NAN; size as usize];
            for (row, &c) in col.iter().enumerate() {
                let v = values[[row, k + skip]];
                let slot = &mut vals[c as usize];
                if slot.is_nan() {
                    *slot = v;
                } else if (*slot - v).abs() > 1e-6 {
                    return Err(err(format!("factor '{name}': class {c} has the values {} and {v}", *slot)));
                }
            }
            if let Some(c) = vals.iter().position(|v| v.is_nan()) {
                return Err(err(format!(
                    "factor '{name}': class {c} never occurs, so the rows are not a complete grid"
                )));
            }
            factors.push(Factor::new(*name, vals));
        }
        let factors = FactorSpace::new(factors)?;
        if factors.len() != n {
            return Err(err(format!(
                "{n} images do not form a complete grid of sizes {:?} ({} combinations); a random subset is not a grid dataset",
                factors.sizes(),
                factors.len()
            )));
        }
        let mut pixels = vec![0u8; n * SIZE * SIZE];
        let mut seen = vec![false; n];
        let raw = imgs.as_standard_layout();
        let raw = raw.as_slice().expect("standard layout");
        let mut cls = vec![0usize; NAMES.len()];
        for row in 0..n {
            for (k, c) in cls.iter_mut().enumerate() {
                *c = classes[[row, k + skip]] as usize;
            }
            let idx = factors.index_of(&cls)?;
            if std::mem::replace(&mut seen[idx], true) {
                return Err(err(format!("the factor combination {cls:?} occurs twice (row {row})")));
            }
            pixels[idx * SIZE * SIZE..(idx + 1) * SIZE * SIZE]
                .copy_from_slice(&raw[row * SIZE * SIZE..(row + 1) * SIZE * SIZE]);
        }
        Ok(DSpritesGrid { path, factors, pixels })
    }

    /// Where the real 46,080-image sub-grid lives under the reference data folder.
    pub const REFERENCE_SUBGRID: &'static str = "dsprites/dsprites_downsampled.npz";

    /// The real sub-grid in the reference data folder (`$DYDIS_REFERENCE_DATA`), if configured and present.
    pub fn reference_subgrid() -> Option<PathBuf> {
        crate::paths::reference_file(Self::REFERENCE_SUBGRID)
    }

    /// Raw `{0,1}` pixels of image `index`.
    pub fn mask(&self, index: usize) -> &[u8] {
        &self.pixels[index * SIZE * SIZE..(index + 1) * SIZE * SIZE]
    }
}

impl GroundTruth for DSpritesGrid {
    fn name(&self) -> String {
        format!("dsprites ({})", self.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        ImageShape { channels: 1, height: SIZE, width: SIZE }
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        for (o, &p) in out.iter_mut().zip(self.mask(index)) {
            *o = if p > 0 { 1.0 } else { -1.0 };
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Procedural renderer

/// Heart outline in canvas pixels at scale 1, y pointing up from the sprite centre: rows of
/// (y, inner half-width of the notch between the lobes, outer half-width). Measured by pooling the 15,360 real
/// hearts of the 46,080-image sub-grid in the sprite's own frame and taking the 50% occupancy contour;
/// linear interpolation between rows. Mean IoU against the real hearts: 0.995.
const HEART: [(f64, f64, f64); 39] = [
    (-9.25, 0.0, 0.0),
    (-8.88, 0.0, 0.26),
    (-8.38, 0.0, 0.52),
    (-7.88, 0.0, 0.8),
    (-7.38, 0.0, 1.19),
    (-6.88, 0.0, 1.54),
    (-6.38, 0.0, 1.99),
    (-5.88, 0.0, 2.47),
    (-5.38, 0.0, 2.95),
    (-4.88, 0.0, 3.46),
    (-4.38, 0.0, 3.97),
    (-3.88, 0.0, 4.49),
    (-3.38, 0.0, 5.01),
    (-2.88, 0.0, 5.54),
    (-2.38, 0.0, 6.05),
    (-1.88, 0.0, 6.54),
    (-1.38, 0.0, 7.01),
    (-0.88, 0.0, 7.47),
    (-0.38, 0.0, 7.84),
    (0.12, 0.0, 8.23),
    (0.62, 0.0, 8.52),
    (1.12, 0.0, 8.8),
    (1.62, 0.0, 9.04),
    (2.12, 0.0, 9.25),
    (2.62, 0.0, 9.42),
    (3.12, 0.0, 9.51),
    (3.62, 0.0, 9.55),
    (4.12, 0.0, 9.58),
    (4.62, 0.0, 9.55),
    (5.12, 0.0, 9.5),
    (5.62, 0.19, 9.36),
    (6.12, 0.33, 9.22),
    (6.62, 0.56, 8.97),
    (7.12, 0.87, 8.68),
    (7.62, 1.25, 8.26),
    (8.12, 1.73, 7.76),
    (8.62, 2.36, 7.1),
    (9.12, 3.41, 6.01),
    (9.25, 4.71, 4.71),
];

fn heart_contains(u: f64, v: f64) -> bool {
    let (first, last) = (HEART[0].0, HEART[HEART.len() - 1].0);
    if !(first..=last).contains(&v) {
        return false;
    }
    let k = HEART.partition_point(|r| r.0 <= v).clamp(1, HEART.len() - 1);
    let (a, b) = (HEART[k - 1], HEART[k]);
    let t = if b.0 > a.0 { (v - a.0) / (b.0 - a.0) } else { 0.0 };
    let inner = a.1 + t * (b.1 - a.1);
    let outer = a.2 + t * (b.2 - a.2);
    let au = u.abs();
    au <= outer && au >= inner
}

/// Renders binary dSprites images from factor values. Geometry, measured on the real files: sprite centre at
/// `64 (0.25 + 0.5 pos)` px, a pixel is on when its centre lies in the shape; square side `0.3·64·scale`,
/// ellipse semi-axes `0.2·64·scale` × `0.1125·64·scale` (long axis horizontal at orientation 0), heart from a
/// measured outline; rotation counter-clockwise on screen.
#[derive(Debug, Clone)]
pub struct DSpritesRenderer {
    factors: FactorSpace,
}

impl DSpritesRenderer {
    /// A renderer over any grid whose factors are shape, scale, orientation, posX, posY (in that order).
    pub fn new(factors: FactorSpace) -> Result<Self> {
        if factors.names() != NAMES {
            return Err(Error::config(
                "factors",
                format!("dSprites factors must be {NAMES:?}, got {:?}", factors.names()),
            ));
        }
        if let Some(v) = factors.factor(0).values.iter().find(|v| ![1.0, 2.0, 3.0].contains(*v)) {
            return Err(Error::config("shape", format!("{v} is not a dSprites shape (1 square, 2 ellipse, 3 heart)")));
        }
        for f in &factors.factors()[1..] {
            if let Some(v) = f.values.iter().find(|v| !v.is_finite()) {
                return Err(Error::config(f.name.clone(), format!("value {v} is not finite")));
            }
        }
        Ok(DSpritesRenderer { factors })
    }

    /// The full 737,280-image grid.
    pub fn full() -> Self {
        Self::new(full_factors()).expect("valid")
    }

    /// The 46,080-image sub-grid (same layout as the real `dsprites_downsampled.npz`).
    pub fn subgrid() -> Self {
        Self::new(subgrid_factors()).expect("valid")
    }

    /// Render one sprite from factor values into a `{0,1}` mask of 64 x 64 bytes.
    pub fn render_mask(shape: f64, scale: f64, orientation: f64, pos_x: f64, pos_y: f64, out: &mut [u8]) {
        let px = SIZE as f64;
        let (cx, cy) = (px * (0.25 + 0.5 * pos_x), px * (0.25 + 0.5 * pos_y));
        let (s, c) = orientation.sin_cos();
        let half = 0.15 * px; // square half-side at scale 1
        let (ea, eb) = (0.2 * px, 0.1125 * px); // ellipse semi-axes at scale 1
        let reach = 13.0 * scale + 1.5; // every shape fits in this radius around the centre
        let (x0, x1) = ((cx - reach).floor().max(0.0) as usize, ((cx + reach).ceil() as usize).min(SIZE));
        let (y0, y1) = ((cy - reach).floor().max(0.0) as usize, ((cy + reach).ceil() as usize).min(SIZE));
        out.fill(0);
        for y in y0..y1 {
            let dy = cy - (y as f64 + 0.5); // up
            for x in x0..x1 {
                let dx = x as f64 + 0.5 - cx;
                // Into the sprite's frame (undo a counter-clockwise rotation), in units of scale 1.
                let u = (dx * c + dy * s) / scale;
                let v = (-dx * s + dy * c) / scale;
                let inside = match shape as i64 {
                    1 => u.abs() <= half && v.abs() <= half,
                    2 => (u / ea).powi(2) + (v / eb).powi(2) <= 1.0,
                    _ => heart_contains(u, v),
                };
                out[y * SIZE + x] = inside as u8;
            }
        }
    }

    fn mask_of(&self, index: usize, out: &mut [u8]) -> Result<()> {
        let v = self.factors.values_of(index)?;
        Self::render_mask(v[0], v[1], v[2], v[3], v[4], out);
        Ok(())
    }
}

impl GroundTruth for DSpritesRenderer {
    fn name(&self) -> String {
        format!("dsprites-like ({})", self.factors.sizes().iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x"))
    }
    fn fingerprint(&self) -> String {
        format!("dsprites-renderer-v1 {:?} {HEART:?}", self.factors)
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        ImageShape { channels: 1, height: SIZE, width: SIZE }
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let mut mask = [0u8; SIZE * SIZE];
        self.mask_of(index, &mut mask)?;
        for (o, &p) in out.iter_mut().zip(mask.iter()) {
            *o = if p > 0 { 1.0 } else { -1.0 };
        }
        Ok(())
    }
}

/// Write a dSprites-family dataset (factors shape, scale, orientation, posX, posY; 1 x 64 x 64 images) as a
/// `.npz` in the real file's layout (`imgs` {0,1}, `latents_classes` and `latents_values` with the color column),
/// readable by [`DSpritesGrid::open`] and by numpy. Written to a temporary file and renamed: never half-written.
pub fn save_npz(ds: &dyn GroundTruth, path: &Path) -> Result<()> {
    if ds.factors().names() != NAMES || ds.image_shape() != (ImageShape { channels: 1, height: SIZE, width: SIZE }) {
        return Err(Error::config("dataset", format!("{} is not a dSprites-family dataset", ds.name())));
    }
    let n = ds.len();
    let mut imgs = Array3::<u8>::zeros((n, SIZE, SIZE));
    imgs.as_slice_mut().expect("standard layout").par_chunks_mut(SIZE * SIZE).enumerate().try_for_each(
        |(i, out)| {
            let mut buf = [0f32; SIZE * SIZE];
            ds.write_image(i, &mut buf)?;
            for (o, v) in out.iter_mut().zip(buf) {
                *o = (v > 0.0) as u8;
            }
            Ok::<_, Error>(())
        },
    )?;
    let mut classes = Array2::<i64>::zeros((n, 6));
    let mut values = Array2::<f64>::zeros((n, 6));
    for i in 0..n {
        let c = ds.factors().classes_of(i)?;
        values[[i, 0]] = 1.0;
        for k in 0..5 {
            classes[[i, k + 1]] = c[k] as i64;
            values[[i, k + 1]] = ds.factors().factor(k).values[c[k]];
        }
    }
    let failed = |message: String| Error::File {
        path: path.to_path_buf(),
        message: format!("writing the dataset failed: {message}"),
    };
    crate::fs::write_atomic_with(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| failed(e.to_string()))?;
        let mut w = ndarray_npy::NpzWriter::new_compressed(file);
        w.add_array("imgs", &imgs).map_err(|e| failed(e.to_string()))?;
        w.add_array("latents_classes", &classes).map_err(|e| failed(e.to_string()))?;
        w.add_array("latents_values", &values).map_err(|e| failed(e.to_string()))?;
        w.finish().map_err(|e| failed(e.to_string()))?.sync_all().map_err(|e| failed(e.to_string()))
    })
    .map_err(|e| match e {
        // The folder could not be created or the rename failed: the same message as for the writing itself.
        Error::Io { source, .. } => failed(source.to_string()),
        e => e,
    })
}

/// Per-image IoU of the renderer against a real grid, rendered at the real grid's own factor values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IouReport {
    pub images: usize,
    pub mean: f64,
    pub min: f64,
    /// (shape name, images, mean IoU, min IoU)
    pub per_shape: Vec<(String, usize, f64, f64)>,
}

pub fn compare_with_real(real: &DSpritesGrid) -> Result<IouReport> {
    let renderer = DSpritesRenderer::new(real.factors().clone())?;
    let ious: Vec<(usize, f64)> = (0..real.len())
        .into_par_iter()
        .map(|i| {
            let mut mask = [0u8; SIZE * SIZE];
            renderer.mask_of(i, &mut mask)?;
            let (mut inter, mut union) = (0usize, 0usize);
            for (&a, &b) in mask.iter().zip(real.mask(i)) {
                inter += (a & b) as usize;
                union += (a | b) as usize;
            }
            let shape = real.factors().classes_of(i)?[0];
            Ok((shape, if union == 0 { 1.0 } else { inter as f64 / union as f64 }))
        })
        .collect::<Result<_>>()?;
    let stats = |it: &mut dyn Iterator<Item = f64>| {
        let (mut n, mut sum, mut min) = (0usize, 0.0, f64::INFINITY);
        for v in it {
            n += 1;
            sum += v;
            min = min.min(v);
        }
        (n, sum / n.max(1) as f64, min)
    };
    let (n, mean, min) = stats(&mut ious.iter().map(|p| p.1));
    let names = ["square", "ellipse", "heart"];
    let per_shape = (0..real.factors().factor(0).size())
        .map(|s| {
            let (k, m, lo) = stats(&mut ious.iter().filter(|p| p.0 == s).map(|p| p.1));
            let id = real.factors().factor(0).values[s] as usize;
            (names.get(id.wrapping_sub(1)).unwrap_or(&"?").to_string(), k, m, lo)
        })
        .collect();
    Ok(IouReport { images: n, mean, min, per_shape })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderer_geometry_matches_the_measured_sizes() {
        let mut m = [0u8; SIZE * SIZE];
        // Square at scale 1, orientation 0, pos 0: side 19.2 px -> 20 pixel centres at this sub-pixel phase... the
        // real file has 20x20 at pos 0 and 19x19 at pos 0.516.
        DSpritesRenderer::render_mask(1.0, 1.0, 0.0, 0.0, 0.0, &mut m);
        assert_eq!(m.iter().map(|&v| v as usize).sum::<usize>(), 400);
        DSpritesRenderer::render_mask(1.0, 1.0, 0.0, 16.0 / 31.0, 16.0 / 31.0, &mut m);
        assert_eq!(m.iter().map(|&v| v as usize).sum::<usize>(), 361);
        // Ellipse: wider than tall at orientation 0, taller than wide at a quarter turn.
        let extent = |m: &[u8]| {
            let cols = (0..SIZE).filter(|x| (0..SIZE).any(|y| m[y * SIZE + x] > 0)).count();
            let rows = (0..SIZE).filter(|y| (0..SIZE).any(|x| m[y * SIZE + x] > 0)).count();
            (cols, rows)
        };
        DSpritesRenderer::render_mask(2.0, 1.0, 0.0, 0.5, 0.5, &mut m);
        let (w, h) = extent(&m);
        assert!((25..=26).contains(&w) && (14..=15).contains(&h), "{w}x{h}");
        DSpritesRenderer::render_mask(2.0, 1.0, std::f64::consts::FRAC_PI_2, 0.5, 0.5, &mut m);
        let (w2, h2) = extent(&m);
        assert!((14..=15).contains(&w2) && (25..=26).contains(&h2), "{w2}x{h2}");
        // Heart: lobes up, point down.
        DSpritesRenderer::render_mask(3.0, 1.0, 0.0, 0.5, 0.5, &mut m);
        let top = (0..SIZE).find(|y| m[y * SIZE..(y + 1) * SIZE].iter().any(|&v| v > 0)).unwrap();
        let bottom = (0..SIZE).rev().find(|y| m[y * SIZE..(y + 1) * SIZE].iter().any(|&v| v > 0)).unwrap();
        let width = |y: usize| m[y * SIZE..(y + 1) * SIZE].iter().filter(|&&v| v > 0).count();
        assert!(width(top + 2) > 2 * width(bottom), "lobes must be wider than the tip");
    }

    #[test]
    fn renderer_rejects_foreign_grids() {
        let bad = FactorSpace::new(vec![Factor::categorical("a", 2)]).unwrap();
        assert!(DSpritesRenderer::new(bad).is_err());
        let mut f = full_factors().factors().to_vec();
        f[0] = Factor::new("shape", vec![1.0, 4.0]);
        assert!(DSpritesRenderer::new(FactorSpace::new(f).unwrap())
            .unwrap_err()
            .to_string()
            .contains("not a dSprites shape"));
    }

    #[test]
    fn grids_have_the_documented_sizes() {
        assert_eq!(full_factors().len(), 737_280);
        assert_eq!(subgrid_factors().sizes(), vec![3, 6, 10, 16, 16]);
        assert!((subgrid_factors().factor(2).values[1] - 4.0 * std::f64::consts::TAU / 39.0).abs() < 1e-12);
    }
}
