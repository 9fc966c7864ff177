use super::{run_stage, Trainer};
use crate::data::{self, ImageSource};
use crate::display::{impl_show_via, line_plot, Series, Svg};
use crate::model::{restore_ldm, Autoencoder, Ldm, LossParts};
use crate::nn::autoencoder::{adaptive_weight, hinge_d_loss};
use crate::nn::optim::{AdamW, Ema};
use crate::run::checkpoint::{self, Meta};
use crate::run::config::{MethodKind, RunConfig};
use crate::run::dir::RunDir;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn::ModuleT, Device, Kind, Tensor};

/// One optimisation step, as logged (one JSON line per step in `<stage>/log.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    /// Further named values (AE: rec, codebook, g, d, d_weight; LDM: units_mean).
    #[serde(default)]
    pub extra: Vec<(String, f64)>,
    pub data_ms: f64,
    pub step_ms: f64,
}

/// The log of a stage so far; shows itself as a training curve.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub stage: String,
    pub steps: Vec<StepLog>,
}

impl History {
    /// Read a `log.jsonl`.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(path, false)
    }

    /// Read a `log.jsonl` to continue it: a last line cut short (the process was killed mid-write) is dropped with
    /// a note; an unreadable line before it is an error naming it.
    pub fn read_for_resume(path: &Path) -> Result<Self> {
        Self::parse(path, true)
    }

    fn parse(path: &Path, drop_cut_last: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut steps = Vec::with_capacity(lines.len());
        for (i, l) in lines.iter().enumerate() {
            match serde_json::from_str(l) {
                Ok(s) => steps.push(s),
                Err(e) if drop_cut_last && i + 1 == lines.len() => {
                    eprintln!("note: {}: dropping its last line, cut short ({e})", path.display())
                }
                Err(e) => return Err(Error::File { path: path.into(), message: format!("line {}: {e}", i + 1) }),
            }
        }
        let stage =
            path.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        Ok(History { stage, steps })
    }

    /// Loss per step and its running mean over `window` steps.
    pub fn curve(&self) -> Result<Svg> {
        let raw: Vec<(f64, f64)> = self.steps.iter().map(|s| (s.step as f64, s.loss)).collect();
        let w = (self.steps.len() / 20).clamp(1, 100);
        let smooth: Vec<(f64, f64)> = raw
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| {
                let lo = i.saturating_sub(w - 1);
                (x, raw[lo..=i].iter().map(|p| p.1).sum::<f64>() / (i + 1 - lo) as f64)
            })
            .collect();
        line_plot(
            &format!("{} training loss", self.stage),
            "step",
            "loss",
            &[Series::new("loss", raw), Series::new(format!("mean of {w}"), smooth)],
        )
    }

    pub fn last_loss(&self, window: usize) -> Option<f64> {
        let n = self.steps.len();
        (n > 0).then(|| {
            let s = &self.steps[n.saturating_sub(window)..];
            s.iter().map(|x| x.loss).sum::<f64>() / s.len() as f64
        })
    }

    fn curve_or_note(&self) -> CurveOrNote {
        CurveOrNote(self.curve().ok())
    }
}

struct CurveOrNote(Option<Svg>);
impl crate::display::Show for CurveOrNote {
    fn to_html(&self) -> String {
        self.0.as_ref().map(|s| s.to_html()).unwrap_or_else(|| "<p>no steps yet</p>".into())
    }
    fn to_text(&self) -> String {
        self.0.as_ref().map(|s| s.to_text()).unwrap_or_else(|| "no steps yet".into())
    }
}
impl_show_via!(History, curve_or_note);

/// How a training run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub steps_done: usize,
    pub interrupted: bool,
    pub checkpoint: Option<PathBuf>,
    pub seconds: f64,
    pub final_loss: Option<f64>,
}

/// The seeded data order, logging and progress shared by every trainer.
pub(super) struct Driver {
    pub(super) data: Arc<dyn ImageSource>,
    batch_size: usize,
    seed: u64,
    order_epoch: Option<usize>,
    order: Vec<usize>,
    device: Device,
    pub(super) run: RunDir,
    log: Option<std::fs::File>,
    pub(super) history: History,
    log_every: usize,
    pub(super) started: Instant,
    tty: bool,
}

/// The torch seed of step `step`: every step draws its noise from its own stream, so a resumed run continues
/// exactly as an uninterrupted one would.
pub(super) fn step_seed(seed: u64, step: usize) -> i64 {
    let mut x = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 1) as i64
}

impl Driver {
    pub(super) fn new(
        data: Arc<dyn ImageSource>,
        batch_size: usize,
        seed: u64,
        device: Device,
        run: RunDir,
        log_every: usize,
        stage: &str,
    ) -> Result<Self> {
        if data.num_images() == 0 {
            return Err(Error::config("data", format!("{} has no images", data.source_name())));
        }
        Ok(Driver {
            data,
            batch_size,
            seed,
            order_epoch: None,
            order: vec![],
            device,
            run,
            log: None,
            history: History { stage: stage.into(), steps: vec![] },
            log_every,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        })
    }

    pub(super) fn steps_per_epoch(&self) -> usize {
        self.data.num_images().div_ceil(self.batch_size)
    }

    pub(super) fn stage_dir(&self) -> PathBuf {
        self.run.stage(&self.history.stage)
    }

    /// The images of step `step` drawn uniformly with replacement from the step's own seeded stream
    /// (disentanglement_lib's infinite data stream; resumable at any step).
    pub(super) fn batch_with_replacement(&mut self, step: usize) -> Result<Tensor> {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(self.seed ^ 0x5eed_da7a, step) as u64);
        let n = self.data.num_images();
        let idx: Vec<usize> = (0..self.batch_size).map(|_| rng.random_range(0..n)).collect();
        self.data.images(&idx, self.device)
    }

    /// `n` training images drawn without replacement with `seed` (for statistics a stage measures when it starts).
    pub(super) fn sample_images(&self, n: usize, seed: u64) -> Result<Tensor> {
        let idx = data::shuffled_subset(self.data.num_images(), n, seed);
        let parts = idx.chunks(256).map(|c| self.data.images(c, self.device)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0))
    }

    /// The images of step `step` (epoch-wise reshuffled, seeded).
    fn batch(&mut self, step: usize) -> Result<(usize, Tensor)> {
        let spe = self.steps_per_epoch();
        let (epoch, pos) = (step / spe, step % spe);
        if self.order_epoch != Some(epoch) {
            let mut order: Vec<usize> = (0..self.data.num_images()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(1_000_003 * epoch as u64)));
            self.order = order;
            self.order_epoch = Some(epoch);
        }
        let end = ((pos + 1) * self.batch_size).min(self.order.len());
        let idx = &self.order[pos * self.batch_size..end];
        Ok((epoch, self.data.images(idx, self.device)?))
    }

    pub(super) fn open_log(&mut self, truncate_after: usize) -> Result<()> {
        let dir = self.stage_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = self.run.log(&self.history.stage);
        // On resume keep the lines up to the checkpoint's step and drop any written after it.
        if path.exists() {
            let h = History::read_for_resume(&path)?;
            self.history.steps = h.steps.into_iter().filter(|s| s.step <= truncate_after).collect();
        }
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        for s in &self.history.steps {
            writeln!(f, "{}", serde_json::to_string(s).expect("log line")).map_err(|e| Error::io(&path, e))?;
        }
        self.log = Some(f);
        Ok(())
    }

    pub(super) fn record(&mut self, s: StepLog, total: usize) -> Result<()> {
        if let Some(f) = &mut self.log {
            writeln!(f, "{}", serde_json::to_string(&s).expect("log line"))
                .map_err(|e| Error::io(self.run.log(&self.history.stage), e))?;
        }
        let step = s.step;
        self.history.steps.push(s);
        let recent = self.history.last_loss(self.log_every).unwrap_or(f64::NAN);
        let ms = {
            let n = self.history.steps.len().min(self.log_every);
            self.history.steps[self.history.steps.len() - n..].iter().map(|s| s.step_ms + s.data_ms).sum::<f64>()
                / n as f64
        };
        let eta = (total.saturating_sub(step)) as f64 * ms / 1000.0;
        if self.tty {
            let width = 30;
            let filled = (step * width / total.max(1)).min(width);
            eprint!(
                "\r[{}{}] {}/{} loss {:.4} {:.0} ms/step eta {:.0}s   ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                step,
                total,
                recent,
                ms,
                eta
            );
        }
        if step % self.log_every == 0 || step == total {
            if self.tty {
                eprintln!();
            }
            let last = self.history.steps.last().expect("just pushed");
            let extra: String = last.extra.iter().map(|(k, v)| format!(" {k} {v:.4}")).collect();
            println!(
                "[{}] step {step}/{total} epoch {} loss {:.4} (mean of last {}: {recent:.4}){extra} {ms:.0} ms/step, eta {:.0} s",
                self.history.stage,
                last.epoch,
                last.loss,
                self.log_every.min(self.history.steps.len()),
                eta
            );
        }
        Ok(())
    }
}

pub(super) fn check_finite(loss: f64, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(Error::config(
            "training",
            format!("the loss became {loss} at step {step}; the last checkpoint is kept (try a lower lr)"),
        ))
    }
}

/// The run's images at its model's size, refused (naming the settings) when their shape does not fit the family:
/// the LDM takes 1 or 3 channels, a VAE exactly `vae.channels`.
pub(super) fn open_data(config: &RunConfig) -> Result<Arc<dyn ImageSource>> {
    let want = config.image_size() as usize;
    let ds = data::open_images(&config.data, want)?;
    let s = ds.shape();
    let (channels_fit, settings) = match config.method {
        MethodKind::Ldm => (s.channels == 3 || s.channels == 1, format!("model.image_size is {want}")),
        MethodKind::Vae => (
            s.channels as i64 == config.vae.channels,
            format!("vae.channels is {} and vae.image_size {want}", config.vae.channels),
        ),
        MethodKind::MultiBeta => (
            s.channels as i64 == config.multibeta.channels,
            format!("multibeta.channels is {} and multibeta.image_size {want}", config.multibeta.channels),
        ),
        MethodKind::ClDis => (
            s.channels as i64 == config.cldis.channels,
            format!("cldis.channels is {} and cldis.image_size {want}", config.cldis.channels),
        ),
    };
    if s.height != want || s.width != want || !channels_fit {
        return Err(Error::config(
            "data",
            format!(
                "{} has {}x{}x{} images; {settings} (use a dataset spec with @{want})",
                ds.source_name(),
                s.channels,
                s.height,
                s.width
            ),
        ));
    }
    Ok(ds)
}

/// A perceptual distance per image pair `(x, x̂) -> [B]`.
pub type PerceptualTerm = Box<dyn Fn(&Tensor, &Tensor) -> Tensor + Send>;

/// Trains the VQ first stage (docs/architecture.md, without LPIPS): L1 reconstruction + codebook loss + the
/// adaptively weighted hinge GAN loss from `disc_start`.
pub struct AeTrainer {
    pub model: Autoencoder,
    /// A perceptual distance per image pair `(x, x̂) -> [B]` (for example LPIPS with weights you supply), added to
    /// the L1 reconstruction term with `ae.perceptual_weight`, as taming's loss does.
    pub perceptual: Option<PerceptualTerm>,
    opt_g: AdamW,
    opt_d: AdamW,
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

impl AeTrainer {
    /// A new run writing to `run_dir/ae` (an existing checkpoint there is resumed when `resume`).
    pub fn new(config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let data = open_data(config)?;
        // Initial weights come from the run's seed.
        tch::manual_seed(config.seed as i64);
        let model = Autoencoder::new(config, device)?;
        let a = &config.ae;
        let opt_g = AdamW::new(&model.vs, &["first_stage."], a.lr, a.betas, 0.0);
        let opt_d = AdamW::new(&model.vs, &["disc."], a.lr, a.betas, 0.0);
        let dir = RunDir::new(run_dir);
        let driver = Driver::new(data, a.batch_size, config.seed, device, dir.clone(), a.log_every, "ae")?;
        let mut t = AeTrainer {
            model,
            perceptual: None,
            opt_g,
            opt_d,
            step: 0,
            driver,
            elapsed_before: 0.0,
            config: config.clone(),
        };
        if resume {
            if let Some((_, p)) = dir.newest("ae")? {
                let ck = checkpoint::load(&p)?;
                if ck.meta.config.model != config.model {
                    return Err(Error::File {
                        path: p,
                        message: "was written for another model configuration; use a new run name".into(),
                    });
                }
                ck.restore(&t.model.vs, "")?;
                let get = |k: &str| ck.optimizer.get(k).map(|t| t.shallow_clone());
                t.opt_g.load_state("g.", &get, ck.meta.optimizer_steps.get("g").copied().unwrap_or(0))?;
                t.opt_d.load_state("d.", &get, ck.meta.optimizer_steps.get("d").copied().unwrap_or(0))?;
                t.step = ck.meta.step;
                t.elapsed_before = ck.meta.elapsed_s;
            }
        }
        t.driver.open_log(t.step)?;
        Ok(t)
    }

    pub fn total_steps(&self) -> usize {
        self.config.ae.steps
    }

    pub fn history(&self) -> &History {
        &self.driver.history
    }

    /// One generator and one discriminator update.
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let (epoch, x) = self.driver.batch(self.step)?;
        let x = if x.size()[1] == 1 { x.repeat([1, 3, 1, 1]) } else { x };
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        tch::manual_seed(step_seed(self.config.seed, self.step));
        let a = &self.config.ae;
        let m = &self.model;
        let (xrec, qloss) = m.vq.forward(&x);
        let mut rec = (&x - &xrec).abs().mean(Kind::Float);
        if let Some(p) = &self.perceptual {
            rec += p(&x, &xrec).mean(Kind::Float) * a.perceptual_weight;
        }
        let gan_on = self.step >= a.disc_start;
        let (loss, g_val, dw_val) = if gan_on {
            let g = -m.disc.forward_t(&xrec, true).mean(Kind::Float);
            let dw = adaptive_weight(&rec, &g, m.vq.last_layer(), a.disc_weight);
            let dwv = dw.double_value(&[]);
            (&rec + dw * &g + &qloss * a.codebook_weight, g.double_value(&[]), dwv)
        } else {
            (&rec + &qloss * a.codebook_weight, 0.0, 0.0)
        };
        self.opt_g.zero_grad();
        loss.backward();
        self.opt_g.step();
        let d_val = if gan_on {
            let real = m.disc.forward_t(&x.detach(), true);
            let fake = m.disc.forward_t(&xrec.detach(), true);
            let d = hinge_d_loss(&real, &fake);
            self.opt_d.zero_grad();
            d.backward();
            self.opt_d.step();
            d.double_value(&[])
        } else {
            0.0
        };
        let lv = loss.double_value(&[]);
        check_finite(lv, self.step)?;
        self.step += 1;
        let log = StepLog {
            step: self.step,
            epoch,
            loss: lv,
            extra: vec![
                ("rec".into(), rec.double_value(&[])),
                ("codebook".into(), qloss.double_value(&[])),
                ("g".into(), g_val),
                ("d_weight".into(), dw_val),
                ("d".into(), d_val),
            ],
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.total_steps())?;
        Ok(log)
    }

    pub fn save(&self) -> Result<PathBuf> {
        let mut meta = Meta::new("ae", &self.config);
        meta.step = self.step;
        meta.epoch = self.step / self.driver.steps_per_epoch();
        meta.optimizer_steps.insert("g".into(), self.opt_g.step);
        meta.optimizer_steps.insert("d".into(), self.opt_d.step);
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        let mut opt = self.opt_g.state("g.");
        opt.extend(self.opt_d.state("d."));
        checkpoint::save(
            &self.driver.stage_dir(),
            &meta,
            &checkpoint::named(&self.model.vs, ""),
            &opt,
            self.config.train.keep_last,
        )
    }

    /// Train to the configured number of steps (or `max_steps` more), then save.
    pub fn run(&mut self, max_steps: Option<usize>) -> Result<Outcome> {
        run_stage(self, max_steps)
    }
}

/// The LDM's optimiser (AdamW with PyTorch's default betas over the extractor and the U-Net) and the EMA of the
/// U-Net, as `train` configures them.
pub fn ldm_optimizers(ldm: &Ldm, config: &RunConfig) -> (AdamW, Ema) {
    let t = &config.train;
    (AdamW::new(&ldm.vs, &[], t.lr, (0.9, 0.999), t.weight_decay), Ema::new(t.ema_decay))
}

/// One optimisation step of the LDM on a batch: the diffusion loss, backward, AdamW, then the EMA of the U-Net.
/// The trainer's step and the training-step benchmark both run exactly this.
pub fn ldm_step(ldm: &Ldm, opt: &mut AdamW, ema: &mut Ema, images: &Tensor) -> Result<LossParts> {
    let parts = ldm.loss(images, true)?;
    opt.zero_grad();
    parts.loss.backward();
    opt.step();
    ema.update(&ldm.ema_vs, &ldm.vs);
    Ok(parts)
}

/// Trains the extractor and the U-Net with the diffusion loss (first stage frozen), AdamW, EMA of the U-Net.
pub struct LdmTrainer {
    pub ldm: Ldm,
    opt: AdamW,
    ema: Ema,
    pub step: usize,
    driver: Driver,
    elapsed_before: f64,
    pub config: RunConfig,
}

impl LdmTrainer {
    /// A run writing to `run_dir/ldm`. A VQ first stage is loaded from `run_dir/ae` (train it first). With `resume`,
    /// the newest checkpoint in `run_dir/ldm` is continued.
    pub fn new(config: &RunConfig, device: Device, run_dir: &Path, resume: bool) -> Result<Self> {
        crate::device::tune_allocator();
        let data = open_data(config)?;
        tch::manual_seed(config.seed as i64);
        let mut ldm = Ldm::new(config, device)?;
        let t = &config.train;
        let (opt, ema) = ldm_optimizers(&ldm, config);
        let dir = RunDir::new(run_dir);
        let resume_from = if resume { dir.newest("ldm")? } else { None };
        if resume_from.is_none() && config.vq().is_some() {
            let (_, p) = dir.newest("ae")?.ok_or_else(|| Error::File {
                path: dir.stage("ae"),
                message: "no first-stage checkpoint: run `dydis train-ae` with this config first".into(),
            })?;
            ldm.load_first_stage(&checkpoint::load(&p)?)?;
        }
        let driver = Driver::new(data, t.batch_size, config.seed, device, dir, t.log_every, "ldm")?;
        let mut tr = LdmTrainer { ldm, opt, ema, step: 0, driver, elapsed_before: 0.0, config: config.clone() };
        if let Some((_, p)) = resume_from {
            let ck = checkpoint::load(&p)?;
            if ck.meta.config.model != config.model {
                return Err(Error::File {
                    path: p,
                    message: "was written for another model configuration; use a new run name".into(),
                });
            }
            tr.restore(&ck)?;
        }
        tr.driver.open_log(tr.step)?;
        Ok(tr)
    }

    fn restore(&mut self, ck: &checkpoint::Checkpoint) -> Result<()> {
        restore_ldm(&mut self.ldm, ck)?;
        let get = |k: &str| ck.optimizer.get(k).map(|t| t.shallow_clone());
        self.opt.load_state("", &get, ck.meta.optimizer_steps.get("adamw").copied().unwrap_or(0))?;
        self.ema.num_updates = ck.meta.ema_updates;
        self.step = ck.meta.step;
        self.elapsed_before = ck.meta.elapsed_s;
        Ok(())
    }

    pub fn total_steps(&self) -> usize {
        let t = &self.config.train;
        t.steps.unwrap_or_else(|| t.epochs.unwrap_or(1) * self.driver.steps_per_epoch())
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.driver.steps_per_epoch()
    }

    pub fn history(&self) -> &History {
        &self.driver.history
    }

    pub fn data(&self) -> Arc<dyn ImageSource> {
        self.driver.data.clone()
    }

    /// One AdamW step on the next batch, then the EMA update.
    pub fn train_step(&mut self) -> Result<StepLog> {
        let t0 = Instant::now();
        let (epoch, x) = self.driver.batch(self.step)?;
        let data_ms = t0.elapsed().as_secs_f64() * 1e3;
        if self.step == 0 && self.config.train.scale_by_std {
            self.ldm.fit_scale(&x)?;
        }
        tch::manual_seed(step_seed(self.config.seed, self.step));
        let parts = ldm_step(&self.ldm, &mut self.opt, &mut self.ema, &x)?;
        let lv = parts.loss.double_value(&[]);
        check_finite(lv, self.step)?;
        self.step += 1;
        let spe = self.driver.steps_per_epoch();
        let d = &self.config.dyga;
        if d.enabled && self.step % spe == 0 {
            let epochs_done = self.step / spe;
            if epochs_done >= d.refit_every && epochs_done % d.refit_every == 0 {
                self.refit_anchors(epochs_done)?;
            }
        }
        let u = parts.units.detach();
        let log = StepLog {
            step: self.step,
            epoch,
            loss: lv,
            extra: vec![
                ("units_mean".into(), u.mean(Kind::Float).double_value(&[])),
                ("units_zero_frac".into(), u.eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])),
                ("shift_mean".into(), parts.align.shift_mean),
                ("shift_std".into(), parts.align.shift_std),
                ("delta_mean".into(), parts.align.delta_mean),
                ("delta_std".into(), parts.align.delta_std),
            ],
            data_ms,
            step_ms: t0.elapsed().as_secs_f64() * 1e3 - data_ms,
        };
        self.driver.record(log.clone(), self.total_steps())?;
        Ok(log)
    }

    /// Refit the DyGA anchors from the extractor's eval-mode features over the dataset (or a seeded subsample).
    pub fn refit_anchors(&mut self, epoch: usize) -> Result<()> {
        let t0 = Instant::now();
        let n = self.driver.data.num_images();
        let idx: Vec<usize> = match self.config.dyga.collect {
            Some(m) if m < n => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ (epoch as u64 + 17));
                rand::seq::index::sample(&mut rng, n, m).into_vec()
            }
            _ => (0..n).collect(),
        };
        let feats = self.ldm.collect_units(self.driver.data.as_ref(), &idx, self.config.train.batch_size.max(64))?;
        let anchors =
            match crate::dyga::fit_units(&feats, &self.config.dyga, self.config.seed.wrapping_add(epoch as u64), epoch)
            {
                Ok(a) => a,
                Err(e) => {
                    // Keep what the fit saw, so the failure can be reproduced (`dyga::fit_units` on the saved tensor).
                    let path = self.driver.stage_dir().join(format!("refit-failed-epoch-{epoch}.pt"));
                    let saved = feats
                        .to_device(Device::Cpu)
                        .save(&path)
                        .map(|_| format!("; its features [n, N, D] are saved in {}", path.display()))
                        .unwrap_or_default();
                    return Err(Error::failed(format!("the anchor refit after epoch {epoch}"), format!("{e}{saved}")));
                }
            };
        let record = crate::dyga::RefitRecord::of(&anchors, self.step, idx.len());
        println!(
            "[dyga] epoch {epoch}: anchors refit on {} features in {:.1} s (collect {:.1} s); K per unit {:?}",
            idx.len(),
            t0.elapsed().as_secs_f64(),
            t0.elapsed().as_secs_f64() - anchors.seconds,
            record.k
        );
        let line = serde_json::to_string(&record).map_err(|e| Error::json("the refit record", e))?;
        let path = self.driver.run.anchors_log("ldm");
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io(&path, e))?;
        self.ldm.anchors = Some(anchors.to_device(self.ldm.device));
        Ok(())
    }

    pub fn save(&self) -> Result<PathBuf> {
        let mut meta = Meta::new("ldm", &self.config);
        meta.step = self.step;
        meta.epoch = self.step / self.driver.steps_per_epoch();
        meta.scale_factor = self.ldm.scale_factor;
        meta.ema_updates = self.ema.num_updates;
        meta.optimizer_steps.insert("adamw".into(), self.opt.step);
        meta.elapsed_s = self.elapsed_before + self.driver.started.elapsed().as_secs_f64();
        let mut tensors = checkpoint::named(&self.ldm.vs, "");
        tensors.extend(checkpoint::named(&self.ldm.ema_vs, "ema."));
        tensors.extend(checkpoint::named(&self.ldm.fs_vs, ""));
        if let Some(a) = &self.ldm.anchors {
            let (t, j) = a.to_checkpoint();
            tensors.extend(t);
            meta.dyga = j;
        }
        checkpoint::save(&self.driver.stage_dir(), &meta, &tensors, &self.opt.state(""), self.config.train.keep_last)
    }

    /// Train to the configured length (or `max_steps` more), checkpointing on the way and at the end.
    pub fn run(&mut self, max_steps: Option<usize>) -> Result<Outcome> {
        run_stage(self, max_steps)
    }
}

impl Trainer for AeTrainer {
    fn stage(&self) -> &str {
        "ae"
    }
    fn title(&self) -> &str {
        "first stage"
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        AeTrainer::total_steps(self)
    }
    fn checkpoint_every(&self) -> usize {
        self.config.train.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        AeTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        AeTrainer::save(self)
    }
    fn history(&self) -> &History {
        AeTrainer::history(self)
    }
    fn describe(&self) -> String {
        format!(
            "first stage of `{}` on {} ({} images)",
            self.config.name,
            self.config.data,
            self.driver.data.num_images()
        )
    }
}

impl Trainer for LdmTrainer {
    fn stage(&self) -> &str {
        "ldm"
    }
    fn title(&self) -> &str {
        "latent diffusion model"
    }
    fn current_step(&self) -> usize {
        self.step
    }
    fn total_steps(&self) -> usize {
        LdmTrainer::total_steps(self)
    }
    fn checkpoint_every(&self) -> usize {
        self.config.train.checkpoint_every
    }
    fn train_step(&mut self) -> Result<StepLog> {
        LdmTrainer::train_step(self)
    }
    fn save(&self) -> Result<PathBuf> {
        LdmTrainer::save(self)
    }
    fn history(&self) -> &History {
        LdmTrainer::history(self)
    }
    fn describe(&self) -> String {
        format!(
            "{}\ntraining `{}` on {} ({} images, {} steps/epoch, {} steps)",
            crate::display::Show::to_text(&self.ldm.summary()),
            self.config.name,
            self.config.data,
            self.driver.data.num_images(),
            self.steps_per_epoch(),
            LdmTrainer::total_steps(self)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_cut_short_resumes_and_a_damaged_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("dydis-log-resume-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ldm")).unwrap();
        let path = dir.join("ldm/log.jsonl");
        let line = |step: usize| {
            let s = StepLog { step, epoch: 0, loss: 0.5, extra: vec![], data_ms: 1.0, step_ms: 2.0 };
            serde_json::to_string(&s).unwrap()
        };
        std::fs::write(&path, format!("{}\n{}\n{{\"step\": 3, \"epo", line(1), line(2))).unwrap();
        let h = History::read_for_resume(&path).unwrap();
        assert_eq!((h.stage.as_str(), h.steps.len()), ("ldm", 2));
        std::fs::write(&path, format!("{}\nnot json\n{}\n", line(1), line(3))).unwrap();
        let e = History::read_for_resume(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
