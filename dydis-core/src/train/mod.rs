//! Training: the step-wise [`Trainer`] interface every stage of every method implements, the loop that drives one
//! (checkpoints on the way and at the end, Ctrl-C finishing the step), step logs and loss curves, the LDM's
//! two trainers (first stage and latent diffusion) and the VAE baselines' trainer. Trainers are step-wise objects, so notebooks can run one
//! step, look, and go on.
mod cldis;
mod multibeta;
mod trainer;
mod vae;

pub use cldis::{ClDisTrainer, Phase};
pub use multibeta::{DenoiserTrainer, MultiBetaVaeTrainer};
pub use trainer::{ldm_optimizers, ldm_step, AeTrainer, History, LdmTrainer, Outcome, StepLog};
pub use vae::{vae_optimizers, vae_step, VaeTrainer};

use crate::Result;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One training stage of a method (its checkpoints live in `<run>/<stage>/`), trained one step at a time.
pub trait Trainer {
    /// The stage's folder name in the run (`ae`, `ldm`, ...).
    fn stage(&self) -> &str;
    /// What the stage trains, in words ("first stage").
    fn title(&self) -> &str;
    /// Optimisation steps completed (restored from the checkpoint on resume).
    fn current_step(&self) -> usize;
    /// The configured length of the stage.
    fn total_steps(&self) -> usize;
    fn checkpoint_every(&self) -> usize;
    /// One optimisation step on the next batch; logged to `<stage>/log.jsonl` and the progress line.
    fn train_step(&mut self) -> Result<StepLog>;
    /// Write a checkpoint of the current state; returns its folder.
    fn save(&self) -> Result<PathBuf>;
    fn history(&self) -> &History;
    /// What is trained, for the first line a command prints.
    fn describe(&self) -> String;
}

/// Train to the stage's configured length (or `max_steps` more), checkpointing every `checkpoint_every` steps and
/// at the end. Ctrl-C (see [`install_interrupt_handler`]) finishes the current step, saves and returns.
pub fn run_stage(t: &mut (impl Trainer + ?Sized), max_steps: Option<usize>) -> Result<Outcome> {
    clear_interrupt();
    let t0 = Instant::now();
    let start = t.current_step();
    let end = match max_steps {
        Some(m) => (start + m).min(t.total_steps()),
        None => t.total_steps(),
    };
    let mut last = None;
    let mut interrupted = false;
    let mut checkpoint = None;
    while t.current_step() < end {
        let log = t.train_step()?;
        last = Some(log.loss);
        if t.current_step() % t.checkpoint_every() == 0 && t.current_step() < end {
            checkpoint = Some(t.save()?);
        }
        if interrupted_now() {
            interrupted = true;
            clear_interrupt();
            break;
        }
    }
    if t.current_step() > start || checkpoint.is_none() {
        checkpoint = Some(t.save()?);
    }
    Ok(Outcome {
        steps_done: t.current_step() - start,
        interrupted,
        checkpoint,
        seconds: t0.elapsed().as_secs_f64(),
        final_loss: last,
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: stop at once.
        unsafe { libc::_exit(130) };
    }
}

/// Make Ctrl-C finish the current step, save a checkpoint and return (a second Ctrl-C exits immediately).
pub fn install_interrupt_handler() {
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}

/// Whether an interrupt was requested (and not yet handled).
pub fn interrupted_now() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ask running trainers to stop after their current step, as Ctrl-C does.
pub fn request_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}
