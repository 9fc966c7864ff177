//! `dydis data <action>`: list, inspect, render, export, write synthetic folders in real layouts, fetch, and score
//! the look-alikes against real images.
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use dydis_core::display::{Show, Table};
use dydis_core::fs::{file_safe, write_atomic};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum DataAction {
    /// The datasets dydis can open by name, and whether each is available here.
    List,
    /// Factor table and counts; saves a sample grid and one traversal per factor as PNG.
    Info {
        /// A dataset name (see `dydis data list`), a file, or a CelebA folder (img_align_celeba/ +
        /// list_attr_celeba.txt).
        dataset: String,
        /// Output folder (default runs/data/<dataset>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Render a dataset once into the on-disk cache (data directory), reused by every later run.
    Render { dataset: String },
    /// Write a dataset in a real file format, atomically: .h5 (the 3dshapes.h5 layout, Shapes3D-family grids),
    /// .npz (the dSprites layout for dSprites-family grids; MPI3D's uncompressed `images` layout for RGB grids).
    Export {
        dataset: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a folder in a real dataset's layout with synthetic (Shapes3D-like) content: `celeba`
    /// (img_align_celeba/ JPEGs + list_attr_celeba.txt) or `cars3d` (car_NNN_mesh.mat files + list.txt).
    Synthetic {
        /// celeba or cars3d.
        layout: String,
        #[arg(long)]
        out: PathBuf,
        /// Images (celeba) or objects of 96 views each (cars3d).
        #[arg(long, default_value_t = 1_000)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Download a real dataset from its official location and verify it (needs internet access).
    Fetch {
        /// shapes3d, dsprites, mpi3d_toy, cars3d (celeba: prints how to obtain it).
        name: String,
        /// Destination folder (default: the data directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Score the procedural look-alikes against the real reference images ($DYDIS_REFERENCE_DATA).
    Compare {
        /// Where the JSON report goes.
        #[arg(long, default_value = "runs/data/compare.json")]
        out: PathBuf,
    },
}

pub fn data(action: DataAction) -> Result<i32> {
    use dydis_core::data::{self, dsprites, DSpritesGrid, GroundTruth};
    match action {
        DataAction::List => {
            let mut t = Table::new(["name", "available", "description"]).with_title("datasets");
            for e in data::catalogue() {
                t.push_row([e.name, if e.available { "yes" } else { "no" }, e.description]);
            }
            println!("{}\n\nAny supported file can be given by path instead (dSprites .npz).", t.to_text());
        }
        DataAction::Info { dataset, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from("runs/data").join(file_safe(&dataset)));
            if data::celeba::is_folder(Path::new(&dataset)) {
                // CelebA: attributes instead of factors; one with/without grid per attribute instead of traversals.
                let ds = data::CelebA::open(&dataset, 64)?;
                println!("celeba: {} images of 3x64x64 (the D2C crop), no factor grid\n", ds.len());
                println!("{}\n", ds.attribute_table().to_text());
                ds.sample_grid(32, 0, 2)?.save_png(out.join("samples.png"))?;
                let mut written = 0;
                for name in ds.attribute_names() {
                    match ds.attribute_grid(name, 8, 0, 2) {
                        Ok(img) => {
                            img.save_png(out.join(format!("attribute-{}.png", file_safe(name))))?;
                            written += 1;
                        }
                        Err(e) => println!("{name}: no grid ({e})"),
                    }
                }
                println!(
                    "sample grid and {written} attribute grids (with it / without it) written to {}",
                    out.display()
                );
                return Ok(0);
            }
            let ds = data::open(&dataset)?;
            let s = ds.image_shape();
            println!("{}: {} images of {}x{}x{}\n", ds.name(), ds.len(), s.channels, s.height, s.width);
            println!("{}\n", ds.factors().table().to_text());
            let scale = if s.height <= 32 { 4 } else { 2 };
            data::save_overview(ds.as_ref(), &out, scale)?;
            println!("sample grid and {} traversals written to {}", ds.factors().num_factors(), out.display());
        }
        DataAction::Render { dataset } => {
            let ds = data::open(&dataset)?;
            let dir = dydis_core::paths::data_dir().join("cache");
            let start = std::time::Instant::now();
            let total = ds.len();
            let mut last = std::time::Instant::now();
            let c = data::cache::cached_in(ds.as_ref(), &dir, &mut |done| {
                if last.elapsed().as_secs() >= 10 || done == total {
                    eprintln!("  {done}/{total} images ({:.0}/s)", done as f64 / start.elapsed().as_secs_f64());
                    last = std::time::Instant::now();
                }
            })?;
            println!(
                "{}: {} images cached at {} ({:.1} s)",
                ds.name(),
                c.len(),
                c.path().display(),
                start.elapsed().as_secs_f64()
            );
        }
        DataAction::Export { dataset, out } => {
            let ds = data::open(&dataset)?;
            let start = std::time::Instant::now();
            match out.extension().and_then(|e| e.to_str()) {
                Some("h5") => data::shapes3d_h5::save_h5(ds.as_ref(), &out)?,
                Some("npz") if ds.image_shape().channels == 1 => dsprites::save_npz(ds.as_ref(), &out)?,
                Some("npz") => data::mpi3d::save_npz(ds.as_ref(), &out)?,
                _ => bail!(
                    "--out must end in .h5 (Shapes3D layout) or .npz (dSprites layout; MPI3D layout for RGB images)"
                ),
            }
            println!(
                "{}: {} images written to {} in {:.1} s",
                ds.name(),
                ds.len(),
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
        DataAction::Synthetic { layout, out, count, seed } => {
            let start = std::time::Instant::now();
            match layout.as_str() {
                "celeba" => data::celeba::write_synthetic(&out, count, seed)?,
                "cars3d" => data::cars3d::write_synthetic(&out, count, seed)?,
                other => bail!("unknown layout '{other}' (celeba or cars3d)"),
            };
            println!(
                "{layout} layout with synthetic content: {count} {} written to {} in {:.1} s",
                if layout == "cars3d" { "objects" } else { "images" },
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
        DataAction::Fetch { name, out } => {
            use dydis_core::data::fetch;
            if name == "celeba" {
                println!("{}", fetch::CELEBA_NOTE);
                return Ok(2);
            }
            let all = fetch::sources();
            let Some(src) = all.iter().find(|s| s.name == name) else {
                let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                bail!("no download named '{name}' (known: {}, celeba)", names.join(", "));
            };
            let dir = out.unwrap_or_else(dydis_core::paths::data_dir);
            println!("fetching {} from {}", src.name, src.url);
            let path = fetch::fetch(src, &dir)?;
            if src.name == "dsprites" {
                let g = DSpritesGrid::open(&path)?;
                anyhow::ensure!(g.len() == 737_280, "{} holds {} images, expected 737,280", path.display(), g.len());
            }
            println!("verified: {}\n{}", path.display(), src.then);
        }
        DataAction::Compare { out } => {
            use dydis_core::data::shapes3d::{compare_with_reference, reference_panel, Reference, SceneParams};
            let path = DSpritesGrid::reference_subgrid().with_context(|| {
                format!("{} is not under $DYDIS_REFERENCE_DATA (unset or without it)", DSpritesGrid::REFERENCE_SUBGRID)
            })?;
            let real = DSpritesGrid::open(&path)?;
            let r = dsprites::compare_with_real(&real)?;
            let mut t =
                Table::new(["look-alike", "real images", "score"]).with_title("procedural look-alikes vs real images");
            for (name, n, mean, min) in &r.per_shape {
                t.push_row([
                    format!("dsprites-like, {name}"),
                    n.to_string(),
                    format!("IoU mean {mean:.4}, min {min:.4}"),
                ]);
            }
            t.push_row([
                "dsprites-like, all".to_string(),
                r.images.to_string(),
                format!("IoU mean {:.4}, min {:.4}", r.mean, r.min),
            ]);
            let ref_path = Reference::find().with_context(|| {
                format!("{} is not under $DYDIS_REFERENCE_DATA (unset or without it)", Reference::FILE)
            })?;
            let reference = Reference::open(&ref_path)?;
            let params = SceneParams::default();
            let s = compare_with_reference(&params, &reference);
            t.push_row([
                "shapes3d-like @64".to_string(),
                s.images.to_string(),
                format!(
                    "mean abs error {:.2}/255, {:.1}% of pixels within 16 levels",
                    s.mean_abs_error,
                    100.0 * s.close_pixels
                ),
            ]);
            println!("{}", t.to_text());
            let png = out.with_extension("shapes3d.png");
            reference_panel(&params, &reference, &s, 10)?.save_png(&png)?;
            let json = serde_json::json!({
                "dsprites": r, "dsprites_reference": path, "shapes3d": s, "shapes3d_reference": ref_path,
                "shapes3d_params": params
            });
            write_atomic(&out, serde_json::to_string_pretty(&json)?.as_bytes())?;
            println!("\nreport: {} (side by side: {})", out.display(), png.display());
        }
    }
    Ok(0)
}
