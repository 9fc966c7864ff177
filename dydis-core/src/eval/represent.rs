//! Representations: `[n, N, D]` of every image of a ground-truth grid, extracted from a model of any family in
//! batches on any device, saved and loaded as `.npz` with the released code's key `latents` (its `dis_repre`
//! files load here and ours load there).
use crate::data::npz::Npz;
use crate::data::ImageSource;
use crate::method::Model;
use crate::{Error, Result};
use ndarray::Array3;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Representations `[n, N, D]` of images `indices` of a source (the model's [`Model::represent`], in batches, on
/// the CPU). `aligned`: the form the family's released evaluation scores (the LDM: units after DyGA alignment).
pub fn extract(
    model: &dyn Model,
    source: &dyn ImageSource,
    indices: &[usize],
    batch: usize,
    aligned: bool,
) -> Result<Tensor> {
    if indices.is_empty() {
        return Err(Error::data("representation", "no images to extract"));
    }
    let mut parts = Vec::new();
    for chunk in indices.chunks(batch.max(1)) {
        let x = source.images(chunk, model.device())?;
        parts.push(model.represent(&x, aligned)?.to_device(Device::Cpu));
    }
    Ok(Tensor::cat(&parts, 0))
}

/// Write `[n, N, D]` features as `latents` (float32) in a compressed `.npz`, atomically.
pub fn save_npz(path: &Path, latents: &Tensor) -> Result<()> {
    let (n, u, d) = latents
        .size3()
        .map_err(|_| Error::Shape { got: latents.size(), expected: "[n, N, D] unit features".into() })?;
    let v: Vec<f32> =
        Vec::try_from(latents.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1)).map_err(Error::Torch)?;
    let a = Array3::from_shape_vec((n as usize, u as usize, d as usize), v)
        .map_err(|e| Error::config("latents", e.to_string()))?;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = ndarray_npy::NpzWriter::new_compressed(&mut buf);
        w.add_array("latents", &a).map_err(|e| Error::failed("writing the representation", e.to_string()))?;
        w.finish().map_err(|e| Error::failed("writing the representation", e.to_string()))?;
    }
    crate::fs::write_atomic(path, buf.get_ref())
}

/// Read `latents` (`[n, N, D]`, float32 or float64) from an `.npz`.
pub fn load_npz(path: &Path) -> Result<Tensor> {
    let mut z = Npz::open(path)?;
    if !z.names().iter().any(|k| k == "latents") {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: format!("no key 'latents' (keys: {})", z.names().join(", ")),
        });
    }
    let t = match z.array::<f32, ndarray::Ix3>("latents") {
        Ok(a) => Tensor::from_slice(a.as_standard_layout().as_slice().unwrap()).view([
            a.shape()[0] as i64,
            a.shape()[1] as i64,
            a.shape()[2] as i64,
        ]),
        Err(_) => {
            let a = z.array::<f64, ndarray::Ix3>("latents").map_err(|e| Error::File {
                path: path.to_path_buf(),
                message: format!("'latents' is not a 3-D float array: {e}"),
            })?;
            Tensor::from_slice(a.as_standard_layout().as_slice().unwrap())
                .view([a.shape()[0] as i64, a.shape()[1] as i64, a.shape()[2] as i64])
                .to_kind(Kind::Float)
        }
    };
    Ok(t)
}
