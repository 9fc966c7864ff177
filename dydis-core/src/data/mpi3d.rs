//! MPI3D-toy: `mpi3d_toy.npz` with one key, `images` (1,036,800 x 64 x 64 x 3 uint8, written by `np.savez`,
//! uncompressed, about 12.7 GB). Labels are implied by position (C order over the factor sizes). The pixels are
//! memory-mapped straight out of the archive, so the file never has to fit in memory.
use super::{Factor, FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Factor names and sizes of the current release (1,036,800 images).
pub const FACTORS: [(&str, usize); 7] = [
    ("object_color", 6),
    ("object_shape", 6),
    ("object_size", 2),
    ("camera_height", 3),
    ("background_color", 3),
    ("horizontal_axis", 40),
    ("vertical_axis", 40),
];

/// The factor grid of the current release, or of the 2019 challenge release (4 colours x 4 shapes, 460,800).
pub fn factors_for(images: usize) -> Option<FactorSpace> {
    let make = |colors: usize, shapes: usize| {
        let f = FACTORS
            .iter()
            .enumerate()
            .map(|(i, &(name, size))| {
                Factor::categorical(
                    name,
                    if i == 0 {
                        colors
                    } else if i == 1 {
                        shapes
                    } else {
                        size
                    },
                )
            })
            .collect();
        FactorSpace::new(f).expect("valid grid")
    };
    match images {
        1_036_800 => Some(make(6, 6)),
        460_800 => Some(make(4, 4)),
        _ => None,
    }
}

/// The pixels of an `.npy` member stored uncompressed inside an `.npz`: where they start and their shape.
fn locate_stored_array(path: &Path, key: &str) -> Result<(u64, Vec<usize>)> {
    let err = |m: String| Error::File { path: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| err(format!("not a readable .npz archive: {e}")))?;
    let member = format!("{key}.npy");
    let names: Vec<String> = (0..zip.len()).filter_map(|i| zip.name_for_index(i).map(str::to_string)).collect();
    let entry =
        zip.by_name(&member).map_err(|_| err(format!("missing key '{key}' (members: {})", names.join(", "))))?;
    if entry.compression() != zip::CompressionMethod::Stored {
        return Err(err(format!(
            "'{key}' is compressed ({:?}); memory-mapping needs an uncompressed archive as written by np.savez \
             (not np.savez_compressed)",
            entry.compression()
        )));
    }
    let start = entry.data_start();
    let size = entry.size();
    drop(entry);
    // npy header: magic, version, header length, then a Python dict literal.
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    let mut pre = [0u8; 12];
    f.read_exact(&mut pre).map_err(|e| err(format!("'{key}': truncated npy header: {e}")))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(err(format!("'{key}' is not an .npy array (bad magic)")));
    }
    let (hlen, pre_len) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize, 12),
        v => return Err(err(format!("'{key}': unsupported npy version {v}"))),
    };
    f.seek(SeekFrom::Start(start + pre_len as u64)).map_err(|e| Error::io(path, e))?;
    let mut header = vec![0u8; hlen];
    f.read_exact(&mut header).map_err(|e| err(format!("'{key}': truncated npy header: {e}")))?;
    let header = String::from_utf8_lossy(&header);
    let field = |name: &str| -> Option<String> {
        let at = header.find(&format!("'{name}'"))?;
        let rest = header[at + name.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
        let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find(',')? };
        Some(rest[..end].trim().to_string())
    };
    let descr = field("descr").unwrap_or_default();
    if !["'|u1'", "'u1'", "'<u1'"].contains(&descr.as_str()) {
        return Err(err(format!("'{key}' has dtype {descr}, expected uint8 ('|u1')")));
    }
    if field("fortran_order").as_deref() != Some("False") {
        return Err(err(format!("'{key}' is in Fortran order; expected C order")));
    }
    let shape_text = field("shape").ok_or_else(|| err(format!("'{key}': no shape in the npy header")))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().map_err(|_| err(format!("'{key}': bad shape {shape_text}"))))
        .collect::<Result<_>>()?;
    let data_start = start + (pre_len + hlen) as u64;
    let expected: u64 = shape.iter().map(|&d| d as u64).product::<u64>() + (pre_len + hlen) as u64;
    if size < expected {
        return Err(err(format!("'{key}' holds {size} bytes, but its header promises {expected} (truncated file?)")));
    }
    Ok((data_start, shape))
}

/// The factor grid stored by [`save_npz`], if the archive has one.
fn stored_factors(path: &Path) -> Result<Option<FactorSpace>> {
    let mut npz = super::npz::Npz::open(path)?;
    if !npz.names().iter().any(|n| n == "factor_sizes") {
        return Ok(None);
    }
    let bad = |m: String| Error::File { path: path.to_path_buf(), message: m };
    let sizes = npz.array::<i64, ndarray::Ix1>("factor_sizes")?;
    let values = npz.array::<f64, ndarray::Ix1>("factor_values")?;
    let names = npz.array::<u8, ndarray::Ix1>("factor_names")?;
    let names = String::from_utf8(names.to_vec()).map_err(|_| bad("'factor_names' is not UTF-8".into()))?;
    let names: Vec<&str> = names.split(',').collect();
    let inconsistent = || {
        bad(format!(
            "inconsistent stored grid: {} names, sizes {:?}, {} values",
            names.len(),
            sizes.to_vec(),
            values.len()
        ))
    };
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| usize::try_from(s).ok().filter(|&s| s >= 1))
        .collect::<Option<_>>()
        .ok_or_else(inconsistent)?;
    let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)).ok_or_else(inconsistent)?;
    if names.len() != sizes.len() || total != values.len() {
        return Err(inconsistent());
    }
    let mut at = 0;
    let factors = names
        .iter()
        .zip(&sizes)
        .map(|(name, &size)| {
            let v = values.slice(ndarray::s![at..at + size]).to_vec();
            at += size;
            Factor::new(name.to_string(), v)
        })
        .collect();
    FactorSpace::new(factors).map(Some).map_err(|e| bad(format!("the stored grid is not valid: {e}")))
}

/// MPI3D-toy (or any `.npz` whose `images` is an uncompressed N x H x W x 3 uint8 grid in C order).
pub struct Mpi3dToy {
    path: PathBuf,
    factors: FactorSpace,
    shape: ImageShape,
    map: memmap2::Mmap,
    offset: usize,
}

impl Mpi3dToy {
    /// Open the real file (the image count selects the release: 1,036,800 current, 460,800 from 2019), or a file
    /// written by [`save_npz`] (its grid is stored beside the images).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let factors = match stored_factors(path)? {
            Some(f) => f,
            None => {
                let (_, shape) = locate_stored_array(path, "images")?;
                let n = shape.first().copied().unwrap_or(0);
                factors_for(n).ok_or_else(|| Error::File {
                    path: path.to_path_buf(),
                    message: format!("{n} images: MPI3D-toy has 1,036,800 (or 460,800 in the 2019 release), and the file stores no factor grid"),
                })?
            }
        };
        Self::open_with_factors(path, factors)
    }

    /// Open with an explicit factor grid (for other MPI3D variants and test fixtures).
    pub fn open_with_factors(path: impl AsRef<Path>, factors: FactorSpace) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (start, shape) = locate_stored_array(&path, "images")?;
        let err = |m: String| Error::File { path: path.clone(), message: m };
        if shape.len() != 4 || shape[3] != 3 {
            return Err(err(format!("'images' has shape {shape:?}, expected (N, H, W, 3)")));
        }
        if shape[0] != factors.len() {
            return Err(err(format!(
                "{} images, but the factor grid {:?} has {} combinations",
                shape[0],
                factors.sizes(),
                factors.len()
            )));
        }
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: read-only mapping. dydis never modifies an existing file in place: its writers (`save_npz`) write a
        // temporary file and rename it over the destination, which leaves a mapped inode untouched.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let img_shape = ImageShape { channels: 3, height: shape[1], width: shape[2] };
        let end = start as usize + shape[0] * img_shape.numel();
        if map.len() < end {
            return Err(err(format!("the file ends at byte {}, before the images do ({end})", map.len())));
        }
        Ok(Mpi3dToy { path, factors, shape: img_shape, map, offset: start as usize })
    }
}

impl GroundTruth for Mpi3dToy {
    fn name(&self) -> String {
        let file = self.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default();
        let release = self.factors.names().iter().zip(FACTORS).all(|(a, (b, _))| *a == b)
            && self.factors.num_factors() == FACTORS.len();
        if release {
            format!("mpi3d-toy ({file})")
        } else {
            format!("npz images ({file})")
        }
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn image_shape(&self) -> ImageShape {
        self.shape
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let n = self.shape.numel();
        let start = self.offset + index * n;
        let px = &self.map[start..start + n]; // HWC
        super::rgb_bytes_to_chw(px, out);
        Ok(())
    }
}

/// An `.npy` (format 1.0) header for a C-order array of numpy type `descr` and `shape`, padded so the data
/// starts on a 64-byte boundary as numpy writes it.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Write any 3-channel ground-truth grid in MPI3D-toy's layout: an uncompressed `.npz` whose member `images` is
/// `N x H x W x 3` uint8 in index order (what `np.savez(path, images=...)` writes, zip64 so that grids past 4 GB
/// work), plus the grid itself so the file opens again on its own: `factor_sizes` (int64), `factor_values`
/// (float64, each factor's values in turn) and `factor_names` (uint8, UTF-8, comma-separated). The real MPI3D
/// files have `images` only; their grid follows from the image count. Images are decoded in parallel blocks and
/// streamed to disk, so memory stays bounded; the file is written under a temporary name and renamed into place,
/// so a failed write leaves nothing behind.
pub fn save_npz(ds: &dyn GroundTruth, path: &Path) -> Result<()> {
    use std::io::Write;
    let s = ds.image_shape();
    if s.channels != 3 {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: format!(
                "not written: {} has {} channels; the MPI3D layout holds RGB images",
                ds.name(),
                s.channels
            ),
        });
    }
    if let Some(name) = ds.factors().names().iter().find(|n| n.contains(',')) {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: format!(
                "not written: factor name '{name}' contains a comma (the stored names are comma-separated)"
            ),
        });
    }
    let n = ds.len();
    crate::fs::write_atomic_with(path, |tmp| {
        // Errors name the destination (the temporary file is gone by the time they are read).
        let io = |e: std::io::Error| Error::File { path: path.to_path_buf(), message: format!("writing: {e}") };
        let zerr = |e: zip::result::ZipError| Error::File {
            path: path.to_path_buf(),
            message: format!("writing the archive: {e}"),
        };
        let file = std::fs::File::create(tmp).map_err(io)?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        zip.start_file("images.npy", opts).map_err(zerr)?;
        zip.write_all(&npy_header("|u1", &[n, s.height, s.width, 3])).map_err(io)?;
        let block = 2048;
        for start in (0..n).step_by(block) {
            let idx: Vec<usize> = (start..(start + block).min(n)).collect();
            zip.write_all(&super::hwc_bytes(ds, &idx)?).map_err(io)?;
        }
        let f = ds.factors().factors();
        let sizes: Vec<u8> = f.iter().flat_map(|f| (f.size() as i64).to_le_bytes()).collect();
        let values: Vec<u8> = f.iter().flat_map(|f| f.values.iter().flat_map(|v| v.to_le_bytes())).collect();
        let names = ds.factors().names().join(",").into_bytes();
        for (member, descr, bytes) in
            [("factor_sizes", "<i8", &sizes), ("factor_values", "<f8", &values), ("factor_names", "|u1", &names)]
        {
            let width = if descr == "|u1" { 1 } else { 8 };
            zip.start_file(format!("{member}.npy"), opts).map_err(zerr)?;
            zip.write_all(&npy_header(descr, &[bytes.len() / width])).map_err(io)?;
            zip.write_all(bytes).map_err(io)?;
        }
        let file = zip.finish().map_err(zerr)?.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    })
}
