//! Rendered datasets cached on disk and memory-mapped: render once (in parallel), reuse in every later run.
//!
//! Layout under `<data dir>/cache/`: `<key>.u8` holds every image as 8-bit CHW in index order, `<key>.json` the
//! description (name, fingerprint, shape, count). The key is a hash of the dataset's fingerprint, so any change
//! to the renderer's constants or grid makes a new entry. Both files are written to temporary names and renamed,
//! the description last: an entry is complete exactly when its description exists and the sizes agree.
use super::{FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};
use rayon::prelude::*;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FORMAT: &str = "dydis-cache-v1";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Meta {
    format: String,
    name: String,
    fingerprint: String,
    images: usize,
    channels: usize,
    height: usize,
    width: usize,
}

/// A dataset served from a memory-mapped cache file; factors are those of the dataset that was rendered.
pub struct CachedGrid {
    name: String,
    factors: FactorSpace,
    shape: ImageShape,
    map: memmap2::Mmap,
    path: PathBuf,
}

impl CachedGrid {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl GroundTruth for CachedGrid {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        self.shape
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let n = self.shape.numel();
        let bytes = self.map.get(index * n..(index + 1) * n).ok_or_else(|| Error::File {
            path: self.path.clone(),
            message: format!("image {index} is beyond the end of the cache file"),
        })?;
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = b as f32 / 127.5 - 1.0;
        }
        Ok(())
    }
}

fn key_of(ds: &dyn GroundTruth) -> String {
    let digest = sha2::Sha256::digest(format!("{FORMAT}\n{}", ds.fingerprint()).as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The cache entry of `ds` in `dir`, rendering it first if it is missing or incomplete. `progress` is called
/// with the number of images rendered so far.
pub fn cached_in(ds: &dyn GroundTruth, dir: &Path, progress: &mut dyn FnMut(usize)) -> Result<CachedGrid> {
    let key = key_of(ds);
    let stem = format!("{}-{key}", ds.name().split_whitespace().next().unwrap_or("data"));
    let (data_path, meta_path) = (dir.join(format!("{stem}.u8")), dir.join(format!("{stem}.json")));
    let shape = ds.image_shape();
    let meta = Meta {
        format: FORMAT.into(),
        name: ds.name(),
        fingerprint: ds.fingerprint(),
        images: ds.len(),
        channels: shape.channels,
        height: shape.height,
        width: shape.width,
    };
    let expected_len = (meta.images * shape.numel()) as u64;
    let complete = std::fs::read_to_string(&meta_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Meta>(&t).ok())
        .is_some_and(|m| m == meta)
        && std::fs::metadata(&data_path).is_ok_and(|m| m.len() == expected_len);
    if !complete {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_file(&meta_path);
        crate::fs::write_atomic_with(&data_path, |tmp| render_to(ds, tmp, progress))?;
        let text = serde_json::to_string_pretty(&meta).expect("json");
        crate::fs::write_atomic(&meta_path, text.as_bytes())?;
    }
    let file = std::fs::File::open(&data_path).map_err(|e| Error::io(&data_path, e))?;
    // SAFETY: the file is only ever replaced by rename, never modified in place, so the mapping stays valid.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&data_path, e))?;
    if map.len() as u64 != expected_len {
        return Err(Error::File { path: data_path, message: format!("{} bytes, expected {expected_len}", map.len()) });
    }
    Ok(CachedGrid { name: ds.name(), factors: ds.factors().clone(), shape, map, path: data_path })
}

fn render_to(ds: &dyn GroundTruth, path: &Path, progress: &mut dyn FnMut(usize)) -> Result<()> {
    let n = ds.image_shape().numel();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| Error::io(path, e))?);
    let chunk = 2048;
    let mut done = 0;
    while done < ds.len() {
        let end = (done + chunk).min(ds.len());
        let mut bytes = vec![0u8; (end - done) * n];
        bytes.par_chunks_mut(n).enumerate().try_for_each(|(k, out)| {
            let mut img = vec![0f32; n];
            ds.write_image(done + k, &mut img)?;
            for (o, v) in out.iter_mut().zip(img) {
                *o = ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
            }
            Ok::<_, Error>(())
        })?;
        file.write_all(&bytes).map_err(|e| Error::io(path, e))?;
        done = end;
        progress(done);
    }
    let file = file.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// `ds` served from the cache in the data directory (rendered on first use).
pub fn cached(ds: Arc<dyn GroundTruth>) -> Result<Arc<dyn GroundTruth>> {
    Ok(Arc::new(cached_in(ds.as_ref(), &crate::paths::data_dir().join("cache"), &mut |_| {})?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{batch, Shapes3DRenderer};

    #[test]
    fn renders_once_then_reuses_and_survives_damage() {
        let dir = std::env::temp_dir().join(format!("dydis-cache-{}", std::process::id()));
        let ds = Shapes3DRenderer::subsampled([2, 2, 1, 2, 2, 3], 16).unwrap();
        let mut calls = 0;
        let c = cached_in(&ds, &dir, &mut |_| calls += 1).unwrap();
        assert_eq!(calls, 1);
        assert_eq!(c.len(), 48);
        let idx: Vec<usize> = (0..48).collect();
        let direct = batch(&ds, &idx, tch::Device::Cpu).unwrap();
        let from_cache = batch(&c, &idx, tch::Device::Cpu).unwrap();
        // 8-bit storage: equal to the rendered values up to rounding (the renderer itself is 8-bit).
        assert!(direct.allclose(&from_cache, 0.0, 1e-5, false));
        drop(c);
        let mut again = 0;
        cached_in(&ds, &dir, &mut |_| again += 1).unwrap();
        assert_eq!(again, 0, "a complete entry is reused");
        // A truncated data file is detected and re-rendered.
        let data = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().unwrap() == "u8")
            .unwrap();
        std::fs::write(&data, b"short").unwrap();
        let mut redo = 0;
        let c = cached_in(&ds, &dir, &mut |_| redo += 1).unwrap();
        assert_eq!(redo, 1);
        assert!(batch(&c, &idx, tch::Device::Cpu).unwrap().allclose(&direct, 0.0, 1e-5, false));
        // Other constants, other entry.
        let mut other = ds.clone();
        other.params.ambient += 0.1;
        assert_ne!(key_of(&ds), key_of(&other));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temporary files left");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
