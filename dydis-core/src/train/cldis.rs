//! CL-Dis's trainers, one type over its four phases (docs/architecture.md, "CL-Dis"):
//! - `diffae` (P0): Adam over the semantic encoder and the noise predictor on L_diff, gradients clipped, EMA copy;
//! - `copilot` (P1): the co-pilot β-VAE alone at the fixed capacity C_dyn(T − 1) (the data's per-pixel variance,
//!   which the feedback reads, is measured when the phase starts);
//! - `loop` (P2): L_diff + λ_dt·L_dt for the Diff-AE and the co-pilot at C_dyn(t(k)), both optimisers each step;
//! - `nav` (P3, `dydis navigate`): the shift predictor on decoded pairs, everything else frozen.
//!
//! Each phase starts from the newest checkpoint of the one before and writes the whole model.
use super::trainer::{check_finite, open_data, step_seed, Driver};
use super::{History, StepLog, Trainer};
use crate::cldis::feedback::{curriculum_t, Feedback};
use crate::cldis::FeedbackTime;
use crate::model::cldis::ClDis;
use crate::nn::optim::{AdamW, Ema};
use crate::run::checkpoint::{self, Checkpoint, Meta};
use crate::run::config::RunConfig;
use crate::run::dir::RunDir;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// CL-Dis's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    DiffAe,
    Copilot,
    Loop,
    Navigation,
}

impl Phase {
    pub fn stage(self) -> &'static str {
        match self {
            Phase::DiffAe => ClDis::STAGES[0],
            Phase::Copilot => ClDis::STAGES[1],
            Phase::Loop => ClDis::STAGES[2],
            Phase::Navigation => ClDis::NAV_STAGE,
        }
    }

    pub fn from_stage(stage: &str) -> Result<Phase> {
        [Phase::DiffAe, Phase::Copilot, Phase::Loop, Phase::Navigation]
            .into_iter()
            .find(|p| p.stage() == stage)
            .ok_or_else(|| {
                Error::config("stage", format!("CL-Dis has the stages diffae, copilot, loop and nav, not '{stage}'"))
            })
    }

    fn previous(self) -> Option<Phase> {
        match self {
            Phase::DiffAe => None,
            Phase::Copilot => Some(Phase::DiffAe),
            Phase::Loop => Some(Phase::Copilot),
            Phase::Navigation => Some(Phase::Loop),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Phase::DiffAe => "Diff-AE (P0)",
            Phase::Copilot => "co-pilot β-VAE (P1)",
            Phase::Loop => "closed loop (P2)",
            Phase::Navigation => "navigation (P3)",
        }
    }

    /// The configured length of the phase.
    pub fn steps(self, config: &RunConfig) -> usize {
        let c = &config.cldis;
        match self {
            Phase::DiffAe => c.diffae_steps,
            Phase::Copilot => c.copilot.steps,
            Phase::Loop => c.loop_steps,
            Phase::Navigation => c.navigation.steps,
        }
    }

    /// A salt that gives each phase its own random streams.
    fn salt(self) -> u64 {
        match self {
            Phase::DiffAe => 0,
            Phase::Copilot => 0xc0_9170,
            Phase::Loop => 0x100b,
            Phase::Navigation => 0x4a71,
        }
    }
}

/// One phase of a CL-Dis run.
pub struct ClDisTrainer {
    pub model: ClDis,
    pub phase: Phase,
    /// The Diff-AE's optimiser (P0, P2), the co-pilot's (P1, P2), the predictor's (P3).
    opt_ae: AdamW,
    opt_vae: AdamW,
    opt_nav: AdamW,
    ema: Ema,
    feedback: Option<Feedback>,
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

/// A resumed or continued checkpoint must come from the same networks.
fn same_networks(a: &RunConfig, b: &RunConfig) -> bool {
    let (x, y) = (&a.cldis, &b.cldis);
    (x.image_size, x.channels, &x.diffae, x.copilot.latent, x.copilot.width, x.navigation.width)
        == (y.image_size, y.channels, &y.diffae, y.copilot.latent, y.copilot.width, y.navigation.width)
}

fn load_matching(path: PathBuf, config: &RunConfig) -> Result<Checkpoint> {
    let ck = checkpoint::load(&path)?;
    if same_networks(&ck.meta.config, config) {
        Ok(ck)
    } else {
        Err(Error::File { path, message: "was written for other CL-Dis networks: train into a new run folder".into() })
    }
}

impl ClDisTrainer {
    /// Phase `phase` of the run in `run_dir`: with `resume`, the phase's newest checkpoint continued; otherwise the
    /// model of the previous phase's newest checkpoint (an error without one), or fresh networks for P0.
    pub fn new(phase: Phase, config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let c = &config.cldis;
        let data = open_data(config)?;
        tch::manual_seed((config.seed ^ phase.salt()) as i64);
        let model = ClDis::new(config, device)?;
        let opt_ae = AdamW::new(&model.vs, &[], c.lr, (0.9, 0.999), 0.0);
        let opt_vae = AdamW::new(&model.vae_vs, &[], c.copilot.lr, (0.9, 0.999), 0.0);
        let opt_nav = AdamW::new(&model.nav_vs, &[], c.navigation.lr, (0.9, 0.999), 0.0);
        let dir = RunDir::new(run_dir);
        let batch = if phase == Phase::Navigation { c.navigation.batch_size } else { c.batch_size };
        let driver =
            Driver::new(data, batch, config.seed ^ phase.salt(), device, dir.clone(), c.log_every, phase.stage())?;
        let mut t = ClDisTrainer {
            model,
            phase,
            opt_ae,
            opt_vae,
            opt_nav,
            ema: Ema::new(c.ema_decay),
            feedback: None,
            step: 0,
            driver,
            elapsed_before: 0.0,
            config: config.clone(),
        };
        match (resume, dir.newest(phase.stage())?) {
            (true, Some((_, p))) => t.resume(&load_matching(p, config)?)?,
            _ => t.start_from_previous(&dir)?,
        }
        if phase != Phase::DiffAe {
            let fb = t.model.feedback()?;
            t.feedback = Some(fb);
        }
        t.driver.open_log(t.step)?;
        Ok(t)
    }

    fn resume(&mut self, ck: &Checkpoint) -> Result<()> {
        self.model.restore(ck)?;
        let get = |k: &str| ck.optimizer.get(k).map(|t| t.shallow_clone());
        let steps = |name: &str| ck.meta.optimizer_steps.get(name).copied().unwrap_or(0);
        match self.phase {
            Phase::DiffAe => self.opt_ae.load_state("diffae.", &get, steps("diffae"))?,
            Phase::Copilot => self.opt_vae.load_state("copilot.", &get, steps("copilot"))?,
            Phase::Loop => {
                self.opt_ae.load_state("diffae.", &get, steps("diffae"))?;
                self.opt_vae.load_state("copilot.", &get, steps("copilot"))?;
            }
            Phase::Navigation => self.opt_nav.load_state("nav.", &get, steps("nav"))?,
        }
        self.ema.num_updates = ck.meta.ema_updates;
        (self.step, self.elapsed_before) = (ck.meta.step, ck.meta.elapsed_s);
        Ok(())
    }

    /// Take the previous phase's model (and the EMA's update count, so its warm-up does not restart).
    fn start_from_previous(&mut self, dir: &RunDir) -> Result<()> {
        let Some(prev) = self.phase.previous() else { return Ok(()) };
        let (_, p) = dir.newest(prev.stage())?.ok_or_else(|| {
            Error::config(
                "stage",
                format!(
                    "the {} needs the {} first: no checkpoint in {}",
                    self.phase.title(),
                    prev.title(),
                    dir.stage(prev.stage()).display()
                ),
            )
        })?;
        let ck = load_matching(p, &self.config)?;
        self.model.restore(&ck)?;
        self.ema.num_updates = ck.meta.ema_updates;
        match self.phase {
            Phase::Copilot => {
                let x = self.driver.sample_images(self.config.cldis.feedback.variance_images, self.config.seed)?;
                self.model.set_pixel_variance(&x)?;
            }
            Phase::Navigation => {
                let x = self.driver.sample_images(self.config.cldis.feedback.variance_images, self.config.seed)?;
                self.model.set_code_stats(&x)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The feedback's capacity for this loop step (and the timestep that set it; −1 for the batch mean).
    fn capacity(&self, t: &Tensor) -> (f64, i64) {
        let fb = self.feedback.as_ref().expect("the feedback is set after P0");
        let c = &self.config.cldis;
        match (self.phase, c.feedback.time) {
            (Phase::Copilot, _) => (fb.at(c.timesteps - 1), (c.timesteps - 1) as i64),
            (_, FeedbackTime::Curriculum) => {
                let tk = curriculum_t(self.step, c.loop_steps, c.timesteps);
                (fb.at(tk), tk as i64)
            }
            (_, FeedbackTime::Batch) => {
                let ts = Vec::<i64>::try_from(t.to_device(Device::Cpu)).expect("a 1-d tensor");
                (fb.mean_over(&ts), -1)
            }
        }
    }

    /// Clip the Diff-AE's gradients (when configured), step its optimiser and the EMA; returns the norm.
    fn step_diffae(&mut self) -> f64 {
        let clip = self.config.cldis.grad_clip;
        let norm = if clip > 0.0 { self.opt_ae.clip_grad_norm(clip) } else { f64::NAN };
        self.opt_ae.step();
        self.ema.update(&self.model.ema_vs, &self.model.vs);
        norm
    }

    /// One optimisation step of the phase.
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let x = self.driver.batch_with_replacement(self.step)?;
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        tch::manual_seed(step_seed(self.config.seed ^ self.phase.salt(), self.step));
        let b = x.size()[0];
        let device = self.model.device;
        let t = self.model.schedule.sample_t(b, device);
        let noise = x.randn_like();
        let (loss, extra) = match self.phase {
            Phase::DiffAe => {
                let loss = self.model.diffusion_loss(&x, &t, &noise)?;
                self.opt_ae.zero_grad();
                loss.backward();
                let norm = self.step_diffae();
                (loss.double_value(&[]), vec![("grad_norm".to_string(), norm)])
            }
            Phase::Copilot => {
                let (c, _) = self.capacity(&t);
                let [loss, rec, kl] = self.model.copilot_loss(&x, c)?;
                self.opt_vae.zero_grad();
                loss.backward();
                self.opt_vae.step();
                let v = |t: &Tensor| t.double_value(&[]);
                (v(&loss), vec![("reconstruction".into(), v(&rec)), ("kl".into(), v(&kl)), ("c_dyn".into(), c)])
            }
            Phase::Loop => {
                let (c, tk) = self.capacity(&t);
                let l = self.model.loop_losses(&x, &t, &noise, c)?;
                let ae_loss = &l.diffusion + &l.distill * self.config.cldis.distill.weight;
                self.opt_ae.zero_grad();
                self.opt_vae.zero_grad();
                // The two objectives share no parameters (the teacher is detached in L_dt): one backward pass.
                (&ae_loss + &l.copilot[0]).backward();
                let norm = self.step_diffae();
                self.opt_vae.step();
                let v = |t: &Tensor| t.double_value(&[]);
                let extra = vec![
                    ("diffusion".into(), v(&l.diffusion)),
                    ("distill".into(), v(&l.distill)),
                    ("copilot".into(), v(&l.copilot[0])),
                    ("reconstruction".into(), v(&l.copilot[1])),
                    ("kl".into(), v(&l.copilot[2])),
                    ("c_dyn".into(), c),
                    ("t_feedback".into(), tk as f64),
                    ("grad_norm".into(), norm),
                ];
                (v(&ae_loss), extra)
            }
            Phase::Navigation => {
                let z = self.model.z_sem(&x, true)?;
                let k = Tensor::randint(self.config.cldis.diffae.z_sem, [b], (Kind::Int64, device));
                let shift = self.model.draw_shifts(b);
                let [loss, ce, err, acc] = self.model.navigation_loss(&z, &noise, &k, &shift, true);
                self.opt_nav.zero_grad();
                loss.backward();
                self.opt_nav.step();
                let v = |t: &Tensor| t.double_value(&[]);
                (
                    v(&loss),
                    vec![
                        ("cross_entropy".into(), v(&ce)),
                        ("shift_error".into(), v(&err)),
                        ("accuracy".into(), v(&acc)),
                    ],
                )
            }
        };
        check_finite(loss, self.step)?;
        self.step += 1;
        let log = StepLog {
            step: self.step,
            epoch: 0,
            loss,
            extra,
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.phase.steps(&self.config))?;
        Ok(log)
    }

    pub fn save(&self) -> Result<PathBuf> {
        if self.phase == Phase::Loop {
            // Every loop checkpoint carries the spread of its z_sem, the unit of traversals and navigation.
            self.model.set_code_stats(
                &self.driver.sample_images(self.config.cldis.feedback.variance_images, self.config.seed)?,
            )?;
        }
        let stage = self.phase.stage();
        let mut meta = Meta::new(stage, &self.config);
        meta.step = self.step;
        meta.ema_updates = self.ema.num_updates;
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        let mut opt = Vec::new();
        for (name, o) in [("diffae", &self.opt_ae), ("copilot", &self.opt_vae), ("nav", &self.opt_nav)] {
            meta.optimizer_steps.insert(name.into(), o.step);
            opt.extend(o.state(&format!("{name}.")));
        }
        if let Some(fb) = &self.feedback {
            meta.family = serde_json::json!({ "feedback_form": fb.form, "entropy_x0": fb.entropy_x0 });
        }
        checkpoint::save(
            &self.driver.stage_dir(),
            &meta,
            &self.model.named_tensors(),
            &opt,
            self.config.cldis.keep_last,
        )
    }
}

impl Trainer for ClDisTrainer {
    fn stage(&self) -> &str {
        self.phase.stage()
    }
    fn title(&self) -> &str {
        self.phase.title()
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        self.phase.steps(&self.config)
    }
    fn checkpoint_every(&self) -> usize {
        self.config.cldis.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        ClDisTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        ClDisTrainer::save(self)
    }
    fn history(&self) -> &History {
        &self.driver.history
    }
    fn describe(&self) -> String {
        let c = &self.config.cldis;
        let fb = match &self.feedback {
            Some(f) => {
                format!("; feedback form {:?}, C_dyn from {:.2} to {:.2}", f.form, f.at(c.timesteps - 1), f.at(0))
            }
            None => String::new(),
        };
        format!(
            "{}\ntraining the {} of `{}` on {} ({} images, batches drawn with replacement, {} steps{fb})",
            crate::display::Show::to_text(&self.model.summary()),
            self.phase.title(),
            self.config.name,
            self.config.data,
            self.driver.data.num_images(),
            self.phase.steps(&self.config),
        )
    }
}
