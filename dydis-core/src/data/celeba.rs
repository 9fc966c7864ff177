//! CelebA (aligned and cropped release): `img_align_celeba/000001.jpg …` (178 x 218 RGB JPEGs) and
//! `list_attr_celeba.txt` (count line, 40 attribute names, then `file v1 … v40` with values −1/1). CelebA has no
//! factor grid: it exposes its 40 binary attributes (as 0/1, what the TAD metric needs) instead.
//!
//! Preprocessing (the D2C crop used by DisDiff, which the paper's code inherits): a 128 x 128 crop at top 57,
//! left 25, then a resize to the output size (64 by default) with an antialiasing triangle filter.
//! CelebA's licence forbids redistribution: dydis never ships or copies it; tests use synthetic files.
use super::{decode_batch, ImageShape};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

pub const WIDTH: u32 = 178;
pub const HEIGHT: u32 = 218;
/// The D2C crop: (left, top, size).
pub const CROP: (u32, u32, u32) = (25, 57, 128);

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
        let count: usize = count.trim().parse().map_err(|_| err(ln, format!("expected the image count, got '{}'", count.trim())))?;
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
            return Err(bad(format!("{}x{} pixels; the aligned CelebA images are {WIDTH}x{HEIGHT}", img.width(), img.height())));
        }
        let (left, top, side) = CROP;
        let crop = image::imageops::crop_imm(&img, left, top, side, side).to_image();
        let s = self.size as u32;
        let small = if s == side { crop } else { image::imageops::resize(&crop, s, s, image::imageops::FilterType::Triangle) };
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
