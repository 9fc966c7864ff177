//! The layout of a run folder, in one place:
//!
//! ```text
//! <run>/config.toml              the run's configuration (written at the start of training)
//! <run>/<stage>/step-NNNNNNNN/   checkpoints of a training stage (`ae`, `ldm`, ...)
//! <run>/<stage>/log.jsonl        one JSON line per optimisation step
//! <run>/<stage>/loss.svg         the stage's loss curve
//! <run>/<stage>/anchors.jsonl    DyGA refit records (stages that refit anchors)
//! <run>/eval/                    evaluation report and representation
//! <run>/anchors/                 anchor plots
//! <run>/<figure>.png|svg         figures of the generation and visual tools
//! ```
use super::checkpoint;
use super::config::RunConfig;
use crate::fs::write_atomic;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A run folder. Every path of the layout above is derived here; callers ask for them by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The default folder of a configuration: `runs/<name>` (relative to the working directory).
    pub fn for_config(config: &RunConfig) -> Self {
        RunDir::new(Path::new("runs").join(&config.name))
    }

    /// The run folder holding a checkpoint folder (`<run>/<stage>/step-N`).
    pub fn of_checkpoint(step: &Path) -> Self {
        let run = step.parent().and_then(Path::parent).filter(|p| !p.as_os_str().is_empty());
        RunDir::new(run.unwrap_or(Path::new(".")))
    }

    /// The run folder of an evaluation report (`<run>/<eval folder>/report.json`); None when the path names no
    /// such folder.
    pub fn of_report(report: &Path) -> Option<Self> {
        let run = report.parent()?.parent().filter(|p| !p.as_os_str().is_empty())?;
        run.file_name().is_some().then(|| RunDir::new(run))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder's name (the run's name unless the user chose another folder).
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.root.display().to_string())
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn stage(&self, stage: &str) -> PathBuf {
        self.root.join(stage)
    }

    pub fn log(&self, stage: &str) -> PathBuf {
        self.stage(stage).join("log.jsonl")
    }

    pub fn loss_curve(&self, stage: &str) -> PathBuf {
        self.stage(stage).join("loss.svg")
    }

    pub fn anchors_log(&self, stage: &str) -> PathBuf {
        self.stage(stage).join("anchors.jsonl")
    }

    pub fn eval_dir(&self) -> PathBuf {
        self.root.join("eval")
    }

    pub fn anchor_plots_dir(&self) -> PathBuf {
        self.root.join("anchors")
    }

    /// A figure or other output file at the top of the run folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Complete checkpoints of a stage, oldest first.
    pub fn checkpoints(&self, stage: &str) -> Result<Vec<(usize, PathBuf)>> {
        checkpoint::list(&self.stage(stage))
    }

    /// The newest checkpoint of a stage.
    pub fn newest(&self, stage: &str) -> Result<Option<(usize, PathBuf)>> {
        Ok(self.checkpoints(stage)?.pop())
    }

    /// The configuration stored in the folder, if any.
    pub fn stored_config(&self) -> Result<Option<RunConfig>> {
        let path = self.config_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => RunConfig::from_toml(&text)
                .map(Some)
                .map_err(|e| Error::File { path, message: format!("not a run configuration: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Create the folder and store `config` in it. A folder that holds a run with another model configuration is
    /// refused unless the run is resumed (its checkpoints would not load into the new model).
    pub fn prepare(&self, config: &RunConfig, resume: bool) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        if resume {
            if let Ok(Some(old)) = self.stored_config() {
                let changed = changed_sections(&old, config);
                if !changed.is_empty() {
                    eprintln!(
                        "note: {} held another [{}]; the run continues with the configuration given now",
                        self.config_file().display(),
                        changed.join("], [")
                    );
                }
            }
        } else if let Ok(Some(old)) = self.stored_config() {
            if old.method != config.method || old.model != config.model {
                return Err(Error::File {
                    path: self.root.clone(),
                    message: "holds a run with another model configuration: pass --out <new folder>, or \
                              --resume to continue it"
                        .into(),
                });
            }
        }
        write_atomic(&self.config_file(), config.to_toml().as_bytes())
    }
}

/// The top-level sections in which two configurations differ.
fn changed_sections(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    let (Ok(toml::Value::Table(a)), Ok(toml::Value::Table(b))) = (toml::Value::try_from(a), toml::Value::try_from(b))
    else {
        return vec![];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_and_the_folder_of_a_checkpoint() {
        let d = RunDir::new("runs/x");
        assert_eq!(d.log("ldm"), Path::new("runs/x/ldm/log.jsonl"));
        assert_eq!(d.anchors_log("ldm"), Path::new("runs/x/ldm/anchors.jsonl"));
        assert_eq!(d.eval_dir(), Path::new("runs/x/eval"));
        assert_eq!(RunDir::of_report(Path::new("runs/x/eval/report.json")), Some(d.clone()));
        assert_eq!(RunDir::of_report(Path::new("runs/x/eval-aligned/report.json")), Some(d.clone()));
        assert_eq!(RunDir::of_report(Path::new("eval/report.json")), None);
        assert_eq!(d.name(), "x");

        let tmp = std::env::temp_dir().join(format!("dydis-rundir-{}", std::process::id()));
        let step = tmp.join("ldm/step-00000003");
        std::fs::create_dir_all(&step).unwrap();
        std::fs::write(step.join("meta.json"), "{}").unwrap();
        assert_eq!(RunDir::of_checkpoint(&step).root(), tmp);
        let run = RunDir::new(&tmp);
        assert_eq!(run.newest("ldm").unwrap(), Some((3, step.clone())));
        assert_eq!(run.newest("ae").unwrap(), None);
        assert_eq!(checkpoint::resolve(&tmp, &["ae", "ldm"]).unwrap(), step);
        assert!(checkpoint::resolve(&tmp, &["ae"]).unwrap_err().to_string().contains("looked in ae"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
