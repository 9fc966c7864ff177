//! Datasets by name: what `dydis data` and notebooks open with one string.
//!
//! A spec is a catalogue name (see [`catalogue`]) or a path to a file in a supported real format.
use super::dsprites::{self, DSpritesGrid, DSpritesRenderer};
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
            description: "procedural dSprites, full grid 3x6x40x32x32 (737,280 binary 64x64 images), rendered on the fly",
            available: true,
        },
        Entry {
            name: "dsprites-like:subgrid",
            description: "procedural dSprites on the sub-grid 3x6x10x16x16 (46,080 images) of the real reference file",
            available: true,
        },
        Entry {
            name: "dsprites-real:subgrid",
            description: "the real 46,080-image dSprites sub-grid from ../shared/data/dsprites (Apache-2.0)",
            available: DSpritesGrid::shared_subgrid().is_some(),
        },
    ]
}

/// Open a dataset by catalogue name or path.
pub fn open(spec: &str) -> Result<Arc<dyn GroundTruth>> {
    match spec {
        "dsprites-like" => Ok(Arc::new(DSpritesRenderer::full())),
        "dsprites-like:subgrid" => Ok(Arc::new(DSpritesRenderer::new(dsprites::subgrid_factors())?)),
        "dsprites-real:subgrid" => {
            let p = DSpritesGrid::shared_subgrid().ok_or_else(|| Error::File {
                path: "../shared/data/dsprites/dsprites_downsampled.npz".into(),
                message: "not found next to this checkout".into(),
            })?;
            Ok(Arc::new(DSpritesGrid::open(p)?))
        }
        _ => {
            let path = Path::new(spec);
            if !path.exists() {
                let names: Vec<&str> = catalogue().iter().map(|e| e.name).collect();
                return Err(Error::config("dataset", format!("'{spec}' is neither a known dataset ({}) nor an existing file", names.join(", "))));
            }
            match path.extension().and_then(|e| e.to_str()) {
                Some("npz") => Ok(Arc::new(DSpritesGrid::open(path)?)),
                _ => Err(Error::File { path: path.to_path_buf(), message: "unsupported format (supported: dSprites .npz)".into() }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_open_and_unknown_specs_are_explained() {
        assert_eq!(open("dsprites-like").unwrap().len(), 737_280);
        assert_eq!(open("dsprites-like:subgrid").unwrap().len(), 46_080);
        let e = open("shapes4d").err().unwrap().to_string();
        assert!(e.contains("'shapes4d'") && e.contains("dsprites-like"), "{e}");
        let e = open("Cargo.toml").err().unwrap().to_string();
        assert!(e.contains("unsupported format"), "{e}");
    }
}
