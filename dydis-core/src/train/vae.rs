//! The VAE baselines' trainer: Adam (1e-4, β 0.9/0.999) on batches drawn with replacement, one stage `vae`; FactorVAE
//! adds its discriminator's update from the same forward pass and batch (disentanglement_lib's grouped train op).
use super::trainer::{check_finite, open_data, step_seed, Driver};
use super::{History, StepLog, Trainer};
use crate::model::vae::{Vae, VaeLoss};
use crate::nn::optim::AdamW;
use crate::run::checkpoint::{self, Meta};
use crate::run::config::RunConfig;
use crate::run::dir::RunDir;
use crate::vae::losses;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

pub struct VaeTrainer {
    pub vae: Vae,
    opt: AdamW,
    opt_d: Option<AdamW>,
    /// Parameter updates done.
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

impl VaeTrainer {
    /// A run writing to `run_dir/vae`; with `resume`, its newest checkpoint is continued.
    pub fn new(config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let v = &config.vae;
        let data = open_data(config)?;
        tch::manual_seed(config.seed as i64);
        let vae = Vae::new(config, device)?;
        let (opt, opt_d) = vae_optimizers(&vae);
        let dir = RunDir::new(run_dir);
        let resume_from = if resume { dir.newest(Vae::STAGE)? } else { None };
        let driver = Driver::new(data, v.batch_size, config.seed, device, dir, v.log_every, Vae::STAGE)?;
        let mut t = VaeTrainer { vae, opt, opt_d, step: 0, driver, elapsed_before: 0.0, config: config.clone() };
        if let Some((_, p)) = resume_from {
            let ck = checkpoint::load(&p)?;
            if ck.meta.config.vae.image_size != v.image_size
                || ck.meta.config.vae.channels != v.channels
                || ck.meta.config.vae.latent != v.latent
                || std::mem::discriminant(&ck.meta.config.vae.objective) != std::mem::discriminant(&v.objective)
            {
                return Err(Error::File {
                    path: p,
                    message: "was written for another model configuration; use a new run name".into(),
                });
            }
            t.restore(&ck)?;
        }
        t.driver.open_log(t.step)?;
        Ok(t)
    }

    fn restore(&mut self, ck: &checkpoint::Checkpoint) -> Result<()> {
        ck.restore(&self.vae.vs, "")?;
        let get = |k: &str| ck.optimizer.get(k).map(|t| t.shallow_clone());
        self.opt.load_state("", &get, ck.meta.optimizer_steps.get("adam").copied().unwrap_or(0))?;
        if let (Some((dvs, _)), Some(od)) = (&self.vae.discriminator, &mut self.opt_d) {
            ck.restore(dvs, "")?;
            od.load_state("d.", &get, ck.meta.optimizer_steps.get("adam_d").copied().unwrap_or(0))?;
        }
        self.step = ck.meta.step;
        self.elapsed_before = ck.meta.elapsed_s;
        Ok(())
    }

    /// One update on a fresh batch (and, for FactorVAE, the discriminator's update from the same pass).
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let x = self.driver.batch_with_replacement(self.step)?;
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        tch::manual_seed(step_seed(self.config.seed, self.step));
        let (out, d_loss) = vae_step(&self.vae, &mut self.opt, self.opt_d.as_mut(), &x, self.step)?;
        let mut extra = vec![
            ("reconstruction".to_string(), out.reconstruction.double_value(&[])),
            ("kl".to_string(), out.kl.double_value(&[])),
        ];
        extra.extend(out.parts.iter().map(|(k, v)| (k.to_string(), v.double_value(&[]))));
        if let Some(d) = d_loss {
            extra.push(("disc_loss".into(), d));
        }
        let lv = out.loss.double_value(&[]);
        check_finite(lv, self.step)?;
        self.step += 1;
        let log = StepLog {
            step: self.step,
            epoch: 0,
            loss: lv,
            extra,
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.total_steps())?;
        Ok(log)
    }

    /// Parameter updates of the whole run ([`crate::vae::VaeConfig::updates`]).
    pub fn total_steps(&self) -> usize {
        self.config.vae.updates()
    }

    pub fn save(&self) -> Result<PathBuf> {
        let mut meta = Meta::new(Vae::STAGE, &self.config);
        meta.step = self.step;
        meta.optimizer_steps.insert("adam".into(), self.opt.step);
        let mut opt = self.opt.state("");
        if let Some(od) = &self.opt_d {
            meta.optimizer_steps.insert("adam_d".into(), od.step);
            opt.extend(od.state("d."));
        }
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        checkpoint::save(&self.driver.stage_dir(), &meta, &self.vae.named_tensors(), &opt, self.config.vae.keep_last)
    }
}

impl Trainer for VaeTrainer {
    fn stage(&self) -> &str {
        Vae::STAGE
    }
    fn title(&self) -> &str {
        self.config.vae.objective.name()
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        VaeTrainer::total_steps(self)
    }
    fn checkpoint_every(&self) -> usize {
        self.config.vae.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        VaeTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        VaeTrainer::save(self)
    }
    fn history(&self) -> &History {
        &self.driver.history
    }
    fn describe(&self) -> String {
        let v = &self.config.vae;
        format!(
            "{}\ntraining `{}` on {} ({} images, batches of {} drawn with replacement, {} updates{})",
            crate::display::Show::to_text(&self.vae.summary()),
            self.config.name,
            self.config.data,
            self.driver.data.num_images(),
            v.batch_size,
            self.total_steps(),
            if self.total_steps() != v.steps {
                format!(" for {} steps, disentanglement_lib's count", v.steps)
            } else {
                String::new()
            }
        )
    }
}

/// The optimisers of a VAE: Adam (β 0.9, 0.999) over the encoder and decoder and, for FactorVAE, Adam (β 0.5, 0.9)
/// over the discriminator, both at `vae.lr`.
pub fn vae_optimizers(vae: &Vae) -> (AdamW, Option<AdamW>) {
    let lr = vae.config.vae.lr;
    (
        AdamW::new(&vae.vs, &[], lr, (0.9, 0.999), 0.0),
        vae.discriminator.as_ref().map(|(dvs, _)| AdamW::new(dvs, &[], lr, (0.5, 0.9), 0.0)),
    )
}

/// One update on a batch (images in [−1, 1]) at step `step`: the loss, backward, and for FactorVAE the
/// discriminator's loss on the same pass's codes (detached) and their column-wise permutation, backward, its update;
/// then the VAE's update. The trainer and `dydis bench vae-step` both run exactly this. Returns the loss parts and
/// the discriminator's loss.
pub fn vae_step(
    vae: &Vae,
    opt: &mut AdamW,
    opt_d: Option<&mut AdamW>,
    images: &tch::Tensor,
    step: usize,
) -> Result<(VaeLoss, Option<f64>)> {
    let out = vae.loss(images, step)?;
    opt.zero_grad();
    out.loss.backward();
    let mut d = None;
    if let (Some((_, disc)), Some(od)) = (&vae.discriminator, opt_d) {
        // The VAE's backward left gradients on the discriminator too: cleared before its own loss.
        let zd = out.z.detach();
        let d_loss = losses::discriminator_loss(&disc.forward(&zd), &disc.forward(&losses::shuffle_codes(&zd)));
        od.zero_grad();
        d_loss.backward();
        od.step();
        d = Some(d_loss.double_value(&[]));
    }
    opt.step();
    Ok((out, d))
}
