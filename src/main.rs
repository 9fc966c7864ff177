//! `dydis`: the command line for long runs and set-up checks. Notebooks use dydis-core directly; every command
//! here is a thin shell over it (`commands/`, one file per command family).
use clap::{Parser, Subcommand};
use dydis_core::device::{set_threads, DeviceSpec};

mod commands;
mod common;
use commands::{bench, cldis, data, env, eval, generate, quickstart, study, train, viz};

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
        action: env::KernelAction,
    },
    /// Open JupyterLab on notebooks/ with the dydis kernel.
    Notebook {
        /// Extra arguments for `jupyter lab` (for example --no-browser --port 8890).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Execute notebooks headlessly and report failures (all of notebooks/ when none are named).
    Execute(env::ExecuteArgs),
    /// Datasets: list, inspect, render, and score the procedural look-alikes against real images.
    Data {
        #[command(subcommand)]
        action: data::DataAction,
    },
    /// Benchmarks; results go to a JSON file.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
    /// Train the first stage (VQ autoencoder) of an LDM run.
    TrainAe(train::TrainArgs),
    /// Train a run: its earlier stages first when they have no finished checkpoint yet, then the model.
    /// Ctrl-C finishes the step and saves; --resume continues.
    Train(train::TrainArgs),
    /// DDIM samples conditioned on the latent units of dataset images (PNG grid: images above, samples below).
    Sample(generate::SampleArgs),
    /// Latent interchange (Fig. 3): source, target, and the source with each unit in turn taken from the target.
    Interchange(generate::InterchangeArgs),
    /// Linear interpolation of all latent units between two images (Fig. 6), fixed x_T.
    Interpolate(generate::InterpolateArgs),
    /// Images above what a run of any family makes of them (a VAE's decoded posterior mean, an LDM's samples).
    Reconstruct(generate::SampleArgs),
    /// Latent traversals: a VAE's (each latent in turn swept over values, the others at the image's mean), a
    /// Multi-β VAE's at several levels of β, or CL-Dis's directions of z_sem (as many shifts as values).
    Traverse(generate::TraverseArgs),
    /// A Multi-β VAE: decoding at high β before and after denoising, image-free generation, the learned σ_t.
    Denoise(generate::DenoiseArgs),
    /// DyGA anchors of a checkpoint: table; K, splits, filters and log-likelihood per unit over the refits;
    /// sorted anchor weights and cluster sizes (SVGs in <run>/anchors/).
    Anchors(viz::AnchorsArgs),
    /// DAAM-style attention maps per latent unit (Fig. 4): cross-attention averaged over layers, heads and DDIM
    /// steps, upsampled bicubically, over each image (PNG + JSON summary).
    Attention(viz::AttentionArgs),
    /// Conditional generation from anchor regions (Fig. 1b): one unit of an image drawn from each anchor's Gaussian.
    AnchorSamples(viz::AnchorSamplesArgs),
    /// Latent-unit projections (Fig. 1, 11): PCA of each unit over many images, coloured by the factor with the
    /// highest NMI, anchors overlaid (SVG + JSON).
    Project(viz::ProjectArgs),
    /// Disentanglement metrics of a checkpoint or a representation file; JSON, Markdown and HTML report.
    Eval(eval::EvalArgs),
    /// The downstream sample-efficiency task (boosted trees per factor on 10,000 / 1,000 / 100 samples).
    Downstream(eval::EvalArgs),
    /// FID of representation-conditioned samples against real images (needs a TorchScript Inception-v3).
    Fid(eval::FidArgs),
    /// CL-Dis's self-supervised navigation on a finished run (shift predictor over decoded pairs), then the
    /// predictor's accuracy per direction, the label-free content-tracking score, the directions as traversals and
    /// the loop's feedback curve (in the run folder).
    Navigate(cldis::NavigateArgs),
    /// The label-free content-tracking score beside FactorVAE and DCI on ground truth: a factor grid's renderer
    /// with directions that move one factor each against directions that move two.
    ContentTracking(cldis::GroundTruthArgs),
    /// A Multi-β VAE's metrics of μ(x, t) across the β spectrum (table, SVG and JSON in the run folder).
    BetaSweep(eval::BetaSweepArgs),
    /// Evaluation reports or studies side by side, optionally with the paper's numbers for a dataset.
    EvalCompare(eval::CompareArgs),
    /// A study: every arm x seed x dataset trained and evaluated (finished cells skipped, an interrupted one
    /// continued), then one results table (JSON, CSV), mean ± std, bootstrap intervals, paired differences
    /// against the reference arm and interval plots in runs/studies/<name>/.
    Study(study::StudyArgs),
    /// The main job on the embedded default data: environment check and walkthrough, report in runs/<name>/.
    Quickstart(quickstart::QuickstartArgs),
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
    common::default_reference_data();
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

fn run(cli: Cli) -> anyhow::Result<i32> {
    let device = || cli.device.resolve();
    match cli.command {
        Command::Doctor { json } => env::doctor(cli.device, json),
        Command::Kernel { action } => env::kernel(action),
        Command::Notebook { args } => env::notebook(args),
        Command::Execute(a) => env::execute(&a),
        Command::Quickstart(a) => quickstart::quickstart(&a, cli.device),
        Command::Data { action } => data::data(action),
        Command::Bench { what } => bench::bench(what, cli.device),
        Command::TrainAe(a) => train::train(&a, Some("ae"), device()?),
        Command::Train(a) => train::train(&a, None, device()?),
        Command::Sample(a) => generate::sample(&a, device()?),
        Command::Interchange(a) => generate::interchange(&a, device()?),
        Command::Interpolate(a) => generate::interpolate(&a, device()?),
        Command::Reconstruct(a) => generate::reconstruct(&a, device()?),
        Command::Traverse(a) => generate::traverse(&a, device()?),
        Command::Denoise(a) => generate::denoise(&a, device()?),
        Command::Anchors(a) => viz::anchors(&a),
        Command::Attention(a) => viz::attention(&a, device()?),
        Command::AnchorSamples(a) => viz::anchor_samples(&a, device()?),
        Command::Project(a) => viz::project(&a, device()?),
        Command::Eval(a) => eval::eval(&a, device()?),
        Command::Downstream(mut a) => {
            a.metrics = Some(vec!["downstream".into()]);
            eval::eval(&a, device()?)
        }
        Command::Fid(a) => eval::fid(&a, device()?),
        Command::EvalCompare(a) => eval::compare(&a),
        Command::BetaSweep(a) => eval::beta_sweep(&a, device()?),
        Command::Navigate(a) => cldis::navigate(&a, device()?),
        Command::ContentTracking(a) => cldis::ground_truth(&a),
        Command::Study(a) => study::run(&a, device()?),
    }
}
