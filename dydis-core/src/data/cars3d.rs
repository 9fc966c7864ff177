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
        return Err(Error::File {
            path: dir.to_path_buf(),
            message: "no Cars3D objects (.mat files or list.txt) found".into(),
        });
    }
    Ok(names)
}

/// All 96 views of one object, each resized to 64x64 HWC bytes, in (elevation, azimuth) order.
fn read_object(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bad = |m: String| Error::File { path: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mat = matfile::MatFile::parse(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a readable MAT v5 file: {e:?}")))?;
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
        let objects: Vec<Vec<Vec<u8>>> =
            names.par_iter().map(|n| read_object(&dir.join(format!("{n}.mat")))).collect::<Result<_>>()?;
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

/// Write one object's views as a MAT v5 file (uncompressed) holding the uint8 variable `im` of size
/// (128, 128, 3, 24, 4) in MATLAB's column-major order, the layout of the archive's `car_XXX_mesh.mat` files.
/// Written under a temporary name and renamed into place.
pub fn save_mat(path: &Path, im: &[u8]) -> Result<()> {
    let dims = [SOURCE, SOURCE, 3, AZIMUTHS, ELEVATIONS];
    if im.len() != dims.iter().product::<usize>() {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: format!(
                "not written: {} bytes given; a Cars3D object holds {dims:?} = {} bytes",
                im.len(),
                dims.iter().product::<usize>()
            ),
        });
    }
    write_mat_u8(path, "im", &dims, im)
}

/// Write a MAT v5 file (uncompressed, little-endian) holding one uint8 array `name` of size `dims`, whose `data` is
/// in MATLAB's column-major order; atomically. [`save_mat`] checks Cars3D's size and calls this; tests use it
/// directly for files of the wrong size.
pub fn write_mat_u8(path: &Path, name: &str, dims: &[usize], data: &[u8]) -> Result<()> {
    // A data element: type, byte count, bytes, padding to 8 bytes.
    fn element(out: &mut Vec<u8>, ty: u32, bytes: &[u8]) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    const MI_INT8: u32 = 1;
    const MI_UINT8: u32 = 2;
    const MI_INT32: u32 = 5;
    const MI_UINT32: u32 = 6;
    const MI_MATRIX: u32 = 14;
    const MX_UINT8_CLASS: u32 = 9;
    let mut body = Vec::with_capacity(data.len() + 128);
    element(&mut body, MI_UINT32, &[MX_UINT8_CLASS.to_le_bytes(), 0u32.to_le_bytes()].concat());
    element(&mut body, MI_INT32, &dims.iter().flat_map(|&d| (d as i32).to_le_bytes()).collect::<Vec<u8>>());
    element(&mut body, MI_INT8, name.as_bytes());
    element(&mut body, MI_UINT8, data);
    let mut file = format!("{:<116}", "MATLAB 5.0 MAT-file, written by dydis").into_bytes();
    file.extend_from_slice(&[0u8; 8]); // no subsystem data
    file.extend_from_slice(&0x0100u16.to_le_bytes());
    file.extend_from_slice(b"IM"); // little-endian
    file.extend_from_slice(&MI_MATRIX.to_le_bytes());
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&body);
    crate::fs::write_atomic(path, &file)
}

/// Write a folder in the Cars3D layout (`car_NNN_mesh.mat` files and `list.txt`) with synthetic content, for
/// demos, tests and the loader benchmark (the real archive is a download): each object is a Shapes3D-like scene
/// with seeded hues, scale and shape, seen from 24 azimuths (the object turns in 15° steps) and 4 elevations
/// (the camera rises). Objects render in parallel. The folder is written atomically ([`crate::fs::new_folder`]; an
/// existing `dir` is refused). Returns `dir`.
pub fn write_synthetic(dir: impl AsRef<Path>, objects: usize, seed: u64) -> Result<PathBuf> {
    if objects == 0 {
        return Err(Error::config("count", "a synthetic Cars3D folder needs at least one object"));
    }
    crate::fs::new_folder(dir.as_ref(), |dir| fill_synthetic(dir, objects, seed))
}

fn fill_synthetic(dir: &Path, objects: usize, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let renderers: Vec<super::Shapes3DRenderer> = (0..ELEVATIONS)
        .map(|e| {
            let mut r = super::Shapes3DRenderer::new(SOURCE)?;
            r.params.cam_height += 0.35 * e as f64;
            Ok(r)
        })
        .collect::<Result<_>>()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let scenes: Vec<[f64; 5]> = (0..objects)
        .map(|_| {
            [
                rng.random_range(0.0..0.9),
                rng.random_range(0.0..0.9),
                rng.random_range(0.0..0.9),
                rng.random_range(0.75..1.25),
                rng.random_range(0..4) as f64,
            ]
        })
        .collect();
    let names: Vec<String> = (0..objects).map(|k| format!("car_{:03}_mesh", k + 1)).collect();
    let s = SOURCE;
    scenes.par_iter().zip(&names).try_for_each(|(scene, name)| {
        let mut im = vec![0u8; s * s * 3 * AZIMUTHS * ELEVATIONS];
        let mut rgb = vec![0u8; s * s * 3];
        for (e, r) in renderers.iter().enumerate() {
            for a in 0..AZIMUTHS {
                let v = [scene[0], scene[1], scene[2], scene[3], scene[4], 15.0 * a as f64];
                r.render_rgb(&v, &mut rgb);
                for (k, p) in rgb.chunks_exact(3).enumerate() {
                    let (h, w) = (k / s, k % s);
                    for c in 0..3 {
                        im[h + s * (w + s * (c + 3 * (a + AZIMUTHS * e)))] = p[c];
                    }
                }
            }
        }
        save_mat(&dir.join(format!("{name}.mat")), &im)
    })?;
    crate::fs::write_atomic(&dir.join("list.txt"), (names.join("\n") + "\n").as_bytes())
}
