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
            .map(|(i, &(name, size))| Factor::categorical(name, if i == 0 { colors } else if i == 1 { shapes } else { size }))
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
    let entry = zip.by_name(&member).map_err(|_| err(format!("missing key '{key}' (members: {})", names.join(", "))))?;
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

/// MPI3D-toy (or any `.npz` whose `images` is an uncompressed N x H x W x 3 uint8 grid in C order).
pub struct Mpi3dToy {
    path: PathBuf,
    factors: FactorSpace,
    shape: ImageShape,
    map: memmap2::Mmap,
    offset: usize,
}

impl Mpi3dToy {
    /// Open the real file; the image count selects the release (1,036,800 current, 460,800 from 2019).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (_, shape) = locate_stored_array(path, "images")?;
        let n = shape.first().copied().unwrap_or(0);
        let factors = factors_for(n).ok_or_else(|| Error::File {
            path: path.to_path_buf(),
            message: format!("{n} images: MPI3D-toy has 1,036,800 (or 460,800 in the 2019 release)"),
        })?;
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
            return Err(err(format!("{} images, but the factor grid {:?} has {} combinations", shape[0], factors.sizes(), factors.len())));
        }
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: read-only mapping of a dataset file that dydis never writes.
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
        format!("mpi3d-toy ({})", self.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
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
