//! CelebA (aligned and cropped release): `img_align_celeba/000001.jpg …` (178 x 218 RGB JPEGs) and
//! `list_attr_celeba.txt` (count line, 40 attribute names, then `file v1 … v40` with values −1/1). CelebA has no
//! factor grid: it exposes its 40 binary attributes (as 0/1, what the TAD metric needs) instead.
//!
//! Preprocessing (the D2C crop used by DisDiff, which the paper's code inherits): a 128 x 128 crop at top 57,
//! left 25, then a resize to the output size (64 by default) with an antialiasing triangle filter.
//! CelebA's licence forbids redistribution: dydis never ships or copies it; tests use synthetic files.
use super::{decode_batch, ImageShape};
use crate::display::{image_grid, GridOptions, Image, Table};
use crate::error::{Error, Result};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

pub const WIDTH: u32 = 178;
pub const HEIGHT: u32 = 218;
/// The D2C crop: (left, top, size).
pub const CROP: (u32, u32, u32) = (25, 57, 128);

/// Whether `path` is a CelebA folder (it holds `list_attr_celeba.txt`); how `open_images` and `dydis data info`
/// tell it from a grid dataset.
pub fn is_folder(path: &Path) -> bool {
    path.is_dir() && path.join("list_attr_celeba.txt").is_file()
}

pub struct CelebA {
    images: PathBuf,
    files: Vec<String>,
    names: Vec<String>,
    /// `files.len() * names.len()` values in {0, 1}.
    attrs: Vec<u8>,
    size: usize,
}

impl CelebA {
    /// Open a CelebA folder (holding `img_align_celeba/` and `list_attr_celeba.txt`) with output images of
    /// `size` x `size` pixels.
    pub fn open(root: impl AsRef<Path>, size: usize) -> Result<Self> {
        let root = root.as_ref();
        if !(8..=512).contains(&size) {
            return Err(Error::config("size", format!("{size} is outside 8..=512 pixels")));
        }
        let images = root.join("img_align_celeba");
        if !images.is_dir() {
            return Err(Error::File { path: images, message: "missing: the folder of aligned 178x218 JPEGs".into() });
        }
        let list = root.join("list_attr_celeba.txt");
        let text = std::fs::read_to_string(&list).map_err(|e| Error::io(&list, e))?;
        let err = |line: usize, m: String| Error::File { path: list.clone(), message: format!("line {line}: {m}") };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
        let (ln, count) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
        let count: usize =
            count.trim().parse().map_err(|_| err(ln, format!("expected the image count, got '{}'", count.trim())))?;
        let (ln, header) = lines.next().ok_or_else(|| err(2, "missing the attribute names".into()))?;
        let names: Vec<String> = header.split_whitespace().map(str::to_string).collect();
        if names.is_empty() {
            return Err(err(ln, "no attribute names".into()));
        }
        let mut files = Vec::with_capacity(count);
        let mut attrs = Vec::with_capacity(count * names.len());
        for (ln, line) in lines {
            let mut parts = line.split_whitespace();
            let file = parts.next().expect("non-empty line");
            let vals: Vec<&str> = parts.collect();
            if vals.len() != names.len() {
                return Err(err(ln, format!("{} values for {} attributes", vals.len(), names.len())));
            }
            for v in vals {
                attrs.push(match v {
                    "1" => 1,
                    "-1" | "0" => 0,
                    _ => return Err(err(ln, format!("attribute value '{v}' is not -1 or 1"))),
                });
            }
            files.push(file.to_string());
        }
        if files.len() != count {
            return Err(err(1, format!("announces {count} images but lists {}", files.len())));
        }
        Ok(CelebA { images, files, names, attrs, size })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn attribute_names(&self) -> &[String] {
        &self.names
    }
    pub fn file(&self, index: usize) -> &str {
        &self.files[index]
    }
    /// The 40 attributes of image `index`, as 0/1.
    pub fn attributes(&self, index: usize) -> &[u8] {
        let k = self.names.len();
        &self.attrs[index * k..(index + 1) * k]
    }
    /// Attributes of `indices` as a `[B, A]` int64 tensor of 0/1.
    pub fn attribute_tensor(&self, indices: &[usize]) -> Result<Tensor> {
        let k = self.names.len();
        let mut v = Vec::with_capacity(indices.len() * k);
        for &i in indices {
            self.check(i)?;
            v.extend(self.attributes(i).iter().map(|&a| a as i64));
        }
        Ok(Tensor::from_slice(&v).view([indices.len() as i64, k as i64]))
    }
    pub fn image_shape(&self) -> ImageShape {
        ImageShape { channels: 3, height: self.size, width: self.size }
    }

    fn check(&self, index: usize) -> Result<()> {
        if index >= self.len() {
            return Err(Error::config("index", format!("{index} is out of range for CelebA ({} images)", self.len())));
        }
        Ok(())
    }

    /// Decode, crop and resize image `index` into `out` (CHW, [-1, 1]).
    pub fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        self.check(index)?;
        let path = self.images.join(&self.files[index]);
        let bad = |m: String| Error::File { path: path.clone(), message: m };
        let img = image::ImageReader::open(&path)
            .map_err(|e| Error::io(&path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(&path, e))?
            .decode()
            .map_err(|e| bad(format!("unreadable image: {e}")))?
            .to_rgb8();
        if img.dimensions() != (WIDTH, HEIGHT) {
            return Err(bad(format!(
                "{}x{} pixels; the aligned CelebA images are {WIDTH}x{HEIGHT}",
                img.width(),
                img.height()
            )));
        }
        let (left, top, side) = CROP;
        let crop = image::imageops::crop_imm(&img, left, top, side, side).to_image();
        let s = self.size as u32;
        let small =
            if s == side { crop } else { image::imageops::resize(&crop, s, s, image::imageops::FilterType::Triangle) };
        let hw = (s * s) as usize;
        for (i, p) in small.pixels().enumerate() {
            for c in 0..3 {
                out[c * hw + i] = p[c] as f32 / 127.5 - 1.0;
            }
        }
        Ok(())
    }

    /// Images `indices` as a `[B, 3, size, size]` tensor, decoded in parallel.
    pub fn batch(&self, indices: &[usize], device: Device) -> Result<Tensor> {
        for &i in indices {
            self.check(i)?;
        }
        decode_batch(indices.len(), self.image_shape(), device, |k, out| self.write_image(indices[k], out))
    }
}

impl CelebA {
    /// Per attribute: how many images have it and what fraction that is.
    pub fn attribute_table(&self) -> Table {
        let k = self.names.len();
        let mut t = Table::new(["#", "attribute", "images with it", "fraction"]).with_title(format!(
            "{} attributes over {} images",
            k,
            self.len()
        ));
        for (a, name) in self.names.iter().enumerate() {
            let n = self.attrs.iter().skip(a).step_by(k).filter(|&&v| v == 1).count();
            t.push_row([
                a.to_string(),
                name.clone(),
                n.to_string(),
                format!("{:.3}", n as f64 / self.len().max(1) as f64),
            ]);
        }
        t
    }

    fn attribute_index(&self, attribute: &str) -> Result<usize> {
        self.names.iter().position(|n| n == attribute).ok_or_else(|| {
            Error::config(
                "attribute",
                format!("'{attribute}' is not one of CelebA's attributes ({})", self.names.join(", ")),
            )
        })
    }

    fn grid(&self, indices: &[usize], ncol: usize, scale: usize) -> Result<Image> {
        image_grid(&self.batch(indices, Device::Cpu)?, GridOptions { ncol, scale, ..Default::default() })
    }

    /// `n` images drawn without replacement (seeded), 8 per row.
    pub fn sample_grid(&self, n: usize, seed: u64, scale: usize) -> Result<Image> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let idx: Vec<usize> =
            rand::seq::index::sample(&mut rng, self.len(), n.clamp(1, self.len().max(1))).into_iter().collect();
        Ok(self.grid(&idx, 8, scale)?.with_caption(format!("{} random images (seed {seed})", idx.len())))
    }

    /// CelebA's counterpart of a factor traversal: a row of `n` images that have `attribute` above a row of `n`
    /// that do not (seeded draws; fewer when fewer exist).
    pub fn attribute_grid(&self, attribute: &str, n: usize, seed: u64, scale: usize) -> Result<Image> {
        let a = self.attribute_index(attribute)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (with, without): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| self.attributes(i)[a] == 1);
        let n = n.max(1);
        let pick = |v: &[usize], rng: &mut rand_chacha::ChaCha8Rng| -> Vec<usize> {
            v.choose_multiple(rng, n).copied().collect()
        };
        let (w, wo) = (pick(&with, &mut rng), pick(&without, &mut rng));
        if w.is_empty() || wo.is_empty() {
            return Err(Error::config(
                "attribute",
                format!(
                    "'{attribute}': {} image(s) have it and {} do not; both rows need at least one",
                    with.len(),
                    without.len()
                ),
            ));
        }
        // Two rows of n: pad a short row by repeating its last image so that the rows line up.
        let row = |v: &[usize]| -> Vec<usize> { (0..n).map(|i| v[i.min(v.len() - 1)]).collect() };
        let idx: Vec<usize> = row(&w).into_iter().chain(row(&wo)).collect();
        Ok(self.grid(&idx, n, scale)?.with_caption(format!(
            "{attribute}: with it (top, {} of {}), without it (bottom, {} of {})",
            w.len(),
            with.len(),
            wo.len(),
            without.len()
        )))
    }

    /// How CelebA shows itself in a notebook: its attribute table beside a sample grid.
    pub fn view(&self) -> Result<super::DatasetView> {
        let s = self.size;
        let title = format!(
            "celeba: {} images, 3x{s}x{s}, {} binary attributes (no factor grid)",
            self.len(),
            self.names.len()
        );
        Ok(super::DatasetView::of(title, self.attribute_table(), self.sample_grid(16, 0, super::view_scale(s))?))
    }
}

/// Attributes of the synthetic folder written by [`write_synthetic`], each read off the scene's factors.
pub const SYNTHETIC_ATTRIBUTES: [&str; 5] = ["Large_Object", "Round_Object", "Warm_Wall", "Turned_Left", "Blue_Floor"];

/// Write a folder in the real CelebA layout (`img_align_celeba/NNNNNN.jpg`, 178 x 218, and
/// `list_attr_celeba.txt` with -1/1 values) whose content is synthetic: CelebA may not be redistributed, so demos
/// and tests use this. Each image is a Shapes3D-like scene (random factors, seeded) rendered into the D2C crop
/// window on a grey frame; its five attributes ([`SYNTHETIC_ATTRIBUTES`]) are read off the scene's factors.
/// The folder is written atomically ([`crate::fs::new_folder`]; an existing `root` is refused). Returns `root`.
pub fn write_synthetic(root: impl AsRef<Path>, n: usize, seed: u64) -> Result<PathBuf> {
    if n == 0 {
        return Err(Error::config("count", "a synthetic CelebA folder needs at least one image"));
    }
    crate::fs::new_folder(root.as_ref(), |root| fill_synthetic(root, n, seed))
}

fn fill_synthetic(root: &Path, n: usize, seed: u64) -> Result<()> {
    use rand::Rng;
    let imgs = root.join("img_align_celeba");
    std::fs::create_dir_all(&imgs).map_err(|e| Error::io(&imgs, e))?;
    let (left, top, side) = CROP;
    let renderer = super::Shapes3DRenderer::new(side as usize)?;
    let factors = super::GroundTruth::factors(&renderer).clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..factors.len())).collect();
    // Render and encode in parallel; each image's attribute line comes back in order.
    let lines: Vec<String> = picks
        .par_iter()
        .enumerate()
        .map(|(i, &index)| {
            let v = factors.values_of(index)?;
            let mut rgb = vec![0u8; (side * side * 3) as usize];
            renderer.render_rgb(&v, &mut rgb);
            let mut frame = image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([128, 128, 128]));
            for (k, p) in rgb.chunks_exact(3).enumerate() {
                let (x, y) = (k as u32 % side, k as u32 / side);
                frame.put_pixel(left + x, top + y, image::Rgb([p[0], p[1], p[2]]));
            }
            let file = format!("{:06}.jpg", i + 1);
            let path = imgs.join(&file);
            frame.save(&path).map_err(|e| Error::File { path: path.clone(), message: format!("writing: {e}") })?;
            let attrs =
                [v[3] >= 1.0, v[4] != 0.0, v[1] < 0.15 || v[1] > 0.85, v[5] < 0.0, (0.55..0.75).contains(&v[0])];
            let vals: Vec<&str> = attrs.iter().map(|&a| if a { " 1" } else { "-1" }).collect();
            Ok(format!("{file} {}\n", vals.join(" ")))
        })
        .collect::<Result<_>>()?;
    let list = format!("{n}\n{}\n{}", SYNTHETIC_ATTRIBUTES.join(" "), lines.concat());
    crate::fs::write_atomic(&root.join("list_attr_celeba.txt"), list.as_bytes())
}
