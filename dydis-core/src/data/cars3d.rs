//! Cars3D from the `nips2015-analogy-data` archive's `data/cars/` folder: `car_XXX_mesh.mat` files (MAT v5, plain
//! or compressed) whose variable `im` is uint8 (128, 128, 3, 24, 4) = (H, W, RGB, azimuth, elevation), and
//! `list.txt` naming the objects in order.
//!
//! Decisions (the released code used the unsorted directory listing, which is not reproducible): objects in
//! `list.txt` order, or sorted file names when there is no list; factor order elevation (4), azimuth (24), object,
//! so `index = elevation·(24·N) + azimuth·N + object` as in the reference implementation; images resized
//! 128 → 64 with a Lanczos filter (PIL's `thumbnail(LANCZOS)` in the released preprocessing).
use super::{Factor, FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub const SOURCE: usize = 128;
pub const SIZE: usize = 64;
pub const AZIMUTHS: usize = 24;
pub const ELEVATIONS: usize = 4;

pub struct Cars3D {
    dir: PathBuf,
    factors: FactorSpace,
    /// 64x64x3 HWC bytes per image, in index order.
    pixels: Vec<u8>,
}

/// The object names of a Cars3D folder: `list.txt` order, else the sorted `.mat` file stems.
fn object_names(dir: &Path) -> Result<Vec<String>> {
    let list = dir.join("list.txt");
    let names: Vec<String> = if list.exists() {
        std::fs::read_to_string(&list)
            .map_err(|e| Error::io(&list, e))?
            .lines()
            .map(|l| l.trim().trim_end_matches(".mat").to_string())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".mat")).map(str::to_string))
            .collect();
        v.sort();
        v
    };
    if names.is_empty() {
        return Err(Error::File { path: dir.to_path_buf(), message: "no Cars3D objects (.mat files or list.txt) found".into() });
    }
    Ok(names)
}

/// All 96 views of one object, each resized to 64x64 HWC bytes, in (elevation, azimuth) order.
fn read_object(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bad = |m: String| Error::File { path: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mat = matfile::MatFile::parse(std::io::BufReader::new(file)).map_err(|e| bad(format!("not a readable MAT v5 file: {e:?}")))?;
    let im = mat.find_by_name("im").ok_or_else(|| bad("no variable 'im'".into()))?;
    let want = [SOURCE, SOURCE, 3, AZIMUTHS, ELEVATIONS];
    if im.size().as_slice() != want {
        return Err(bad(format!("'im' has size {:?}, expected {want:?} (H, W, RGB, azimuth, elevation)", im.size())));
    }
    let data = match im.data() {
        matfile::NumericData::UInt8 { real, .. } => real,
        other => return Err(bad(format!("'im' is not uint8 ({})", numeric_kind(other)))),
    };
    // Column-major: element (h, w, c, a, e) is at h + S(w + S(c + 3(a + 24 e))).
    let s = SOURCE;
    let mut views = Vec::with_capacity(ELEVATIONS * AZIMUTHS);
    for e in 0..ELEVATIONS {
        for a in 0..AZIMUTHS {
            let mut img = image::RgbImage::new(s as u32, s as u32);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let (h, w) = (y as usize, x as usize);
                for c in 0..3 {
                    p[c] = data[h + s * (w + s * (c + 3 * (a + AZIMUTHS * e)))];
                }
            }
            let small = image::imageops::resize(&img, SIZE as u32, SIZE as u32, image::imageops::FilterType::Lanczos3);
            views.push(small.into_raw());
        }
    }
    Ok(views)
}

fn numeric_kind(d: &matfile::NumericData) -> &'static str {
    match d {
        matfile::NumericData::Double { .. } => "double",
        matfile::NumericData::Single { .. } => "single",
        _ => "another numeric class",
    }
}

impl Cars3D {
    /// Load every object of a Cars3D folder (`data/cars/` of the archive), decoding files in parallel.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let names = object_names(&dir)?;
        let objects: Vec<Vec<Vec<u8>>> = names.par_iter().map(|n| read_object(&dir.join(format!("{n}.mat")))).collect::<Result<_>>()?;
        let n = names.len();
        let factors = FactorSpace::new(vec![
            Factor::categorical("elevation", ELEVATIONS),
            Factor::linspace("azimuth", 0.0, 345.0, AZIMUTHS),
            Factor::categorical("object", n),
        ])?;
        let per = SIZE * SIZE * 3;
        let mut pixels = vec![0u8; factors.len() * per];
        for (o, views) in objects.iter().enumerate() {
            for (v, img) in views.iter().enumerate() {
                let (e, a) = (v / AZIMUTHS, v % AZIMUTHS);
                let idx = factors.index_of(&[e, a, o])?;
                pixels[idx * per..(idx + 1) * per].copy_from_slice(img);
            }
        }
        Ok(Cars3D { dir, factors, pixels })
    }
}

impl GroundTruth for Cars3D {
    fn name(&self) -> String {
        format!("cars3d ({} objects, {})", self.factors.factor(2).size(), self.dir.display())
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        ImageShape { channels: 3, height: SIZE, width: SIZE }
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let per = SIZE * SIZE * 3;
        let px = &self.pixels[index * per..(index + 1) * per];
        super::rgb_bytes_to_chw(px, out);
        Ok(())
    }
}
