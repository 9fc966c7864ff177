//! A study file: arms (a method's preset or TOML file plus `--set` overrides), seeds, datasets, training budgets
//! and how every cell is evaluated. Parsing checks every field and names the one that is wrong.
use crate::eval::{EvalConfig, Units};
use crate::method::method;
use crate::run::RunConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A parsed, checked study.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// The study's folder name (`runs/studies/<name>`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Every arm is trained once per seed (the run's `seed`).
    pub seeds: Vec<u64>,
    /// Datasets every arm runs on (the run's `data`); empty: each arm's own.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Budgets of the final training stage at which every cell is evaluated, ascending: the run trains to the
    /// largest, and is evaluated on the way at each. Empty: each arm's configured length, once.
    #[serde(default)]
    pub steps: Vec<usize>,
    /// The arm that paired differences are taken against (default: the first).
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub eval: StudyEval,
    /// The paper's table whose numbers are shown beside ours.
    #[serde(default)]
    pub paper: Option<PaperRef>,
    #[serde(rename = "arm")]
    pub arms: Vec<ArmSpec>,
}

/// One arm: a configuration and what is changed in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub name: String,
    /// A preset (`cpu-quick`, `cpu-beta-vae`, ...) or a TOML file (relative to the study file).
    pub config: String,
    /// Overrides as `dydis train --set` takes them.
    #[serde(default)]
    pub set: Vec<String>,
    /// The method's name in the paper's table ([`StudySpec::paper`]), when it has a row there.
    #[serde(default)]
    pub paper_method: Option<String>,
    /// This arm's budgets instead of the study's `steps` (a family whose steps mean something else: a VAE's 3,000
    /// steps beside an LDM's 800).
    #[serde(default)]
    pub steps: Option<Vec<usize>>,
}

/// How every cell is evaluated (the options of `dydis eval`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyEval {
    /// Sample counts: `paper` or `quick`.
    #[serde(default = "quick")]
    pub preset: String,
    /// Metrics (default: the preset's).
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// `paper`, `raw` or `aligned` (as `dydis eval --units`).
    #[serde(default = "paper_units")]
    pub units: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "batch")]
    pub batch: usize,
}

fn quick() -> String {
    "quick".into()
}
fn paper_units() -> String {
    "paper".into()
}
fn batch() -> usize {
    256
}

impl Default for StudyEval {
    fn default() -> Self {
        StudyEval { preset: quick(), metrics: None, units: paper_units(), seed: 0, batch: batch() }
    }
}

impl StudyEval {
    /// The evaluation configuration this section describes.
    pub fn config(&self) -> Result<EvalConfig> {
        let mut cfg = EvalConfig::preset(&self.preset).map_err(|e| Error::config("eval.preset", e.to_string()))?;
        cfg.seed = self.seed;
        if let Some(m) = &self.metrics {
            cfg.metrics = m.clone();
        }
        cfg.validate().map_err(|e| Error::config("eval.metrics", e.to_string()))?;
        Ok(cfg)
    }

    pub fn units(&self) -> Result<Units> {
        Units::parse(&self.units).map_err(|e| Error::config("eval.units", e.to_string()))
    }
}

/// A table of the paper and the dataset its numbers are for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaperRef {
    /// As in the paper's results (`Table 4`).
    pub table: String,
    /// `shapes3d`, `mpi3d`, `cars3d` or `celeba`.
    pub dataset: String,
}

/// One cell of a study: an arm on a dataset with a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub arm: String,
    pub dataset: String,
    pub seed: u64,
    /// The run's configuration (its length set to the largest budget).
    pub config: RunConfig,
    /// Budgets at which the cell is evaluated, ascending.
    pub budgets: Vec<usize>,
}

impl StudySpec {
    /// Read and check a study file; relative configuration files are taken from the study file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut spec = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for arm in &mut spec.arms {
            arm.config = resolve_config(&arm.config, &base);
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Parse a study from TOML text (`origin` names it in errors) without checking the arms' configurations.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::config(format!("study file {origin}"), e.to_string()))
    }

    /// Check every field; each error names the field (`arm.dyga.set`, `seeds`, ...).
    pub fn validate(&self) -> Result<()> {
        check_name("name", &self.name)?;
        if self.seeds.is_empty() {
            return Err(Error::config("seeds", "a study needs at least one seed"));
        }
        if has_duplicates(&self.seeds) {
            return Err(Error::config("seeds", format!("{:?} repeats a seed", self.seeds)));
        }
        if has_duplicates(&self.datasets) {
            return Err(Error::config("datasets", "repeats a dataset"));
        }
        check_budgets("steps", &self.steps)?;
        if self.arms.is_empty() {
            return Err(Error::config("arm", "a study needs at least one [[arm]]"));
        }
        for (i, a) in self.arms.iter().enumerate() {
            check_name(&format!("arm[{i}].name"), &a.name)?;
            if let Some(steps) = &a.steps {
                check_budgets(&format!("arm.{}.steps", a.name), steps)?;
                if steps.is_empty() {
                    return Err(Error::config(format!("arm.{}.steps", a.name), "needs at least one budget"));
                }
            }
            if self.arms[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::config(format!("arm.{}.name", a.name), "two arms have this name"));
            }
        }
        if let Some(r) = &self.reference {
            if !self.arms.iter().any(|a| &a.name == r) {
                return Err(Error::config("reference", format!("'{r}' is not one of the arms")));
            }
        }
        if let Some(p) = &self.paper {
            if !crate::eval::paper_results().iter().any(|r| r.table == p.table && r.dataset == p.dataset) {
                return Err(Error::config(
                    "paper",
                    format!("the paper's results have no {} rows for {}", p.table, p.dataset),
                ));
            }
        }
        self.eval.config()?;
        self.eval.units()?;
        if self.eval.batch == 0 {
            return Err(Error::config("eval.batch", "must be positive"));
        }
        // Building every cell checks every arm's configuration with each seed, dataset and budget.
        self.cells().map(|_| ())
    }

    /// The arm paired differences are taken against.
    pub fn reference_arm(&self) -> &str {
        self.reference.as_deref().unwrap_or(&self.arms[0].name)
    }

    /// Every cell, seeds outermost (a partial study has every arm of its first seeds), then datasets, then arms.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let mut cells = Vec::new();
        for &seed in &self.seeds {
            for arm in &self.arms {
                let datasets =
                    if self.datasets.is_empty() { vec![None] } else { self.datasets.iter().map(Some).collect() };
                for data in datasets {
                    cells.push(self.cell(arm, data.map(String::as_str), seed)?);
                }
            }
        }
        Ok(cells)
    }

    fn cell(&self, arm: &ArmSpec, data: Option<&str>, seed: u64) -> Result<Cell> {
        let field = format!("arm.{}", arm.name);
        let base = RunConfig::load_with(&arm.config, &arm.set).map_err(|e| Error::config(&field, e.to_string()))?;
        let m = method(base.method);
        let mut set = arm.set.clone();
        set.push(format!("seed={seed}"));
        set.push(format!("name={:?}", format!("{}-{}-s{seed}", self.name, arm.name)));
        if let Some(d) = data {
            set.push(format!("data={d:?}"));
        }
        let steps = arm.steps.as_ref().unwrap_or(&self.steps);
        if let Some(&last) = steps.last() {
            set.push(format!("{}={last}", m.length_key()));
        }
        let config = RunConfig::load_with(&arm.config, &set).map_err(|e| Error::config(&field, e.to_string()))?;
        m.validate(&config).map_err(|e| Error::config(&field, e.to_string()))?;
        let budgets = if steps.is_empty() {
            vec![m.final_steps(&config).map_err(|e| Error::config(&field, e.to_string()))?]
        } else {
            steps.clone()
        };
        Ok(Cell { arm: arm.name.clone(), dataset: config.data.clone(), seed, config, budgets })
    }
}

/// A preset name stays as it is; a file path is taken relative to the study file's folder.
fn resolve_config(spec: &str, base: &Path) -> String {
    if crate::run::PRESETS.iter().any(|(n, _)| *n == spec) || Path::new(spec).is_absolute() {
        return spec.to_string();
    }
    let candidate: PathBuf = base.join(spec);
    if candidate.exists() {
        candidate.display().to_string()
    } else {
        spec.to_string()
    }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok && !name.starts_with('.') {
        Ok(())
    } else {
        Err(Error::config(field, format!("'{name}' must be a non-empty name of letters, digits, '-', '_' and '.'")))
    }
}

fn check_budgets(field: &str, steps: &[usize]) -> Result<()> {
    if steps.contains(&0) || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::config(field, format!("{steps:?} must be positive and strictly ascending")));
    }
    Ok(())
}

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter().enumerate().any(|(i, x)| v[..i].contains(x))
}
