//! Datasets by name: what `dydis data` and notebooks open with one string.
//!
//! A spec is a catalogue name (see [`catalogue`]) or a path to a file in a supported real format.
use super::dsprites::{self, DSpritesGrid, DSpritesRenderer};
use super::shapes3d::Shapes3DRenderer;
use super::GroundTruth;
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// One entry of the catalogue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether it can be opened here without a download.
    pub available: bool,
}

/// Every dataset dydis can open by name.
pub fn catalogue() -> Vec<Entry> {
    vec![
        Entry {
            name: "dsprites-like",
            description:
                "procedural dSprites, full grid 3x6x40x32x32 (737,280 binary 64x64 images), rendered on the fly",
            available: true,
        },
        Entry {
            name: "dsprites-like:subgrid",
            description: "procedural dSprites on the sub-grid 3x6x10x16x16 (46,080 images) of the real reference file",
            available: true,
        },
        Entry {
            name: "shapes3d-like",
            description: "procedural Shapes3D, full grid 10x10x10x8x4x15 (480,000 RGB images) at 64 px; \
                          `shapes3d-like[:AxBxCxDxExF][@RES]` sub-samples factors and sets the resolution",
            available: true,
        },
        Entry {
            name: "shapes3d-like:quick",
            description: "procedural Shapes3D, 5x5x5x4x4x5 (10,000 images) at 32 px, for quick CPU runs",
            available: true,
        },
        Entry {
            name: "dsprites-real:subgrid",
            description: "the real 46,080-image dSprites sub-grid from the reference data folder ($DYDIS_REFERENCE_DATA; Apache-2.0)",
            available: DSpritesGrid::reference_subgrid().is_some(),
        },
    ]
}

/// `data:<path>` names a file or folder under the data directory (`$DYDIS_DATA`); other specs are returned as given.
pub fn resolve_spec(spec: &str) -> String {
    match spec.strip_prefix("data:") {
        Some(rel) => crate::paths::data_dir().join(rel).display().to_string(),
        None => spec.to_string(),
    }
}

/// Open what training reads images from: a CelebA folder (images resized to `size`), or any ground-truth dataset
/// (rendered or converted once into the on-disk cache).
pub fn open_images(spec: &str, size: usize) -> Result<Arc<dyn super::ImageSource>> {
    let resolved = resolve_spec(spec);
    let p = Path::new(&resolved);
    if super::celeba::is_folder(p) {
        return Ok(Arc::new(super::CelebA::open(p, size)?));
    }
    Ok(Arc::new(super::Grid(super::cached(open(spec)?)?)))
}

/// Open a dataset by catalogue name or path (`data:<path>` for paths under the data directory).
pub fn open(spec: &str) -> Result<Arc<dyn GroundTruth>> {
    let resolved = resolve_spec(spec);
    let spec = resolved.as_str();
    match spec {
        "dsprites-like" => Ok(Arc::new(DSpritesRenderer::full())),
        "dsprites-like:subgrid" => Ok(Arc::new(DSpritesRenderer::new(dsprites::subgrid_factors())?)),
        "dsprites-real:subgrid" => {
            let p = DSpritesGrid::reference_subgrid().ok_or_else(|| {
                Error::config(
                    "dataset",
                    format!(
                        "dsprites-real:subgrid reads {} under $DYDIS_REFERENCE_DATA, which is unset or lacks it",
                        DSpritesGrid::REFERENCE_SUBGRID
                    ),
                )
            })?;
            Ok(Arc::new(DSpritesGrid::open(p)?))
        }
        s if s.starts_with("shapes3d-like") => Ok(Arc::new(shapes3d_spec(s)?)),
        _ => {
            let path = Path::new(spec);
            if !path.exists() {
                let names: Vec<&str> = catalogue().iter().map(|e| e.name).collect();
                return Err(Error::config(
                    "dataset",
                    format!("'{spec}' is neither a known dataset ({}) nor an existing file", names.join(", ")),
                ));
            }
            if path.is_dir() {
                return Ok(Arc::new(super::cars3d::Cars3D::open(path)?));
            }
            match path.extension().and_then(|e| e.to_str()) {
                Some("h5") | Some("hdf5") => Ok(Arc::new(super::shapes3d_h5::Shapes3dH5::open(path)?)),
                // An npz with `images` is MPI3D-toy; one with `imgs` is dSprites.
                Some("npz") => match super::npz::Npz::open(path)?.names().iter().any(|n| n == "images") {
                    true => Ok(Arc::new(super::mpi3d::Mpi3dToy::open(path)?)),
                    false => Ok(Arc::new(DSpritesGrid::open(path)?)),
                },
                _ => Err(Error::File {
                    path: path.to_path_buf(),
                    message:
                        "unsupported format (supported: Shapes3D .h5, dSprites .npz, MPI3D-toy .npz, a Cars3D folder)"
                            .into(),
                }),
            }
        }
    }
}

/// `shapes3d-like[:quick | :AxBxCxDxExF][@RES]`.
fn shapes3d_spec(spec: &str) -> Result<Shapes3DRenderer> {
    let bad = |m: String| Error::config("dataset", format!("'{spec}': {m} (form: shapes3d-like[:AxBxCxDxExF][@RES])"));
    let rest = &spec["shapes3d-like".len()..];
    let (grid, res) = match rest.split_once('@') {
        Some((g, r)) => (g, Some(r.parse::<usize>().map_err(|_| bad(format!("'{r}' is not a resolution")))?)),
        None => (rest, None),
    };
    let (counts, default_res) = match grid {
        "" => (None, 64),
        ":quick" => (Some([5, 5, 5, 4, 4, 5]), 32),
        g => {
            let parts: Vec<usize> = g
                .strip_prefix(':')
                .ok_or_else(|| bad(format!("unexpected '{g}'")))?
                .split('x')
                .map(|p| p.parse::<usize>().map_err(|_| bad(format!("'{p}' is not a count"))))
                .collect::<Result<_>>()?;
            let counts: [usize; 6] = parts.try_into().map_err(|_| bad("six factor counts are needed".into()))?;
            (Some(counts), 64)
        }
    };
    let res = res.unwrap_or(default_res);
    match counts {
        Some(c) => Shapes3DRenderer::subsampled(c, res),
        None => Shapes3DRenderer::new(res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_open_and_unknown_specs_are_explained() {
        assert_eq!(open("dsprites-like").unwrap().len(), 737_280);
        assert_eq!(open("dsprites-like:subgrid").unwrap().len(), 46_080);
        assert_eq!(open("shapes3d-like").unwrap().len(), 480_000);
        let q = open("shapes3d-like:quick").unwrap();
        assert_eq!((q.len(), q.image_shape().height), (10_000, 32));
        let c = open("shapes3d-like:10x10x10x8x4x15@48").unwrap();
        assert_eq!((c.len(), c.image_shape().width), (480_000, 48));
        for bad in
            ["shapes3d-like:5x5", "shapes3d-like@x", "shapes3d-like:11x1x1x1x1x1", "shapes3d-like@4", "shapes3d-likeX"]
        {
            assert!(open(bad).is_err(), "{bad}");
        }
        let e = open("shapes4d").err().unwrap().to_string();
        assert!(e.contains("'shapes4d'") && e.contains("dsprites-like"), "{e}");
        let e = open("Cargo.toml").err().unwrap().to_string();
        assert!(e.contains("unsupported format"), "{e}");
    }
}
