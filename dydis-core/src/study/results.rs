//! A study's results: one record per cell and budget (scores and provenance, or the error of a failed cell), the
//! statistics over seeds and the paired differences against the reference arm, as JSON, CSV, Markdown, tables and
//! interval plots.
use super::spec::{Cell, StudySpec};
use super::stats::{summarize, Summary};
use crate::display::{Panel, Svg, Table};
use crate::eval::{paper_results, Report};
use crate::fs::write_atomic;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Device;

/// Seed of every bootstrap in a study's statistics (fixed, so that a summary is reproducible from its records).
pub const BOOTSTRAP_SEED: u64 = 0;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// One cell evaluated at one budget, or its failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellRecord {
    pub arm: String,
    pub dataset: String,
    pub seed: u64,
    pub steps: usize,
    pub status: Status,
    /// What went wrong, for a failed cell.
    #[serde(default)]
    pub error: Option<String>,
    pub method: String,
    /// Which form of the representation the scores are (the report's protocol).
    #[serde(default)]
    pub protocol: String,
    pub scores: BTreeMap<String, f64>,
    /// The other form's scores (raw units beside a DyGA run's aligned ones).
    #[serde(default)]
    pub other_forms: BTreeMap<String, BTreeMap<String, f64>>,
    pub config_hash: String,
    pub commit: String,
    pub device: String,
    pub dydis_version: String,
    /// Seconds training the final stage to `steps` (over every invocation), the earlier stages, and evaluating.
    #[serde(default)]
    pub train_seconds: Option<f64>,
    #[serde(default)]
    pub first_stage_seconds: Option<f64>,
    #[serde(default)]
    pub eval_seconds: Option<f64>,
    /// Unix time the record was written.
    pub finished_at: u64,
    /// The cell's run folder, relative to the studies folder.
    pub run: String,
}

impl CellRecord {
    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    fn base(cell: &Cell, steps: usize, root: &Path, commit: &str, device: Device) -> Self {
        let run = super::runner::cell_dir(root, cell);
        CellRecord {
            arm: cell.arm.clone(),
            dataset: cell.dataset.clone(),
            seed: cell.seed,
            steps,
            status: Status::Ok,
            error: None,
            method: cell.config.method.to_string(),
            protocol: String::new(),
            scores: BTreeMap::new(),
            other_forms: BTreeMap::new(),
            config_hash: super::runner::config_hash(&cell.config),
            commit: commit.into(),
            device: format!("{device:?}, {} CPU threads", tch::get_num_threads()),
            dydis_version: env!("CARGO_PKG_VERSION").into(),
            train_seconds: None,
            first_stage_seconds: None,
            eval_seconds: None,
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            run: run.strip_prefix(root).unwrap_or(&run).display().to_string(),
        }
    }

    pub(crate) fn from_report(
        cell: &Cell,
        steps: usize,
        report: &Report,
        root: &Path,
        commit: &str,
        device: Device,
    ) -> Self {
        CellRecord {
            protocol: report.protocol.clone(),
            scores: report.scores.clone(),
            other_forms: report.other_forms.clone(),
            ..Self::base(cell, steps, root, commit, device)
        }
    }

    pub(crate) fn failed(cell: &Cell, steps: usize, root: &Path, commit: &str, device: Device, error: String) -> Self {
        CellRecord { status: Status::Failed, error: Some(error), ..Self::base(cell, steps, root, commit, device) }
    }

    /// The record in an evaluation folder, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("record.json");
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| Error::json(path.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::json("a cell record", e))?;
        write_atomic(&dir.join("record.json"), text.as_bytes())
    }
}

/// A cell and budget without a record yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub arm: String,
    pub dataset: String,
    pub seed: u64,
    pub steps: usize,
}

/// An arm's numbers for one metric on one dataset at one budget, over its finished seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArmStat {
    pub dataset: String,
    pub steps: usize,
    pub arm: String,
    pub metric: String,
    pub seeds: Vec<u64>,
    pub values: Vec<f64>,
    pub summary: Summary,
    /// The paper's mean and standard deviation for the arm's `paper_method`, where the paper's table has it.
    pub paper: Option<(f64, f64)>,
}

/// An arm minus the reference arm, seed by seed (the seeds both finished).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairedDiff {
    pub dataset: String,
    /// The arm's budget and the reference's (equal, except between arms' largest budgets when those differ).
    pub steps: usize,
    pub reference_steps: usize,
    pub arm: String,
    pub reference: String,
    pub metric: String,
    pub seeds: Vec<u64>,
    pub differences: Vec<f64>,
    pub summary: Summary,
    /// Seeds on which the arm scored above the reference.
    pub wins: usize,
}

/// Everything a study has produced so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StudyResults {
    pub spec: StudySpec,
    pub records: Vec<CellRecord>,
    pub pending: Vec<Pending>,
    pub stats: Vec<ArmStat>,
    pub differences: Vec<PairedDiff>,
    pub dydis_version: String,
}

impl StudyResults {
    /// Gather the records of every cell of `spec` under the studies folder `root` and compute the statistics.
    pub fn collect(spec: &StudySpec, root: &Path) -> Result<Self> {
        let (eval, units) = (spec.eval.config()?, spec.eval.units()?);
        let mut records = Vec::new();
        let mut pending = Vec::new();
        for cell in spec.cells()? {
            for &steps in &cell.budgets {
                match CellRecord::read(&super::runner::eval_dir(root, &cell, &eval, units, steps))? {
                    // A cell shared with another study carries that study's arm name: use this one's.
                    Some(r) => records.push(CellRecord { arm: cell.arm.clone(), dataset: cell.dataset.clone(), ..r }),
                    None => pending.push(Pending {
                        arm: cell.arm.clone(),
                        dataset: cell.dataset.clone(),
                        seed: cell.seed,
                        steps,
                    }),
                }
            }
        }
        Ok(Self::from_records(spec.clone(), records, pending))
    }

    /// The statistics of a set of records: per arm, dataset, budget and metric over the finished seeds, and the
    /// paired differences against the reference arm at each budget both have, and between each arm's largest budget
    /// and the reference's where those differ (a VAE's 3,000 steps against an LDM's 800).
    pub fn from_records(spec: StudySpec, records: Vec<CellRecord>, pending: Vec<Pending>) -> Self {
        let mut r = StudyResults {
            spec,
            records,
            pending,
            stats: vec![],
            differences: vec![],
            dydis_version: env!("CARGO_PKG_VERSION").into(),
        };
        for dataset in r.datasets() {
            for steps in r.budgets() {
                for metric in r.metrics() {
                    for arm in &r.spec.arms {
                        if let Some(s) = r.arm_stat(&dataset, steps, &arm.name, &metric) {
                            r.stats.push(s);
                        }
                    }
                }
            }
        }
        let reference = r.spec.reference_arm().to_string();
        let mut diffs = Vec::new();
        for dataset in r.datasets() {
            let final_ref = r.arm_budget(&dataset, &reference);
            for metric in r.metrics() {
                for arm in r.spec.arms.iter().filter(|a| a.name != reference) {
                    let final_arm = r.arm_budget(&dataset, &arm.name);
                    let mut pairs: Vec<(usize, usize)> = r.budgets().into_iter().map(|b| (b, b)).collect();
                    if let (Some(a), Some(f)) = (final_arm, final_ref) {
                        if a != f {
                            pairs.push((a, f));
                        }
                    }
                    for (a, f) in pairs {
                        let (Some(x), Some(y)) =
                            (r.stat(&dataset, a, &arm.name, &metric), r.stat(&dataset, f, &reference, &metric))
                        else {
                            continue;
                        };
                        diffs.extend(paired(x, y));
                    }
                }
            }
        }
        r.differences = diffs;
        r
    }

    /// One arm's numbers for a metric at a budget, with the paper's beside them; `None` without finished seeds.
    fn arm_stat(&self, dataset: &str, steps: usize, arm: &str, metric: &str) -> Option<ArmStat> {
        let v: Vec<(u64, f64)> = self
            .records
            .iter()
            .filter(|c| c.ok() && c.arm == arm && c.dataset == dataset && c.steps == steps)
            .filter_map(|c| c.scores.get(metric).filter(|v| v.is_finite()).map(|v| (c.seed, *v)))
            .collect();
        if v.is_empty() {
            return None;
        }
        let values: Vec<f64> = v.iter().map(|x| x.1).collect();
        Some(ArmStat {
            dataset: dataset.into(),
            steps,
            arm: arm.into(),
            metric: metric.into(),
            seeds: v.iter().map(|x| x.0).collect(),
            summary: summarize(&values, BOOTSTRAP_SEED),
            values,
            paper: self.paper_value(arm, metric),
        })
    }

    /// The largest budget at which `arm` has finished seeds on `dataset`.
    pub fn arm_budget(&self, dataset: &str, arm: &str) -> Option<usize> {
        self.records.iter().filter(|c| c.ok() && c.arm == arm && c.dataset == dataset).map(|c| c.steps).max()
    }

    /// Read `results.json` (or a study folder holding one).
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() { path.join("results.json") } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        serde_json::from_str(&text).map_err(|e| Error::json(format!("study results {}", file.display()), e))
    }

    /// The datasets with records, in order of appearance.
    pub fn datasets(&self) -> Vec<String> {
        unique(self.records.iter().map(|r| r.dataset.clone()))
    }

    /// The budgets with records, ascending.
    pub fn budgets(&self) -> Vec<usize> {
        let mut b = unique(self.records.iter().map(|r| r.steps));
        b.sort_unstable();
        b
    }

    /// The metrics of the finished records, in the suite's order.
    pub fn metrics(&self) -> Vec<String> {
        crate::eval::report::ordered_keys(self.records.iter().filter(|r| r.ok()).flat_map(|r| r.scores.keys()))
    }

    pub fn stat(&self, dataset: &str, steps: usize, arm: &str, metric: &str) -> Option<&ArmStat> {
        self.stats.iter().find(|s| s.dataset == dataset && s.steps == steps && s.arm == arm && s.metric == metric)
    }

    /// An arm's numbers at `steps`, or with `None` at its largest budget.
    pub fn stat_at(&self, dataset: &str, steps: Option<usize>, arm: &str, metric: &str) -> Option<&ArmStat> {
        let steps = steps.or_else(|| self.arm_budget(dataset, arm))?;
        self.stat(dataset, steps, arm, metric)
    }

    /// An arm minus the reference at `steps` (both), or with `None` each at its largest budget.
    pub fn difference(&self, dataset: &str, steps: Option<usize>, arm: &str, metric: &str) -> Option<&PairedDiff> {
        let (a, r) = match steps {
            Some(s) => (s, s),
            None => (self.arm_budget(dataset, arm)?, self.arm_budget(dataset, self.spec.reference_arm())?),
        };
        self.differences.iter().find(|d| {
            d.dataset == dataset && d.steps == a && d.reference_steps == r && d.arm == arm && d.metric == metric
        })
    }

    /// "800 steps", or with `None` "each arm's largest budget".
    fn budget_words(steps: Option<usize>) -> String {
        steps.map(|s| format!("{s} steps")).unwrap_or_else(|| "each arm at its largest budget".into())
    }

    /// How many records finished, failed and are pending, and every failure's error.
    pub fn status_table(&self) -> Table {
        let failed: Vec<&CellRecord> = self.records.iter().filter(|r| !r.ok()).collect();
        let mut t = Table::new(["cells", "count"]).with_title(format!("study {}", self.spec.name));
        t.push_row(["finished".to_string(), (self.records.len() - failed.len()).to_string()]);
        t.push_row(["failed".to_string(), failed.len().to_string()]);
        t.push_row(["pending".to_string(), self.pending.len().to_string()]);
        for f in failed {
            t.push_row([
                format!("failed: {} seed {} at {} steps", f.arm, f.seed, f.steps),
                f.error.clone().unwrap_or_default(),
            ]);
        }
        t
    }

    /// Per metric (rows) and arm (columns): mean ± std (n) over seeds, with the paper's numbers beside the arms that
    /// have a row in its table.
    pub fn table(&self, dataset: &str, steps: Option<usize>) -> Table {
        let mut headers = vec!["metric".to_string()];
        for a in &self.spec.arms {
            match (steps, self.arm_budget(dataset, &a.name)) {
                (None, Some(b)) => headers.push(format!("{} ({b} steps)", a.name)),
                _ => headers.push(a.name.clone()),
            }
            if let (Some(p), Some(m)) = (&self.spec.paper, &a.paper_method) {
                headers.push(format!("paper: {m} ({}, {})", p.table, p.dataset));
            }
        }
        let mut t = Table::new(headers).with_title(format!(
            "{}: {dataset}, {}: mean ± std (seeds)",
            self.spec.name,
            Self::budget_words(steps)
        ));
        for metric in self.metrics() {
            let mut row = vec![crate::eval::report::label(&metric)];
            for a in &self.spec.arms {
                let s = self.stat_at(dataset, steps, &a.name, &metric);
                row.push(
                    s.map(|s| format!("{:.3} ± {:.3} ({})", s.summary.mean, s.summary.std, s.summary.n))
                        .unwrap_or_default(),
                );
                if self.spec.paper.is_some() && a.paper_method.is_some() {
                    let paper = s.and_then(|s| s.paper).or_else(|| self.paper_value(&a.name, &metric));
                    row.push(paper.map(|(m, sd)| format!("{m:.3} ± {sd:.3}")).unwrap_or_default());
                }
            }
            t.push_row(row);
        }
        t
    }

    fn paper_value(&self, arm: &str, metric: &str) -> Option<(f64, f64)> {
        let p = self.spec.paper.as_ref()?;
        let m = self.spec.arms.iter().find(|a| a.name == arm)?.paper_method.as_ref()?;
        paper_results()
            .into_iter()
            .find(|x| x.table == p.table && x.dataset == p.dataset && &x.method == m && x.metric == metric)
            .map(|x| (x.mean, x.std))
    }

    /// Per metric (rows) and arm (columns): the mean paired difference against the reference arm with its 95%
    /// bootstrap and t intervals and the seeds won.
    pub fn differences_table(&self, dataset: &str, steps: Option<usize>) -> Table {
        let reference = self.spec.reference_arm();
        let arms: Vec<&str> = self.spec.arms.iter().map(|a| a.name.as_str()).filter(|a| *a != reference).collect();
        let mut headers = vec!["metric".to_string()];
        headers.extend(arms.iter().map(|a| format!("{a} − {reference}")));
        let mut t = Table::new(headers).with_title(format!(
            "{}: paired differences against {reference} ({dataset}, {}): mean [95% bootstrap] [95% t] wins/n",
            self.spec.name,
            Self::budget_words(steps)
        ));
        for metric in self.metrics() {
            let mut row = vec![crate::eval::report::label(&metric)];
            for a in &arms {
                row.push(self.difference(dataset, steps, a, &metric).map(format_difference).unwrap_or_default());
            }
            t.push_row(row);
        }
        t
    }

    /// One metric's arms on one dataset: every seed's value (dots), the mean (bar) and its 95% bootstrap interval
    /// (whisker), one colour per budget.
    pub fn interval_plot(&self, dataset: &str, metric: &str) -> Result<Svg> {
        use plotters::prelude::*;
        let arms: Vec<String> = self.spec.arms.iter().map(|a| a.name.clone()).collect();
        let budgets = self.budgets();
        let stats: Vec<(usize, usize, &ArmStat)> = arms
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                budgets
                    .iter()
                    .enumerate()
                    .filter_map(move |(j, b)| self.stat(dataset, *b, a, metric).map(|s| (i, j, s)))
            })
            .collect();
        if stats.is_empty() {
            return Err(Error::config(
                "metric",
                format!("study {} has no finished '{metric}' on {dataset}", self.spec.name),
            ));
        }
        let all: Vec<f64> = stats
            .iter()
            .flat_map(|(_, _, s)| s.values.iter().copied().chain([s.summary.bootstrap.0, s.summary.bootstrap.1]))
            .collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pad = if hi > lo { (hi - lo) * 0.1 } else { 0.05 };
        let title = format!("{}: {} ({dataset})", self.spec.name, crate::eval::report::label(metric));
        let mut text = format!("{title}: mean [95% bootstrap] per arm and budget");
        for (i, j, s) in &stats {
            text += &format!(
                "\n  {} at {} steps: {:.3} [{:.3}, {:.3}] over {} seeds",
                arms[*i], budgets[*j], s.summary.mean, s.summary.bootstrap.0, s.summary.bootstrap.1, s.summary.n
            );
        }
        let width = budgets.len() as f64;
        Svg::draw((160 + 110 * arms.len() as u32, 400), text, |root| {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..arms.len() as f64, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(arms.len() + 1)
                .x_label_formatter(&|x| {
                    let i = (x - 0.5).round();
                    if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < arms.len() {
                        arms[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .y_desc(crate::eval::report::label(metric))
                .draw()?;
            for (j, b) in budgets.iter().enumerate() {
                let color = crate::display::palette(j);
                let x_of = |i: usize| i as f64 + (j as f64 + 0.5) / width * 0.8 + 0.1;
                let mine: Vec<&(usize, usize, &ArmStat)> = stats.iter().filter(|s| s.1 == j).collect();
                chart
                    .draw_series(mine.iter().map(|(i, _, s)| {
                        PathElement::new(
                            vec![(x_of(*i), s.summary.bootstrap.0), (x_of(*i), s.summary.bootstrap.1)],
                            color.stroke_width(2),
                        )
                    }))?
                    .label(format!("{b} steps"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
                chart.draw_series(mine.iter().map(|(i, _, s)| {
                    let w = 0.12 / width;
                    PathElement::new(
                        vec![(x_of(*i) - w, s.summary.mean), (x_of(*i) + w, s.summary.mean)],
                        color.stroke_width(3),
                    )
                }))?;
                chart.draw_series(mine.iter().flat_map(|(i, _, s)| {
                    s.values.iter().map(move |v| Circle::new((x_of(*i) + 0.04 / width, *v), 3, color.mix(0.6).filled()))
                }))?;
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
            root.present()?;
            Ok(())
        })
    }

    /// Columns for `eval-compare`: each arm's mean ± std (n) at its largest budget, per dataset.
    pub fn compare_columns(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let datasets = self.datasets();
        let mut cols = Vec::new();
        for dataset in &datasets {
            for a in &self.spec.arms {
                let col: BTreeMap<String, String> = self
                    .metrics()
                    .into_iter()
                    .filter_map(|m| {
                        let s = self.stat_at(dataset, None, &a.name, &m)?;
                        Some((m, format!("{:.3}±{:.3} (n={})", s.summary.mean, s.summary.std, s.summary.n)))
                    })
                    .collect();
                if !col.is_empty() {
                    let ds = if datasets.len() > 1 { format!(", {dataset}") } else { String::new() };
                    cols.push((format!("{}/{}{ds}", self.spec.name, a.name), col));
                }
            }
        }
        cols
    }

    /// One CSV row per record: its cell, status, every metric (headline form, then `raw:` columns for the other
    /// form), provenance and error.
    pub fn to_csv(&self) -> String {
        let metrics = self.metrics();
        let forms: Vec<String> = unique(self.records.iter().flat_map(|r| r.other_forms.keys().cloned()));
        let mut header: Vec<String> =
            ["arm", "dataset", "seed", "steps", "status", "protocol"].map(String::from).to_vec();
        header.extend(metrics.iter().cloned());
        for f in &forms {
            header.extend(metrics.iter().map(|m| format!("{f}:{m}")));
        }
        header.extend(
            ["train_seconds", "first_stage_seconds", "eval_seconds", "config_hash", "commit", "device", "run", "error"]
                .map(String::from),
        );
        let num = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        let mut out = csv_line(&header);
        for r in &self.records {
            let mut row = vec![
                r.arm.clone(),
                r.dataset.clone(),
                r.seed.to_string(),
                r.steps.to_string(),
                format!("{:?}", r.status).to_lowercase(),
                r.protocol.clone(),
            ];
            row.extend(metrics.iter().map(|m| num(r.scores.get(m).copied())));
            for f in &forms {
                row.extend(metrics.iter().map(|m| num(r.other_forms.get(f).and_then(|o| o.get(m)).copied())));
            }
            row.extend([
                num(r.train_seconds),
                num(r.first_stage_seconds),
                num(r.eval_seconds),
                r.config_hash.clone(),
                r.commit.clone(),
                r.device.clone(),
                r.run.clone(),
                r.error.clone().unwrap_or_default(),
            ]);
            out += &csv_line(&row);
        }
        out
    }

    /// Everything as Markdown: each arm at its largest budget, then every budget when there are several.
    pub fn markdown(&self) -> String {
        let mut s = format!("# Study {}\n\n{}\n\n", self.spec.name, self.spec.description);
        s += &self.status_table().to_markdown();
        let budgets = self.budgets();
        let mut views = vec![None];
        if budgets.len() > 1 {
            views.extend(budgets.into_iter().map(Some));
        }
        for dataset in self.datasets() {
            for steps in &views {
                s += "\n";
                s += &self.table(&dataset, *steps).to_markdown();
                s += "\n";
                s += &self.differences_table(&dataset, *steps).to_markdown();
            }
        }
        s
    }

    /// `results.json`, `results.csv`, `summary.md` and `plots/<dataset>-<metric>.svg` in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::json("study results", e))?;
        write_atomic(&dir.join("results.json"), json.as_bytes())?;
        write_atomic(&dir.join("results.csv"), self.to_csv().as_bytes())?;
        write_atomic(&dir.join("summary.md"), self.markdown().as_bytes())?;
        for dataset in self.datasets() {
            for metric in self.metrics() {
                if !self.stats.iter().any(|s| s.dataset == dataset && s.metric == metric) {
                    continue;
                }
                let name = crate::fs::file_safe(&format!("{dataset}-{metric}"));
                self.interval_plot(&dataset, &metric)?.save(dir.join("plots").join(format!("{name}.svg")))?;
            }
        }
        Ok(())
    }

    /// The status, and each dataset's table and paired differences with each arm at its largest budget.
    pub fn overview(&self) -> Panel {
        let mut p = Panel::column().push(&self.status_table());
        for d in self.datasets() {
            p = p.push(&self.table(&d, None)).push(&self.differences_table(&d, None));
        }
        p
    }
}

crate::display::impl_show_via!(StudyResults, overview);

/// `x − y` seed by seed on the seeds both have; `None` without common seeds.
fn paired(x: &ArmStat, y: &ArmStat) -> Option<PairedDiff> {
    let pairs: Vec<(u64, f64)> = x
        .seeds
        .iter()
        .zip(&x.values)
        .filter_map(|(s, a)| y.seeds.iter().position(|t| t == s).map(|j| (*s, a - y.values[j])))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let d: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    Some(PairedDiff {
        dataset: x.dataset.clone(),
        steps: x.steps,
        reference_steps: y.steps,
        arm: x.arm.clone(),
        reference: y.arm.clone(),
        metric: x.metric.clone(),
        seeds: pairs.iter().map(|p| p.0).collect(),
        wins: d.iter().filter(|v| **v > 0.0).count(),
        summary: summarize(&d, BOOTSTRAP_SEED),
        differences: d,
    })
}

fn format_difference(d: &PairedDiff) -> String {
    let s = &d.summary;
    let t = s.t_interval.map(|(a, b)| format!(" [{a:+.3}, {b:+.3}]")).unwrap_or_default();
    format!("{:+.3} [{:+.3}, {:+.3}]{t} {}/{}", s.mean, s.bootstrap.0, s.bootstrap.1, d.wins, s.n)
}

fn unique<T: PartialEq>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

/// A CSV line (RFC 4180: fields with commas, quotes or line breaks are quoted, quotes doubled).
fn csv_line(fields: &[String]) -> String {
    let f: Vec<String> = fields
        .iter()
        .map(|x| if x.contains([',', '"', '\n', '\r']) { format!("\"{}\"", x.replace('"', "\"\"")) } else { x.clone() })
        .collect();
    format!("{}\n", f.join(","))
}
