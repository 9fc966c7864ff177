//! `dydis`: the command line for long runs and set-up checks. Notebooks use dydis-core directly.
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dydis_core::device::{set_threads, DeviceSpec, RuntimeInfo};
use dydis_core::display::{Show, Table};
use kernel_ext::{execute_notebook, KernelStatus, Layout};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod eval_cli;
mod model_cli;
mod viz_cli;
use model_cli::{GenArgs, TrainArgs};

/// The checkout this binary was built from (notebooks, configs and the kernel's dydis-core live here).
const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Parser)]
#[command(
    name = "dydis",
    version,
    about = "Disentangled representation learning with diffusion models (DyGA + Skip Dropout)"
)]
struct Cli {
    /// Device: auto (CUDA when available), cpu, cuda or cuda:<index>.
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceSpec,
    /// CPU threads for libtorch (0 = libtorch's default).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check libtorch, devices, the notebook kernel and the data directory; exit non-zero with a fix if one is missing.
    Doctor {
        /// Also print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the `dydis` Jupyter kernel.
    Kernel {
        #[command(subcommand)]
        action: KernelAction,
    },
    /// Open JupyterLab on notebooks/ with the dydis kernel.
    Notebook {
        /// Extra arguments for `jupyter lab` (for example --no-browser --port 8890).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Execute notebooks headlessly and report failures (all of notebooks/ when none are named).
    Execute {
        notebooks: Vec<PathBuf>,
        /// Per-cell time limit in seconds.
        #[arg(long, default_value_t = 900)]
        cell_timeout: u64,
        /// Where executed copies are written.
        #[arg(long, default_value = "target/notebooks")]
        out: PathBuf,
    },
    /// Datasets: list, inspect, render, and score the procedural look-alikes against real images.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Benchmarks; results go to a JSON file.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Train the first stage (VQ autoencoder) of a run.
    TrainAe(TrainArgs),
    /// Train the latent diffusion model of a run (its first stage first, if that has no checkpoint yet).
    /// Ctrl-C finishes the step and saves; --resume continues.
    Train(TrainArgs),
    /// DDIM samples conditioned on the latent units of dataset images (PNG grid: images above, samples below).
    Sample {
        #[command(flatten)]
        gen: GenArgs,
        /// Dataset indices to condition on (default: --n random ones).
        #[arg(long, value_delimiter = ',')]
        images: Vec<usize>,
        #[arg(long, default_value_t = 8)]
        n: usize,
    },
    /// Latent interchange (Fig. 3): source, target, and the source with each unit in turn taken from the target.
    Interchange {
        #[command(flatten)]
        gen: GenArgs,
        #[arg(long)]
        source: Option<usize>,
        #[arg(long)]
        target: Option<usize>,
        /// Random pairs when no source/target is given.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
        /// Start every sample of a row from the same x_T (the released script draws a new one per sample).
        #[arg(long)]
        same_noise: bool,
    },
    /// Linear interpolation of all latent units between two images (Fig. 6), fixed x_T.
    Interpolate {
        #[command(flatten)]
        gen: GenArgs,
        #[arg(long)]
        from: Option<usize>,
        #[arg(long)]
        to: Option<usize>,
        #[arg(long, default_value_t = 8)]
        steps: usize,
    },
    /// DyGA anchors of a checkpoint: table; K, splits, filters and log-likelihood per unit over the refits;
    /// sorted anchor weights and cluster sizes (SVGs in <run>/anchors/).
    Anchors {
        checkpoint: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// DAAM-style attention maps per latent unit (Fig. 4): cross-attention averaged over layers, heads and DDIM
    /// steps, upsampled bicubically, over each image (PNG + JSON summary).
    Attention {
        #[command(flatten)]
        gen: GenArgs,
        /// Dataset indices (default: --n seeded random ones).
        #[arg(long, value_delimiter = ',')]
        images: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        n: usize,
        /// Only these cross-attention layers (forward order, 0-based; default all).
        #[arg(long, value_delimiter = ',')]
        layers: Vec<usize>,
        /// Only these heads (default all).
        #[arg(long, value_delimiter = ',')]
        heads: Vec<i64>,
        /// Only these DDIM steps, in sampling order, 0 = noisiest (default all).
        #[arg(long, value_delimiter = ',')]
        steps: Vec<usize>,
    },
    /// Conditional generation from anchor regions (Fig. 1b): one unit of an image drawn from each anchor's Gaussian.
    AnchorSamples {
        #[command(flatten)]
        gen: GenArgs,
        /// Dataset index of the conditioning image (default: a seeded random one).
        #[arg(long)]
        image: Option<usize>,
        #[arg(long, default_value_t = 0)]
        unit: usize,
        #[arg(long, default_value_t = 6)]
        per_anchor: usize,
        #[arg(long, default_value_t = 8)]
        max_anchors: usize,
    },
    /// Latent-unit projections (Fig. 1, 11): PCA of each unit over many images, coloured by the factor with the
    /// highest NMI, anchors overlaid (SVG + JSON).
    Project {
        checkpoint: PathBuf,
        #[arg(long)]
        data: Option<String>,
        /// Number of seeded random images.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Disentanglement metrics of a checkpoint or a representation file; JSON, Markdown and HTML report.
    Eval(eval_cli::EvalArgs),
    /// The downstream sample-efficiency task (boosted trees per factor on 10,000 / 1,000 / 100 samples).
    Downstream(eval_cli::EvalArgs),
    /// FID of representation-conditioned samples against real images (needs a TorchScript Inception-v3).
    Fid(eval_cli::FidArgs),
    /// Evaluation reports side by side, optionally with the paper's numbers for a dataset.
    EvalCompare {
        /// report.json files
        reports: Vec<PathBuf>,
        /// Add the paper's numbers for shapes3d, mpi3d, cars3d or celeba.
        #[arg(long)]
        paper: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The main job on the embedded default data: environment check and walkthrough, report in runs/<name>/.
    Quickstart {
        #[arg(long, default_value = "quickstart")]
        name: String,
        /// Run preset to train (smoke takes seconds; cpu-quick about 15-20 minutes on 2 cores).
        #[arg(long, default_value = "cpu-quick")]
        config: String,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// The datasets dydis can open by name, and whether each is available here.
    List,
    /// Factor table and counts; saves a sample grid and one traversal per factor as PNG.
    Info {
        /// A dataset name (see `dydis data list`), a file, or a CelebA folder (img_align_celeba/ + list_attr_celeba.txt).
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
    /// Score the procedural look-alikes against the real reference images in ../shared/data.
    Compare {
        /// Where the JSON report goes.
        #[arg(long, default_value = "runs/data/compare.json")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// DyGA anchor selection for N units x n features x D = 32 (synthetic extractor-like features).
    Anchors {
        #[arg(long, default_value_t = 20)]
        units: i64,
        #[arg(long, default_value_t = 100_000)]
        features: i64,
        /// Skip the released implementation's reference run.
        #[arg(long)]
        no_reference: bool,
        #[arg(long, default_value = "runs/bench/anchors.json")]
        out: PathBuf,
    },
    /// Time per LDM training step of presets, side by side with the same network in PyTorch eager.
    TrainStep {
        #[arg(long, value_delimiter = ',', default_value = "smoke,cpu-quick")]
        presets: Vec<String>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Skip the PyTorch reference.
        #[arg(long)]
        no_reference: bool,
        #[arg(long, default_value = "runs/bench/train-step.json")]
        out: PathBuf,
    },
    /// The metric suite at the paper's sample counts (Shapes3D-sized grid) and the downstream task (MPI3D-sized).
    Eval {
        /// A tenth of the sample counts.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "runs/bench/eval.json")]
        out: PathBuf,
    },
    /// Dataset rendering, loading and batching throughput, and each real file format's loader on a file
    /// written in that format.
    Data {
        /// Images per measurement.
        #[arg(long, default_value_t = 20_000)]
        images: usize,
        /// Skip the real-format loaders (writing their files takes about a minute).
        #[arg(long)]
        no_formats: bool,
        /// Objects in the Cars3D folder written for the loader measurement (96 views each).
        #[arg(long, default_value_t = 12)]
        cars3d_objects: usize,
        /// JPEGs in the CelebA folder written for the loader measurement.
        #[arg(long, default_value_t = 3_000)]
        celeba_images: usize,
        #[arg(long, default_value = "runs/bench/data.json")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KernelAction {
    /// Install (or refresh) the kernelspec so that it loads dydis-core from this checkout.
    Install,
    /// Print where the kernel and its configuration are.
    Status,
    /// Start the kernel once so that its build folder holds a compiled dydis-core (the first start takes minutes).
    Warm,
}

fn main() {
    let cli = Cli::parse();
    // `dydis data …` output piped into `head` and the like ends quietly when the reader goes away, as other
    // command-line tools do, instead of panicking on a failed print. (Only there: the kernel and the notebook
    // runner talk to child processes through pipes and must see a closed one as an error, not die of it.)
    if matches!(cli.command, Command::Data { .. }) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    set_threads(cli.threads);
    dydis_core::device::tune_allocator();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    let layout = Layout::default();
    let repo = Path::new(REPO);
    match cli.command {
        Command::Doctor { json } => doctor(&layout, repo, cli.device, json),
        Command::Kernel { action: KernelAction::Install } => {
            let dir = kernel_ext::install_kernel(&layout, repo)?;
            println!("installed kernel 'dydis' (Rust (dydis)) at {}", dir.display());
            Ok(0)
        }
        Command::Kernel { action: KernelAction::Warm } => {
            kernel_ext::install_kernel(&layout, repo)?;
            let nb = repo.join("tests/notebooks/warm.ipynb");
            let out = repo.join("target/notebooks/warm");
            println!("starting the dydis kernel once (the first time on a machine it compiles dydis-core: minutes)");
            let failed = execute_all(&layout, &[nb], &out, Duration::from_secs(1800))?;
            Ok(i32::from(failed > 0))
        }
        Command::Kernel { action: KernelAction::Status } => {
            println!("{}", KernelStatus::check(&layout).table().to_text());
            Ok(0)
        }
        Command::Notebook { args } => {
            use std::os::unix::process::CommandExt;
            kernel_ext::install_kernel(&layout, repo)?;
            // exec: JupyterLab takes this process's place, so stopping it (Ctrl-C, a signal) stops the server.
            let mut cmd = std::process::Command::new(layout.jupyter());
            cmd.arg("lab").arg(format!("--notebook-dir={}", repo.join("notebooks").display()));
            // SAFETY: geteuid has no preconditions. Jupyter refuses to start as root (containers, CI) without this.
            if unsafe { libc::geteuid() } == 0 {
                cmd.arg("--allow-root");
            }
            let err = cmd.args(args).exec();
            Err(err).with_context(|| format!("starting {}", layout.jupyter().display()))
        }
        Command::Execute { notebooks, cell_timeout, out } => {
            let list = if notebooks.is_empty() { all_notebooks(repo)? } else { notebooks };
            let failed = execute_all(&layout, &list, &out, Duration::from_secs(cell_timeout))?;
            Ok(i32::from(failed > 0))
        }
        Command::Quickstart { name, config } => quickstart(&layout, repo, &name, &config, cli.device),
        Command::Data { action } => data_command(action),
        Command::Bench { what: BenchWhat::Data { images, no_formats, cars3d_objects, celeba_images, out } } => {
            bench_data(images, (!no_formats).then_some((cars3d_objects, celeba_images)), &out)
        }
        Command::Bench { what: BenchWhat::TrainStep { presets, warmup, steps, no_reference, out } } => {
            let python = layout.venv().join("bin").join("python");
            model_cli::bench_train_step(&presets, warmup, steps, !no_reference, &python, &out, cli.device.resolve()?)
        }
        Command::Bench { what: BenchWhat::Anchors { units, features, no_reference, out } } => {
            model_cli::bench_anchors(units, features, !no_reference, &layout.venv().join("bin").join("python"), &out)
        }
        Command::Anchors { checkpoint, out } => viz_cli::anchors(&checkpoint, out),
        Command::Attention { gen, images, n, layers, heads, steps } => {
            viz_cli::attention(&gen, &images, n, &layers, &heads, &steps, cli.device.resolve()?)
        }
        Command::AnchorSamples { gen, image, unit, per_anchor, max_anchors } => {
            viz_cli::anchor_samples(&gen, image, unit, per_anchor, max_anchors, cli.device.resolve()?)
        }
        Command::Project { checkpoint, data, n, seed, out } => {
            viz_cli::project(&checkpoint, data.as_deref(), n, seed, out, cli.device.resolve()?)
        }
        Command::Eval(args) => eval_cli::eval(&args, cli.device.resolve()?),
        Command::Downstream(mut args) => {
            args.metrics = Some(vec!["downstream".into()]);
            eval_cli::eval(&args, cli.device.resolve()?)
        }
        Command::Fid(args) => eval_cli::fid(&args, cli.device.resolve()?),
        Command::EvalCompare { reports, paper, out } => eval_cli::compare(&reports, paper.as_deref(), out.as_deref()),
        Command::Bench { what: BenchWhat::Eval { quick, out } } => eval_cli::bench(&out, quick),
        Command::TrainAe(args) => model_cli::train_ae(&args, cli.device.resolve()?),
        Command::Train(args) => model_cli::train_ldm(&args, cli.device.resolve()?),
        Command::Sample { gen, images, n } => model_cli::sample(&gen, &images, n, cli.device.resolve()?),
        Command::Interchange { gen, source, target, pairs, same_noise } => {
            model_cli::interchange(&gen, source, target, pairs, same_noise, cli.device.resolve()?)
        }
        Command::Interpolate { gen, from, to, steps } => {
            model_cli::interpolate(&gen, from, to, steps, cli.device.resolve()?)
        }
    }
}

fn all_notebooks(repo: &Path) -> Result<Vec<PathBuf>> {
    let dir = repo.join("notebooks");
    let mut list: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    list.sort();
    Ok(list)
}

/// Run each notebook, print one line per notebook (and its problems); returns the number that failed.
fn execute_all(layout: &Layout, list: &[PathBuf], out: &Path, timeout: Duration) -> Result<usize> {
    let mut failed = 0;
    for nb in list {
        let report = execute_notebook(layout, nb, out, timeout)?;
        let verdict = if report.ok() { "ok" } else { "FAILED" };
        println!(
            "{verdict:6} {} ({:.1} s) -> {}",
            nb.display(),
            report.duration.as_secs_f64(),
            report.executed.display()
        );
        if !report.ok() {
            failed += 1;
            for p in &report.problems {
                println!("         {p}");
            }
            println!("--- jupyter output (tail) ---\n{}", report.log_tail);
        }
    }
    Ok(failed)
}

fn doctor(layout: &Layout, repo: &Path, device: DeviceSpec, json: bool) -> Result<i32> {
    let info = RuntimeInfo::collect();
    let kernel = KernelStatus::check(layout);
    let data = dydis_core::paths::data_dir();
    let mut problems = kernel.problems(repo);
    if let Err(e) = device.resolve() {
        problems.push(format!("{e}: use --device cpu, or run on a machine with a CUDA GPU"));
    }
    if !info.libtorch_version.starts_with("2.13.0") {
        problems.push(format!(
            "built against libtorch {}, dydis needs 2.13.0: run scripts/setup.sh",
            info.libtorch_version
        ));
    }
    println!("{}\n", info.to_text());
    println!("{}\n", kernel.table().to_text());
    let paths = Table::new(["item", "value"])
        .with_title("paths")
        .row(["checkout", REPO])
        .row(["cache (DYDIS_HOME)", &layout.cache.display().to_string()])
        .row(["data directory (DYDIS_DATA)", &data.display().to_string()])
        .row(["requested device", &device.to_string()]);
    println!("{}\n", paths.to_text());
    if json {
        let v = serde_json::json!({ "runtime": info, "data_dir": data, "cache": layout.cache, "problems": problems });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    if problems.is_empty() {
        println!("all good");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        Ok(2)
    }
}

fn quickstart(layout: &Layout, repo: &Path, name: &str, config: &str, device: DeviceSpec) -> Result<i32> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("invalid run name '{name}': use a plain folder name");
    }
    let run_dir = repo.join("runs").join(name);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    kernel_ext::install_kernel(layout, repo)?;
    let resolved = device.resolve()?;
    let info = RuntimeInfo::collect();
    println!("{}\n", info.to_text());
    let env_json = serde_json::json!({ "runtime": info, "device": format!("{resolved:?}") });
    dydis_core::display::write_atomic(
        &run_dir.join("environment.json"),
        serde_json::to_string_pretty(&env_json)?.as_bytes(),
    )?;
    // The embedded default dataset: rendered once into the cache, then inspected.
    let spec = "shapes3d-like:quick";
    let start = std::time::Instant::now();
    let ds = dydis_core::data::cached(dydis_core::data::open(spec)?)?;
    let render_secs = start.elapsed().as_secs_f64();
    let data_dir = run_dir.join("data");
    dydis_core::data::sample_grid(ds.as_ref(), 32, 0, 2)?.save_png(data_dir.join("samples.png"))?;
    let middle: Vec<usize> = ds.factors().sizes().iter().map(|s| s / 2).collect();
    let base = ds.factors().index_of(&middle)?;
    for f in 0..ds.factors().num_factors() {
        let name = file_safe(&ds.factors().factor(f).name);
        dydis_core::data::traversal(ds.as_ref(), f, base, 2)?
            .save_png(data_dir.join(format!("traversal-{name}.png")))?;
    }
    println!(
        "dataset {} ({} images) ready in {render_secs:.1} s; samples in {}",
        ds.name(),
        ds.len(),
        data_dir.display()
    );

    let notebooks = vec![repo.join("notebooks/00-environment.ipynb")];
    let failed = execute_all(layout, &notebooks, &run_dir.join("notebooks"), Duration::from_secs(900))?;
    let model = model_cli::quickstart_model(config, &run_dir, resolved)?;
    let report = format!(
        "# dydis run `{name}`\n\n```\n{}\n```\n\n## Data\n\n`{spec}`: {}, {} images, cached and ready in {render_secs:.1} s.\n\n\
         ```\n{}\n```\n\n![samples](data/samples.png)\n\nTraversals: `data/traversal-*.png`.\n\n\
         {model}\n## Notebooks\n\n`notebooks/00-environment.ipynb` {}; executed copy in `notebooks/`. The walkthroughs `01`–`07` \
         (`./dydis notebook`) open each part of this run step by step.\n",
        info.to_text(),
        ds.name(),
        ds.len(),
        ds.factors().table().to_text(),
        if failed == 0 { "ran cleanly" } else { "FAILED" }
    );
    dydis_core::display::write_atomic(&run_dir.join("report.md"), report.as_bytes())?;
    println!("\nreport: {}", run_dir.join("report.md").display());
    Ok(i32::from(failed > 0))
}

fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

fn data_command(action: DataAction) -> Result<i32> {
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
            data::sample_grid(ds.as_ref(), 32, 0, scale)?.save_png(out.join("samples.png"))?;
            let middle: Vec<usize> = ds.factors().sizes().iter().map(|s| s / 2).collect();
            let base = ds.factors().index_of(&middle)?;
            for f in 0..ds.factors().num_factors() {
                let name = &ds.factors().factor(f).name;
                data::traversal(ds.as_ref(), f, base, scale)?
                    .save_png(out.join(format!("traversal-{}.png", file_safe(name))))?;
            }
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
            let path = DSpritesGrid::shared_subgrid()
                .context("../shared/data/dsprites/dsprites_downsampled.npz is not next to this checkout")?;
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
            let ref_path = Reference::shared()
                .context("../shared/data/shapes3d/shapes3d_reference_samples.npz is not next to this checkout")?;
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
            let json = serde_json::json!({ "dsprites": r, "dsprites_reference": path, "shapes3d": s, "shapes3d_reference": ref_path, "shapes3d_params": params });
            dydis_core::display::write_atomic(&out, serde_json::to_string_pretty(&json)?.as_bytes())?;
            println!("\nreport: {} (side by side: {})", out.display(), png.display());
        }
    }
    Ok(0)
}

fn bench_data(images: usize, formats: Option<(usize, usize)>, out: &Path) -> Result<i32> {
    use dydis_core::data::{self, bench, DSpritesGrid, GroundTruth};
    let mut results = Vec::new();
    let mut specs = vec![
        ("dsprites-like".to_string(), images),
        ("shapes3d-like".to_string(), images / 20),
        ("shapes3d-like@32".to_string(), images / 10),
    ];
    let mut load = serde_json::Value::Null;
    if let Some(p) = DSpritesGrid::shared_subgrid() {
        let start = std::time::Instant::now();
        let real = DSpritesGrid::open(&p)?;
        let secs = start.elapsed().as_secs_f64();
        load = serde_json::json!({ "file": p, "images": real.len(), "seconds": secs, "images_per_s": real.len() as f64 / secs });
        specs.push((p.display().to_string(), images));
    }
    let mut t = Table::new(["dataset", "images", "1 thread img/s", "parallel img/s", "speed-up", "BatchIter img/s"])
        .with_title(format!("dataset throughput ({} threads)", dydis_core::device::RuntimeInfo::collect().threads));
    for (spec, n) in specs {
        let r = bench::measure(data::open(&spec)?, n)?;
        t.push_row([
            r.dataset.clone(),
            r.images.to_string(),
            format!("{:.0}", r.sequential_images_per_s),
            format!("{:.0}", r.parallel_images_per_s),
            format!("{:.2}x", r.parallel_speedup),
            format!("{:.0}", r.batch_iter_images_per_s),
        ]);
        results.push(r);
    }
    println!("{}", t.to_text());
    let mut rates = Vec::new();
    if let Some((cars3d_objects, celeba_images)) = formats {
        let dir = std::env::temp_dir().join(format!("dydis-bench-formats-{}", std::process::id()));
        eprintln!("writing one file per real format under {} (removed afterwards) ...", dir.display());
        rates = bench::formats(&dir, images.min(5_000), cars3d_objects, celeba_images)?;
        let mut t = Table::new([
            "format",
            "images",
            "MB",
            "write s",
            "open s",
            "open img/s",
            "1 thread img/s",
            "parallel img/s",
            "batches img/s",
        ])
        .with_title("real file formats (synthetic content, written and read back)");
        for r in &rates {
            let th = &r.throughput;
            t.push_row([
                r.format.clone(),
                r.images.to_string(),
                format!("{:.1}", r.bytes as f64 / 1e6),
                format!("{:.2}", r.write_s),
                format!("{:.3}", r.open_s),
                format!("{:.0}", r.open_images_per_s),
                format!("{:.0}", th.sequential_images_per_s),
                format!("{:.0}", th.parallel_images_per_s),
                format!("{:.0}", th.batch_iter_images_per_s),
            ]);
        }
        println!("\n{}", t.to_text());
    }
    let json = serde_json::json!({
        "runtime": dydis_core::device::RuntimeInfo::collect(),
        "rayon_threads": rayon_threads(),
        "throughput": results,
        "real_file_load": load,
        "formats": rates,
    });
    dydis_core::display::write_atomic(out, serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("\nresults: {}", out.display());
    Ok(0)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
