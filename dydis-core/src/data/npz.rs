//! Reading `.npz` archives (numpy's zip of `.npy` members, plain or deflated) with errors that name the file,
//! the key and what is wrong. Object arrays (such as dSprites' pickled `metadata`) are never read.
use crate::error::{Error, Result};
use ndarray::{ArrayBase, Dimension, OwnedRepr};
use ndarray_npy::{NpzReader, ReadableElement};
use std::fs::File;
use std::path::{Path, PathBuf};

/// An open `.npz` archive.
pub struct Npz {
    path: PathBuf,
    reader: NpzReader<File>,
    names: Vec<String>,
}

impl Npz {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut reader = NpzReader::new(file)
            .map_err(|e| Error::File { path: path.clone(), message: format!("not a readable .npz archive: {e}") })?;
        let names = reader
            .names()
            .map_err(|e| Error::File { path: path.clone(), message: format!("unreadable .npz directory: {e}") })?;
        Ok(Npz { path, reader, names })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Array names (without the `.npy` suffix).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn err(&self, message: String) -> Error {
        Error::File { path: self.path.clone(), message }
    }

    /// Read array `key` with element type `T` and `D::NDIM` dimensions.
    pub fn array<T: ReadableElement, D: Dimension>(&mut self, key: &str) -> Result<ArrayBase<OwnedRepr<T>, D>> {
        if !self.names.iter().any(|n| n == key) {
            return Err(self.err(format!("missing key '{key}' (keys: {})", self.names.join(", "))));
        }
        let expected = format!(
            "{}-d array of {}",
            D::NDIM.map(|n| n.to_string()).unwrap_or("n".into()),
            std::any::type_name::<T>()
        );
        self.reader.by_name(key).map_err(|e| self.err(format!("key '{key}': cannot read it as a {expected}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3, Ix2, Ix3};

    #[test]
    fn reads_arrays_and_names_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("dydis-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npz");
        {
            let mut w = ndarray_npy::NpzWriter::new_compressed(File::create(&path).unwrap());
            w.add_array("imgs", &Array3::<u8>::from_elem((2, 3, 4), 1)).unwrap();
            w.add_array("labels", &Array2::<f64>::zeros((2, 6))).unwrap();
            w.finish().unwrap();
        }
        let mut npz = Npz::open(&path).unwrap();
        assert_eq!(npz.names(), &["imgs".to_string(), "labels".to_string()]);
        let imgs: Array3<u8> = npz.array::<u8, Ix3>("imgs").unwrap();
        assert_eq!(imgs.shape(), &[2, 3, 4]);
        let e = npz.array::<u8, Ix3>("images").unwrap_err().to_string();
        assert!(e.contains("missing key 'images'") && e.contains("imgs, labels"), "{e}");
        let e = npz.array::<u8, Ix2>("labels").unwrap_err().to_string();
        assert!(e.contains("key 'labels'") && e.contains("a.npz"), "{e}");
        std::fs::write(dir.join("bad.npz"), b"not a zip").unwrap();
        let e = Npz::open(dir.join("bad.npz")).err().unwrap().to_string();
        assert!(e.contains("not a readable .npz"), "{e}");
        assert!(Npz::open(dir.join("none.npz")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
