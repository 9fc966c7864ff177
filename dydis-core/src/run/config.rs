//! Run configurations: TOML files with validated fields, and the built-in presets (`configs/*.toml`).
use crate::nn::{ExtractorConfig, FirstStageConfig, UNetConfig, VqConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in presets, by name (their TOML lives in `configs/` at the top of the repository).
pub const PRESETS: &[(&str, &str)] = &[
    ("smoke", include_str!("../../../configs/smoke.toml")),
    ("cpu-quick", include_str!("../../../configs/cpu-quick.toml")),
    ("paper-shapes3d", include_str!("../../../configs/paper-shapes3d.toml")),
    ("paper-mpi3d", include_str!("../../../configs/paper-mpi3d.toml")),
    ("paper-cars3d", include_str!("../../../configs/paper-cars3d.toml")),
    ("paper-celeba", include_str!("../../../configs/paper-celeba.toml")),
    ("cpu-beta-vae", include_str!("../../../configs/cpu-beta-vae.toml")),
    ("cpu-multibeta", include_str!("../../../configs/cpu-multibeta.toml")),
    ("cpu-cl-dis", include_str!("../../../configs/cpu-cl-dis.toml")),
    ("paper-cl-dis-shapes3d", include_str!("../../../configs/paper-cl-dis-shapes3d.toml")),
    ("paper-cl-dis-celeba", include_str!("../../../configs/paper-cl-dis-celeba.toml")),
    ("study-beta-vae", include_str!("../../../configs/study-beta-vae.toml")),
    ("cpu-annealed-vae", include_str!("../../../configs/cpu-annealed-vae.toml")),
    ("study-annealed-vae", include_str!("../../../configs/study-annealed-vae.toml")),
    ("cpu-factor-vae", include_str!("../../../configs/cpu-factor-vae.toml")),
    ("study-factor-vae", include_str!("../../../configs/study-factor-vae.toml")),
    ("cpu-dip-vae-i", include_str!("../../../configs/cpu-dip-vae-i.toml")),
    ("study-dip-vae-i", include_str!("../../../configs/study-dip-vae-i.toml")),
    ("cpu-dip-vae-ii", include_str!("../../../configs/cpu-dip-vae-ii.toml")),
    ("study-dip-vae-ii", include_str!("../../../configs/study-dip-vae-ii.toml")),
    ("cpu-beta-tcvae", include_str!("../../../configs/cpu-beta-tcvae.toml")),
    ("study-beta-tcvae", include_str!("../../../configs/study-beta-tcvae.toml")),
];

/// The networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Side of the (square) training images; the dataset's images must have this size.
    pub image_size: i64,
    pub first_stage: FirstStageConfig,
    #[serde(default)]
    pub extractor: ExtractorConfig,
    #[serde(default)]
    pub unet: UNetConfig,
}

impl ModelConfig {
    /// What a run of another family carries in place of the LDM's networks (left out of its TOML): image size 0,
    /// which an LDM configuration refuses, so an LDM file without `[model]` is an error naming it.
    pub fn absent() -> Self {
        ModelConfig {
            image_size: 0,
            first_stage: FirstStageConfig::Identity,
            extractor: ExtractorConfig::default(),
            unet: UNetConfig::default(),
        }
    }

    fn is_absent(&self) -> bool {
        *self == Self::absent()
    }

    pub fn latent_shape(&self) -> (i64, i64) {
        self.first_stage.latent_shape(self.image_size)
    }
    pub fn validate(&self) -> Result<()> {
        if self.image_size <= 0 {
            return Err(Error::config("model.image_size", "must be positive"));
        }
        if let FirstStageConfig::Vq(vq) = &self.first_stage {
            vq.validate(self.image_size)?;
        }
        self.extractor.validate(self.image_size)?;
        self.unet.validate(self.latent_shape().1)
    }
}

/// First-stage (VQ autoencoder) training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AeTrainConfig {
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    /// Adam betas (taming: 0.5, 0.9).
    pub betas: (f64, f64),
    /// Step at which the GAN term starts (0 in the paper).
    pub disc_start: usize,
    pub disc_weight: f64,
    pub codebook_weight: f64,
    /// Weight of a perceptual term (LPIPS in the paper) when one is supplied to the trainer
    /// (`AeTrainer::perceptual`); dydis ships none, since LPIPS's VGG weights cannot be obtained offline.
    pub perceptual_weight: f64,
    pub log_every: usize,
}

impl Default for AeTrainConfig {
    fn default() -> Self {
        AeTrainConfig {
            batch_size: 128,
            steps: 100_000,
            lr: 4.5e-6,
            betas: (0.5, 0.9),
            disc_start: 0,
            disc_weight: 0.75,
            codebook_weight: 1.0,
            perceptual_weight: 1.0,
            log_every: 50,
        }
    }
}

/// Latent-diffusion training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdmTrainConfig {
    pub batch_size: usize,
    /// Training length: `steps` if given, otherwise `epochs` passes over the dataset.
    pub steps: Option<usize>,
    pub epochs: Option<usize>,
    pub lr: f64,
    pub weight_decay: f64,
    /// EMA decay cap of the LitEma warm-up formula min(decay, (1 + n) / (10 + n)).
    pub ema_decay: f64,
    /// scale_factor := 1 / std of the first batch's latents (otherwise 1).
    pub scale_by_std: bool,
    pub log_every: usize,
    /// Save a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: usize,
    pub keep_last: usize,
}

impl Default for LdmTrainConfig {
    fn default() -> Self {
        LdmTrainConfig {
            batch_size: 64,
            steps: None,
            epochs: Some(100),
            lr: 1e-4,
            weight_decay: 0.01,
            ema_decay: 0.9999,
            scale_by_std: true,
            log_every: 50,
            checkpoint_every: 1000,
            keep_last: 3,
        }
    }
}

/// DDIM settings for samples, interchange and interpolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    pub ddim_steps: usize,
    pub eta: f64,
}

impl SampleConfig {
    /// The DDIM sampler these settings describe.
    pub fn ddim(&self) -> crate::diffusion::Ddim {
        crate::diffusion::Ddim { steps: self.ddim_steps, eta: self.eta }
    }
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig { ddim_steps: 100, eta: 0.0 }
    }
}

/// The model family a run trains (`method = "..."` in a run's TOML; see `crate::method` for what each provides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// The EncDiff-style latent diffusion model with DyGA and Skip Dropout (the paper's method).
    #[default]
    Ldm,
    /// disentanglement_lib's VAE baselines (β-VAE, AnnealedVAE, FactorVAE, DIP-VAE-I/II, β-TCVAE; `[vae]`).
    Vae,
    /// The Denoising Multi-β VAE (`[multibeta]`).
    #[serde(rename = "multibeta")]
    MultiBeta,
    /// CL-Dis: a Diff-AE with a co-pilot β-VAE, distillation and diffusion feedback (`[cldis]`).
    #[serde(rename = "cl-dis")]
    ClDis,
}

impl MethodKind {
    /// Every family, in the order `dydis` lists them.
    pub const ALL: &'static [MethodKind] =
        &[MethodKind::Ldm, MethodKind::Vae, MethodKind::MultiBeta, MethodKind::ClDis];

    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Ldm => "ldm",
            MethodKind::Vae => "vae",
            MethodKind::MultiBeta => "multibeta",
            MethodKind::ClDis => "cl-dis",
        }
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole run: its family, data, and the family's sections (the LDM: networks, both training stages, sampling,
/// DyGA; a VAE: `[vae]`). A section left at its defaults is left out of the TOML written back, and read back as
/// the same defaults, so a run's `config.toml` shows only what its family uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name: outputs go to `runs/<name>/` unless told otherwise.
    pub name: String,
    /// The model family (default `ldm`, so configurations and checkpoints written before families existed load).
    #[serde(default)]
    pub method: MethodKind,
    pub seed: u64,
    /// Dataset spec as `dydis data list` shows it, or a path.
    pub data: String,
    #[serde(default = "ModelConfig::absent", skip_serializing_if = "ModelConfig::is_absent")]
    pub model: ModelConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub ae: AeTrainConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub train: LdmTrainConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub sample: SampleConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub dyga: crate::dyga::DygaConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub vae: crate::vae::VaeConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub multibeta: crate::multibeta::MultiBetaConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cldis: crate::cldis::ClDisConfig,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl RunConfig {
    /// A preset name (`smoke`, `cpu-quick`, `paper-…`) or a path to a TOML file.
    pub fn load(spec: &str) -> Result<Self> {
        Self::load_with(spec, &[])
    }

    /// As `load`, then apply `key.path=value` overrides (values in TOML syntax; bare words are strings).
    pub fn load_with(spec: &str, overrides: &[String]) -> Result<Self> {
        let (text, origin) = match PRESETS.iter().find(|(n, _)| *n == spec) {
            Some((_, t)) => (t.to_string(), format!("preset {spec}")),
            None => {
                let p = Path::new(spec);
                if !p.exists() {
                    let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                    return Err(Error::config(
                        "config",
                        format!("'{spec}' is neither a preset ({}) nor a file", names.join(", ")),
                    ));
                }
                (std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?, p.display().to_string())
            }
        };
        let value: toml::Value = toml::from_str(&text).map_err(|e| Error::config(origin.clone(), e.to_string()))?;
        Self::from_value(value, overrides, &origin)
    }

    /// This configuration with `key.path=value` overrides applied, validated (as `load_with` applies them).
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        let value = toml::Value::try_from(self).map_err(|e| Error::config("config", e.to_string()))?;
        Self::from_value(value, overrides, "--set")
    }

    fn from_value(mut value: toml::Value, overrides: &[String], origin: &str) -> Result<Self> {
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let cfg: RunConfig = value.try_into().map_err(|e: toml::de::Error| Error::config(origin, e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| Error::config("config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return Err(Error::config("name", format!("'{}' must be a non-empty name without slashes", self.name)));
        }
        match self.method {
            MethodKind::Ldm => self.validate_ldm(),
            MethodKind::Vae => self.vae.validate(),
            MethodKind::MultiBeta => self.multibeta.validate(),
            MethodKind::ClDis => self.cldis.validate(),
        }
    }

    /// Side of the square images the run's model takes.
    pub fn image_size(&self) -> i64 {
        match self.method {
            MethodKind::Ldm => self.model.image_size,
            MethodKind::Vae => self.vae.image_size,
            MethodKind::MultiBeta => self.multibeta.image_size,
            MethodKind::ClDis => self.cldis.image_size,
        }
    }

    fn validate_ldm(&self) -> Result<()> {
        self.model.validate()?;
        let t = &self.train;
        if t.batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if t.steps.is_none() && t.epochs.is_none() {
            return Err(Error::config("train", "give steps or epochs"));
        }
        if t.steps == Some(0) || t.epochs == Some(0) {
            return Err(Error::config("train.steps", "training length must be positive"));
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(Error::config("train.lr", format!("{} must be a positive number", t.lr)));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(Error::config("train.weight_decay", "must be non-negative"));
        }
        if !(0.0..1.0).contains(&t.ema_decay) {
            return Err(Error::config("train.ema_decay", format!("{} is not in [0, 1)", t.ema_decay)));
        }
        if t.log_every == 0 || t.checkpoint_every == 0 || t.keep_last == 0 {
            return Err(Error::config("train", "log_every, checkpoint_every and keep_last must be at least 1"));
        }
        let a = &self.ae;
        if a.batch_size == 0 || a.steps == 0 || a.log_every == 0 {
            return Err(Error::config("ae", "batch_size, steps and log_every must be at least 1"));
        }
        if !(a.lr > 0.0 && a.lr.is_finite()) || a.disc_weight < 0.0 || a.codebook_weight < 0.0 {
            return Err(Error::config("ae", "lr must be positive, disc_weight and codebook_weight non-negative"));
        }
        self.dyga.validate()?;
        if self.sample.ddim_steps == 0 || self.sample.ddim_steps > 1000 {
            return Err(Error::config("sample.ddim_steps", format!("{} is not in 1..=1000", self.sample.ddim_steps)));
        }
        if !(0.0..=1.0).contains(&self.sample.eta) {
            return Err(Error::config("sample.eta", "must be in [0, 1]"));
        }
        Ok(())
    }

    pub fn vq(&self) -> Option<&VqConfig> {
        match &self.model.first_stage {
            FirstStageConfig::Vq(v) => Some(v),
            FirstStageConfig::Identity => None,
        }
    }
}

/// Apply one `key.path=value` override (TOML syntax; bare words are strings) to a configuration's TOML value.
fn apply_override(root: &mut toml::Value, spec: &str) -> Result<()> {
    let (key, raw) =
        spec.split_once('=').ok_or_else(|| Error::config("--set", format!("'{spec}' is not key=value")))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut cur = root;
    let parts: Vec<&str> = key.trim().split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = cur.as_table_mut().ok_or_else(|| Error::config(key, "is not inside a table"))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value);
            return Ok(());
        }
        cur = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        for (name, _) in PRESETS {
            let c = RunConfig::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&c.name, name);
            let multibeta = name.contains("multibeta");
            let vae = name.contains("vae") && !multibeta;
            let cldis = name.contains("cl-dis");
            let kind = match (vae, multibeta, cldis) {
                (true, _, _) => MethodKind::Vae,
                (_, true, _) => MethodKind::MultiBeta,
                (_, _, true) => MethodKind::ClDis,
                _ => MethodKind::Ldm,
            };
            if cldis {
                let text = c.to_toml();
                assert!(
                    !text.contains("[model") && !text.contains("[vae]") && text.contains("[cldis.feedback]"),
                    "{text}"
                );
            }
            assert_eq!(c.method, kind, "{name}");
            if multibeta {
                let text = c.to_toml();
                assert!(
                    !text.contains("[model") && !text.contains("[vae]") && text.contains("[multibeta.denoiser]"),
                    "{text}"
                );
            }
            if vae {
                // A VAE run's TOML carries no LDM section, and the study presets are the study's settings.
                let text = c.to_toml();
                assert!(!text.contains("[model") && !text.contains("[train]") && !text.contains("[dyga]"), "{text}");
                if name.starts_with("study-") {
                    let v = &c.vae;
                    assert_eq!((v.image_size, v.channels, v.latent, v.batch_size, v.steps), (64, 1, 10, 64, 300_000));
                    assert_eq!(v.lr, 1e-4);
                }
            }
            if name.starts_with("paper-") && !cldis {
                // The paper's method: DyGA on, refit period r of App. C.1.1, Skip Dropout on.
                let r = if *name == "paper-cars3d" { 5 } else { 1 };
                assert!(c.dyga.enabled && c.dyga.refit_every == r, "{name}: DyGA {:?}", c.dyga);
                assert!(c.model.unet.skip_dropout.enabled, "{name}");
                // Algorithm 2 (every proposed split kept), the paper's HDDC model and Eq. 6 alignment.
                use crate::dyga::{AlignMode, AnchorFit, CovModel, SplitCriterion};
                let d = &c.dyga;
                assert_eq!(
                    (d.fit, d.split_criterion, d.align),
                    (AnchorFit::Paper, SplitCriterion::Always, AlignMode::Paper)
                );
                assert!(matches!(d.model, CovModel::Hddc { .. }) && !d.refit_after_split_round, "{name}: {d:?}");
            }
            let back = RunConfig::from_toml(&c.to_toml()).unwrap();
            assert_eq!(back, c, "{name} round-trips through TOML");
        }
    }

    #[test]
    fn overrides_and_bad_values_are_named() {
        let c = RunConfig::load_with(
            "smoke",
            &["train.steps=7".into(), "model.unet.skip_dropout.levels=\"released-code\"".into()],
        )
        .unwrap();
        assert_eq!(c.train.steps, Some(7));
        let e = RunConfig::load_with("smoke", &["train.lr=-1".into()]).unwrap_err().to_string();
        assert!(e.contains("train.lr"), "{e}");
        let e = RunConfig::load_with("smoke", &["model.unet.num_heads=3".into()]).unwrap_err().to_string();
        assert!(e.contains("num_heads"), "{e}");
        let e = RunConfig::load_with("smoke", &["model.unet.colour=1".into()]).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = RunConfig::load_with("smoke", &["model.unet.skip_dropout.levels=\"sideways\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sideways"), "{e}");
        let e = RunConfig::load_with("smoke", &["method=\"gan\"".into()]).unwrap_err().to_string();
        assert!(e.contains("gan"), "{e}");
        let e = RunConfig::load("no-such-preset").unwrap_err().to_string();
        assert!(e.contains("cpu-quick"), "{e}");
    }
}
