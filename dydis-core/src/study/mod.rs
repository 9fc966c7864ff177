//! Studies: a question asked of several runs at once ("does +DyGA beat the baseline across seeds, on which
//! metrics, by how much?"). A study file ([`StudySpec`]) names arms (a preset plus overrides), seeds, datasets and
//! training budgets; [`run_study`] trains and evaluates every cell, skipping finished ones and continuing an
//! interrupted one; [`StudyResults`] holds every cell's record with its provenance, the statistics over seeds and
//! the paired differences against a reference arm, with tables and interval plots.
pub mod results;
pub mod runner;
pub mod spec;
pub mod stats;

pub use results::{ArmStat, CellRecord, PairedDiff, Pending, Status, StudyResults};
pub use runner::{cell_dir, config_hash, eval_dir, run_study, source_commit, study_dir, Ending, StudyOptions};
pub use spec::{ArmSpec, Cell, PaperRef, StudyEval, StudySpec};
pub use stats::{bootstrap_interval, summarize, t_975, Summary};
