//! The Multi-β VAE's two trainers. Stage `mbvae`: Adam over the VAE, its β embedding and the learned schedule, each
//! example of a batch (drawn with replacement) at its own level t ~ U[0, 1]. Stage `denoiser`: the VAE frozen (from
//! the newest `mbvae` checkpoint), Adam over the denoiser with an EMA copy, steps i ~ U{1..N}.
use super::trainer::{check_finite, open_data, step_seed, Driver};
use super::{History, StepLog, Trainer};
use crate::model::multibeta::MultiBeta;
use crate::nn::optim::{AdamW, Ema};
use crate::run::checkpoint::{self, Meta};
use crate::run::config::RunConfig;
use crate::run::dir::RunDir;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Stage `mbvae`: the β-conditioned VAE.
pub struct MultiBetaVaeTrainer {
    pub model: MultiBeta,
    opt: AdamW,
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

/// A resumed checkpoint must come from the same networks.
fn same_networks(a: &RunConfig, b: &RunConfig) -> bool {
    let (x, y) = (&a.multibeta, &b.multibeta);
    (
        x.image_size,
        x.channels,
        x.latent,
        x.t_embed,
        x.embed_width,
        x.denoiser.width,
        x.denoiser.depth,
        x.denoiser.t_embed,
    ) == (
        y.image_size,
        y.channels,
        y.latent,
        y.t_embed,
        y.embed_width,
        y.denoiser.width,
        y.denoiser.depth,
        y.denoiser.t_embed,
    )
}

fn refuse(path: PathBuf) -> Error {
    Error::File { path, message: "was written for another model configuration: train into a new run folder".into() }
}

/// A checkpoint of this configuration's networks (refused, naming it, otherwise).
fn load_matching(path: PathBuf, config: &RunConfig) -> Result<checkpoint::Checkpoint> {
    let ck = checkpoint::load(&path)?;
    if same_networks(&ck.meta.config, config) {
        Ok(ck)
    } else {
        Err(refuse(path))
    }
}

/// Continue a stage from its checkpoint: the model's variables, the optimiser's state; returns (step, seconds).
fn resume_stage(ck: &checkpoint::Checkpoint, model: &mut MultiBeta, opt: &mut AdamW) -> Result<(usize, f64)> {
    model.restore(ck)?;
    let get = |k: &str| ck.optimizer.get(k).map(|t| t.shallow_clone());
    opt.load_state("", &get, ck.meta.optimizer_steps.get("adam").copied().unwrap_or(0))?;
    Ok((ck.meta.step, ck.meta.elapsed_s))
}

impl MultiBetaVaeTrainer {
    pub fn new(config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let m = &config.multibeta;
        let data = open_data(config)?;
        tch::manual_seed(config.seed as i64);
        let model = MultiBeta::new(config, device)?;
        let opt = AdamW::new(&model.vs, &[], m.lr, (0.9, 0.999), 0.0);
        let dir = RunDir::new(run_dir);
        let stage = MultiBeta::STAGES[0];
        let resume_from = if resume { dir.newest(stage)? } else { None };
        let driver = Driver::new(data, m.batch_size, config.seed, device, dir, m.log_every, stage)?;
        let mut t = MultiBetaVaeTrainer { model, opt, step: 0, driver, elapsed_before: 0.0, config: config.clone() };
        if let Some((_, p)) = resume_from {
            (t.step, t.elapsed_before) = resume_stage(&load_matching(p, config)?, &mut t.model, &mut t.opt)?;
        }
        t.driver.open_log(t.step)?;
        Ok(t)
    }

    /// One update: each example at its own level t ~ U[0, 1]; logs R, KL, the mean β and σ_t at t = 0, ½, 1 (the
    /// learned schedule).
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let x = self.driver.batch_with_replacement(self.step)?;
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        tch::manual_seed(step_seed(self.config.seed, self.step));
        let t = Tensor::rand([x.size()[0]], (Kind::Float, self.model.device));
        let out = self.model.stage1_loss(&x, &t)?;
        self.opt.zero_grad();
        out.loss.backward();
        self.opt.step();
        let lv = out.loss.double_value(&[]);
        check_finite(lv, self.step)?;
        self.step += 1;
        let sig = tch::no_grad(|| {
            self.model.sigma2(&Tensor::from_slice(&[0f32, 0.5, 1.0]).to_device(self.model.device)).sqrt()
        });
        let log = StepLog {
            step: self.step,
            epoch: 0,
            loss: lv,
            extra: vec![
                ("reconstruction".into(), out.reconstruction.double_value(&[])),
                ("kl".into(), out.kl.double_value(&[])),
                ("beta_mean".into(), self.model.beta(&t).mean(Kind::Float).double_value(&[])),
                ("sigma_t0".into(), sig.double_value(&[0])),
                ("sigma_t0.5".into(), sig.double_value(&[1])),
                ("sigma_t1".into(), sig.double_value(&[2])),
            ],
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.config.multibeta.steps)?;
        Ok(log)
    }

    pub fn save(&self) -> Result<PathBuf> {
        let stage = MultiBeta::STAGES[0];
        let mut meta = Meta::new(stage, &self.config);
        meta.step = self.step;
        meta.optimizer_steps.insert("adam".into(), self.opt.step);
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        let m = &self.config.multibeta;
        checkpoint::save(
            &self.driver.stage_dir(),
            &meta,
            &self.model.named_tensors(stage),
            &self.opt.state(""),
            m.keep_last,
        )
    }
}

impl Trainer for MultiBetaVaeTrainer {
    fn stage(&self) -> &str {
        MultiBeta::STAGES[0]
    }
    fn title(&self) -> &str {
        "β-conditioned VAE"
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        self.config.multibeta.steps
    }
    fn checkpoint_every(&self) -> usize {
        self.config.multibeta.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        MultiBetaVaeTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        MultiBetaVaeTrainer::save(self)
    }
    fn history(&self) -> &History {
        &self.driver.history
    }
    fn describe(&self) -> String {
        let m = &self.config.multibeta;
        format!(
            "{}\ntraining `{}` (β-conditioned VAE) on {} ({} images, batches of {} drawn with replacement, {} steps)",
            crate::display::Show::to_text(&self.model.summary()),
            self.config.name,
            self.config.data,
            self.driver.data.num_images(),
            m.batch_size,
            m.steps
        )
    }
}

/// Stage `denoiser`: the denoiser over β, the VAE frozen.
pub struct DenoiserTrainer {
    pub model: MultiBeta,
    opt: AdamW,
    ema: Ema,
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

impl DenoiserTrainer {
    /// The second stage of a run in `run_dir`: the VAE from the newest `mbvae` checkpoint (an error without one), or
    /// with `resume` the newest `denoiser` checkpoint continued.
    pub fn new(config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let d = &config.multibeta.denoiser;
        let data = open_data(config)?;
        tch::manual_seed(config.seed as i64 ^ 0x0d3_0153);
        let model = MultiBeta::new(config, device)?;
        let opt = AdamW::new(&model.den_vs, &[], d.lr, (0.9, 0.999), 0.0);
        let dir = RunDir::new(run_dir);
        let (first, stage) = (MultiBeta::STAGES[0], MultiBeta::STAGES[1]);
        let resume_from = if resume { dir.newest(stage)? } else { None };
        let driver = Driver::new(data, d.batch_size, config.seed ^ 0xd3_0153, device, dir.clone(), d.log_every, stage)?;
        let mut t = DenoiserTrainer {
            model,
            opt,
            ema: Ema::new(d.ema_decay),
            step: 0,
            driver,
            elapsed_before: 0.0,
            config: config.clone(),
        };
        match resume_from {
            Some((_, p)) => {
                let ck = load_matching(p, config)?;
                (t.step, t.elapsed_before) = resume_stage(&ck, &mut t.model, &mut t.opt)?;
                t.ema.num_updates = ck.meta.ema_updates;
            }
            None => {
                let (_, p) = dir.newest(first)?.ok_or_else(|| {
                    Error::config(
                        "stage",
                        format!("the denoiser needs a trained VAE: no checkpoint in {}", dir.stage(first).display()),
                    )
                })?;
                load_matching(p, config)?.restore(&t.model.vs, "")?;
                t.set_start_distribution()?;
            }
        }
        t.driver.open_log(t.step)?;
        Ok(t)
    }

    /// The start distribution from a seeded sample of the training images (without replacement).
    fn set_start_distribution(&mut self) -> Result<()> {
        let x = self.driver.sample_images(self.config.multibeta.denoiser.start_stat_images, self.config.seed)?;
        self.model.set_start_distribution(&x)
    }

    /// One update of the denoiser at steps i ~ U{1..N} (and its EMA copy).
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let x = self.driver.batch_with_replacement(self.step)?;
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        tch::manual_seed(step_seed(self.config.seed ^ 0xd3_0153, self.step));
        let b = x.size()[0];
        let n = self.config.multibeta.denoiser.sampler_steps as i64;
        let i = Tensor::randint_low(1, n + 1, [b], (Kind::Int64, self.model.device));
        let eps = Tensor::randn([b, self.config.multibeta.latent], (Kind::Float, self.model.device));
        let (loss, e, v) = self.model.denoiser_loss(&x, &i, &eps, false)?;
        self.opt.zero_grad();
        loss.backward();
        self.opt.step();
        self.ema.update(&self.model.ema_vs, &self.model.den_vs);
        let lv = loss.double_value(&[]);
        check_finite(lv, self.step)?;
        self.step += 1;
        let log = StepLog {
            step: self.step,
            epoch: 0,
            loss: lv,
            extra: vec![("eps".into(), e.double_value(&[])), ("delta_rate".into(), v.double_value(&[]))],
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.config.multibeta.denoiser.steps)?;
        Ok(log)
    }

    pub fn save(&self) -> Result<PathBuf> {
        let stage = MultiBeta::STAGES[1];
        let mut meta = Meta::new(stage, &self.config);
        meta.step = self.step;
        meta.ema_updates = self.ema.num_updates;
        meta.optimizer_steps.insert("adam".into(), self.opt.step);
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        let d = &self.config.multibeta.denoiser;
        checkpoint::save(
            &self.driver.stage_dir(),
            &meta,
            &self.model.named_tensors(stage),
            &self.opt.state(""),
            d.keep_last,
        )
    }
}

impl Trainer for DenoiserTrainer {
    fn stage(&self) -> &str {
        MultiBeta::STAGES[1]
    }
    fn title(&self) -> &str {
        "denoiser over β"
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        self.config.multibeta.denoiser.steps
    }
    fn checkpoint_every(&self) -> usize {
        self.config.multibeta.denoiser.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        DenoiserTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        DenoiserTrainer::save(self)
    }
    fn history(&self) -> &History {
        &self.driver.history
    }
    fn describe(&self) -> String {
        let d = &self.config.multibeta.denoiser;
        format!(
            "training the denoiser over β of `{}` on {} (VAE frozen; batches of {}, {} steps, N = {})",
            self.config.name, self.config.data, d.batch_size, d.steps, d.sampler_steps
        )
    }
}
