//! Training: run configurations and presets, AdamW and EMA, checkpoints, and the two trainers (first stage and
//! latent diffusion). Trainers are step-wise objects, so notebooks can run one step, look, and go on.
pub mod checkpoint;
pub mod config;
pub mod optim;
mod trainer;

pub use config::{AeTrainConfig, LdmTrainConfig, ModelConfig, RunConfig, SampleConfig, PRESETS};
pub use trainer::{AeTrainer, History, LdmTrainer, Outcome, StepLog};

use std::sync::atomic::{AtomicBool, Ordering};

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
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ask running trainers to stop after their current step, as Ctrl-C does.
pub fn request_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}
