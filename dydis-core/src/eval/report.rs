//! Evaluation reports: every score of the metric suite with its parameters, seeds and timings, as JSON, Markdown
//! and HTML; a display for notebooks; several reports (or the paper's numbers) combined into one table.
use super::downstream::{downstream, DownstreamResult};
use super::gbt::GbtConfig;
use super::metrics::*;
use super::Codes;
use crate::data::FactorSpace;
use crate::display::{impl_show_via, Table};
use crate::fs::write_atomic;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Sample counts and parameters of the suite. `paper()` is the released evaluation's (docs/architecture.md);
/// `quick()` divides the counts by ten for CPU checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalConfig {
    pub seed: u64,
    pub num_train: usize,
    pub num_test: usize,
    pub factor_vae_batch: usize,
    pub factor_vae_variance_samples: usize,
    pub bins: usize,
    pub sap_c: f64,
    pub infomec_neighbors: usize,
    pub gbt: GbtConfig,
    /// Metrics to run (names as in [`EvalConfig::METRICS`]).
    pub metrics: Vec<String>,
    pub downstream_sizes: Vec<usize>,
    /// Images an attribute dataset's TAD samples (reference-spec §7.3: one shuffled batch of 10,000).
    #[serde(default = "tad_samples")]
    pub tad_samples: usize,
}

fn tad_samples() -> usize {
    10_000
}

impl EvalConfig {
    /// Every metric the suite can run. `infomec` is the released evaluation's variant (10,000 sampled rows, IQR
    /// activity), `infomec_original` Hsu et al.'s definition (every grid row once, range activity).
    pub const METRICS: [&'static str; 9] =
        ["factorvae", "betavae", "dci", "mig", "sap", "modularity", "infomec", "infomec_original", "downstream"];
    /// The released evaluation's suite (`paper()` and `quick()` run these).
    pub const PAPER_METRICS: [&'static str; 8] =
        ["factorvae", "betavae", "dci", "mig", "sap", "modularity", "infomec", "downstream"];

    pub fn paper() -> Self {
        EvalConfig {
            seed: 0,
            num_train: 10_000,
            num_test: 5_000,
            factor_vae_batch: 64,
            factor_vae_variance_samples: 10_000,
            bins: 20,
            sap_c: 0.01,
            infomec_neighbors: 10,
            gbt: GbtConfig::default(),
            metrics: Self::PAPER_METRICS.iter().map(|s| s.to_string()).collect(),
            downstream_sizes: vec![10_000, 1_000, 100],
            tad_samples: 10_000,
        }
    }

    pub fn quick() -> Self {
        EvalConfig {
            num_train: 1_000,
            num_test: 500,
            factor_vae_variance_samples: 1_000,
            downstream_sizes: vec![1_000, 100],
            tad_samples: 1_000,
            ..Self::paper()
        }
    }

    /// A named sample-count preset: `paper` or `quick`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "quick" => Ok(Self::quick()),
            other => Err(Error::config("eval preset", format!("unknown preset '{other}' (paper or quick)"))),
        }
    }

    pub fn validate(&self) -> Result<()> {
        for m in &self.metrics {
            if !Self::METRICS.contains(&m.as_str()) {
                return Err(Error::config(
                    "metrics",
                    format!("unknown metric '{m}' (known: {})", Self::METRICS.join(", ")),
                ));
            }
        }
        if self.num_train < 2 || self.num_test < 1 || self.factor_vae_batch < 2 || self.bins < 2 || self.tad_samples < 2
        {
            return Err(Error::config(
                "eval",
                "num_train ≥ 2, num_test ≥ 1, factor_vae_batch ≥ 2, bins ≥ 2 and tad_samples ≥ 2 are needed",
            ));
        }
        self.gbt.validate()
    }

    fn wants(&self, m: &str) -> bool {
        self.metrics.iter().any(|x| x == m)
    }
}

/// One evaluation: scores (flat, by key), the full per-metric results, parameters and timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was evaluated (a checkpoint or a representation file) and on which data.
    pub source: String,
    pub dataset: String,
    pub representation: String,
    pub config: EvalConfig,
    pub scores: BTreeMap<String, f64>,
    pub details: BTreeMap<String, serde_json::Value>,
    pub seconds: BTreeMap<String, f64>,
    pub dydis_version: String,
    /// Which form of the representation the scores are, and whether it is the paper's protocol.
    #[serde(default)]
    pub protocol: String,
    /// The scores of the model's other form (`raw units` beside aligned ones), by form.
    #[serde(default)]
    pub other_forms: BTreeMap<String, BTreeMap<String, f64>>,
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Run the configured metrics on codes over a factor grid.
pub fn evaluate(
    codes: &Codes,
    space: &FactorSpace,
    cfg: &EvalConfig,
    source: &str,
    dataset: &str,
    representation: &str,
) -> Result<Report> {
    cfg.validate()?;
    let mut r = Report::new(source, dataset, representation, cfg);
    let (n, m, seed) = (cfg.num_train, cfg.num_test, cfg.seed);
    let timed = |name: &str, r: &mut Report, f: &mut dyn FnMut(&mut Report) -> Result<()>| -> Result<()> {
        if cfg.wants(name) {
            let t = Instant::now();
            f(r)?;
            r.seconds.insert(name.into(), t.elapsed().as_secs_f64());
        }
        Ok(())
    };
    timed("factorvae", &mut r, &mut |r| {
        let x = factor_vae(codes, space, cfg.factor_vae_batch, n, m, cfg.factor_vae_variance_samples, seed)?;
        r.scores.insert("factorvae".into(), x.eval_accuracy);
        r.details.insert("factorvae".into(), json(&x));
        Ok(())
    })?;
    timed("betavae", &mut r, &mut |r| {
        let x = beta_vae(codes, space, cfg.factor_vae_batch, n, m, seed)?;
        r.scores.insert("betavae".into(), x.eval_accuracy);
        r.details.insert("betavae".into(), json(&x));
        Ok(())
    })?;
    timed("dci", &mut r, &mut |r| {
        let x = dci(codes, space, n, m, &cfg.gbt, seed)?;
        r.scores.insert("dci_disentanglement".into(), x.disentanglement);
        r.scores.insert("dci_completeness".into(), x.completeness);
        r.scores.insert("dci_informativeness".into(), x.informativeness_test);
        r.details.insert("dci".into(), json(&x));
        Ok(())
    })?;
    timed("mig", &mut r, &mut |r| {
        let x = mig(codes, space, n, cfg.bins, seed)?;
        r.scores.insert("mig".into(), x.score);
        r.details.insert("mig".into(), json(&x));
        Ok(())
    })?;
    timed("sap", &mut r, &mut |r| {
        let x = sap(codes, space, n, m, cfg.sap_c, seed)?;
        r.scores.insert("sap".into(), x.score);
        r.details.insert("sap".into(), json(&x));
        Ok(())
    })?;
    timed("modularity", &mut r, &mut |r| {
        let x = modularity(codes, space, n, m, cfg.bins, seed)?;
        r.scores.insert("modularity".into(), x.score);
        r.scores.insert("explicitness".into(), x.explicitness_test);
        r.details.insert("modularity".into(), json(&x));
        Ok(())
    })?;
    timed("infomec", &mut r, &mut |r| {
        let x = infomec(codes, space, n, cfg.infomec_neighbors, seed)?;
        r.scores.insert("infom".into(), x.infom);
        r.scores.insert("infoc".into(), x.infoc);
        r.scores.insert("infoe".into(), x.infoe);
        r.details.insert("infomec".into(), json(&x));
        Ok(())
    })?;
    timed("infomec_original", &mut r, &mut |r| {
        let x = infomec_original(codes, space, cfg.infomec_neighbors, seed)?;
        r.scores.insert("infom_original".into(), x.infom);
        r.scores.insert("infoc_original".into(), x.infoc);
        r.scores.insert("infoe_original".into(), x.infoe);
        r.details.insert("infomec_original".into(), json(&x));
        Ok(())
    })?;
    timed("downstream", &mut r, &mut |r| {
        let x: DownstreamResult = downstream(codes, space, &cfg.downstream_sizes, m, &cfg.gbt, seed)?;
        // The paper's reference size (10,000) is left out of the key: Acc₁₀₀₀/Acc as in Table 5.
        let base = x.sizes.iter().map(|s| s.num_train).max().unwrap_or(0);
        let base = if base == 10_000 { String::new() } else { base.to_string() };
        for (size, ratio) in &x.ratios {
            r.scores.insert(format!("downstream_acc{size}_over_acc{base}"), *ratio);
        }
        for s in &x.sizes {
            r.scores.insert(format!("downstream_acc{}", s.num_train), s.mean_test_accuracy);
        }
        r.details.insert("downstream".into(), json(&x));
        Ok(())
    })?;
    Ok(r)
}

/// Display names of score keys, in table order.
pub const SCORE_NAMES: [(&str, &str); 21] = [
    ("factorvae", "FactorVAE score"),
    ("betavae", "β-VAE score"),
    ("dci_disentanglement", "DCI disentanglement"),
    ("dci_completeness", "DCI completeness"),
    ("dci_informativeness", "DCI informativeness (test accuracy)"),
    ("mig", "MIG"),
    ("sap", "SAP"),
    ("modularity", "Modularity"),
    ("explicitness", "Explicitness (test AUC)"),
    ("infom", "InfoM (released: sampled rows, IQR activity)"),
    ("infoc", "InfoC (released)"),
    ("infoe", "InfoE (released)"),
    ("infom_original", "InfoM (Hsu et al.: every row, range activity)"),
    ("infoc_original", "InfoC (Hsu et al.)"),
    ("infoe_original", "InfoE (Hsu et al.)"),
    ("downstream_acc1000_over_acc", "Acc₁₀₀₀/Acc"),
    ("downstream_acc100_over_acc", "Acc₁₀₀/Acc"),
    ("downstream_acc100_over_acc1000", "Acc₁₀₀/Acc₁₀₀₀"),
    ("tad", "TAD"),
    ("tad_attributes", "attributes captured"),
    ("fid", "FID"),
];

/// A score key's name in tables (`dci_disentanglement` → `DCI disentanglement`).
pub(crate) fn label(key: &str) -> String {
    if let Some((_, v)) = SCORE_NAMES.iter().find(|(k, _)| *k == key) {
        return v.to_string();
    }
    match key.strip_prefix("downstream_acc").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => format!("downstream accuracy, {n} training samples"),
        None => key.to_string(),
    }
}

/// Score keys in the suite's order (unknown keys last, alphabetically), without repeats.
pub(crate) fn ordered_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.cloned().collect();
    keys.sort_by_key(|k| (SCORE_NAMES.iter().position(|(n, _)| n == k).unwrap_or(usize::MAX), k.clone()));
    keys.dedup();
    keys
}

impl Report {
    /// An empty report (no scores yet) of `representation` from `source` on `dataset`.
    pub fn new(source: &str, dataset: &str, representation: &str, cfg: &EvalConfig) -> Report {
        Report {
            source: source.into(),
            dataset: dataset.into(),
            representation: representation.into(),
            config: cfg.clone(),
            scores: BTreeMap::new(),
            details: BTreeMap::new(),
            seconds: BTreeMap::new(),
            dydis_version: env!("CARGO_PKG_VERSION").into(),
            protocol: String::new(),
            other_forms: BTreeMap::new(),
        }
    }

    /// The scores (the headline form first, then any other form), with each metric's seconds.
    pub fn table(&self) -> Table {
        let mut headers = vec!["metric".to_string(), self.headline_name()];
        headers.extend(self.other_forms.keys().cloned());
        headers.push("seconds".into());
        let mut title = format!("{} on {} ({})", self.source, self.dataset, self.representation);
        if !self.protocol.is_empty() {
            title += &format!(". Scores: {}", self.protocol);
        }
        let mut t = Table::new(headers).with_title(title);
        for k in ordered_keys(self.scores.keys()) {
            let metric = match k.as_str() {
                "explicitness" => "modularity",
                "infom" | "infoc" | "infoe" => "infomec",
                "infom_original" | "infoc_original" | "infoe_original" => "infomec_original",
                other => other.split('_').next().unwrap_or(other),
            };
            let mut row = vec![label(&k), format!("{:.3}", self.scores[&k])];
            row.extend(self.other_forms.values().map(|o| o.get(&k).map(|v| format!("{v:.3}")).unwrap_or_default()));
            row.push(self.seconds.get(metric).map(|s| format!("{s:.2}")).unwrap_or_default());
            t.push_row(row);
        }
        t
    }

    /// The headline column's name: its form when another form stands beside it.
    fn headline_name(&self) -> String {
        if self.other_forms.is_empty() {
            "score".into()
        } else if self.representation.contains("aligned") {
            "aligned units (paper's protocol)".into()
        } else {
            "raw units".into()
        }
    }

    /// Markdown: the scores, then the parameters.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Evaluation: {} on {}\n\nRepresentation: {}. dydis {}.\n",
            self.source, self.dataset, self.representation, self.dydis_version
        );
        if !self.protocol.is_empty() {
            s += &format!("\nScores: {}.\n", self.protocol);
        }
        s += &format!("\n| metric | {} |", self.headline_name());
        self.other_forms.keys().for_each(|f| s += &format!(" {f} |"));
        s += &format!("\n|---|---|{}\n", "---|".repeat(self.other_forms.len()));
        for k in ordered_keys(self.scores.keys()) {
            s += &format!("| {} | {:.4} |", label(&k), self.scores[&k]);
            for o in self.other_forms.values() {
                s += &o.get(&k).map(|v| format!(" {v:.4} |")).unwrap_or_else(|| " |".into());
            }
            s += "\n";
        }
        s += &format!(
            "\nParameters: `{}`\n\nSeconds per metric: `{}`\n",
            serde_json::to_string(&self.config).unwrap_or_default(),
            serde_json::to_string(&self.seconds).unwrap_or_default()
        );
        s
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::File { path: path.into(), message: format!("not an evaluation report: {e}") })
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir` (each atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join("report.json"),
            serde_json::to_string_pretty(self).map_err(|e| Error::json("the report", e))?.as_bytes(),
        )?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        let html = format!(
            "<!doctype html><meta charset=utf-8><title>dydis evaluation</title>{}",
            crate::display::Show::to_html(&self.table())
        );
        write_atomic(&dir.join("report.html"), html.as_bytes())
    }
}

impl_show_via!(Report, table);

/// One row of the paper's published numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaperRow {
    pub table: String,
    pub method: String,
    pub dataset: String,
    pub metric: String,
    pub mean: f64,
    pub std: f64,
}

/// The paper's numbers (Tables 1, 2, 4, 5, 10), kept as data with their source table.
pub fn paper_results() -> Vec<PaperRow> {
    #[derive(Deserialize)]
    struct File {
        rows: Vec<PaperRow>,
    }
    let f: File = serde_json::from_str(include_str!("paper_results.json")).expect("paper_results.json is valid");
    f.rows
}

/// Several reports side by side, one column per report, optionally with the paper's numbers for `dataset`
/// (`shapes3d`, `mpi3d`, `cars3d`, `celeba`) as extra columns.
pub fn compare(reports: &[(String, Report)], paper_dataset: Option<&str>) -> Table {
    let columns: Vec<(String, BTreeMap<String, String>)> = reports
        .iter()
        .map(|(n, r)| (n.clone(), r.scores.iter().map(|(k, v)| (k.clone(), format!("{v:.3}"))).collect()))
        .collect();
    compare_columns(&columns, paper_dataset)
}

/// Named columns of formatted values by score key (a report's scores, a study arm's mean ± std) side by side,
/// optionally with the paper's numbers for `dataset` as extra columns.
pub fn compare_columns(columns: &[(String, BTreeMap<String, String>)], paper_dataset: Option<&str>) -> Table {
    let keys = ordered_keys(columns.iter().flat_map(|(_, c)| c.keys()));
    let paper: Vec<PaperRow> =
        paper_dataset.map(|d| paper_results().into_iter().filter(|r| r.dataset == d).collect()).unwrap_or_default();
    let mut methods: Vec<(String, String)> = Vec::new();
    for r in &paper {
        let m = (r.table.clone(), r.method.clone());
        if !methods.contains(&m) && keys.contains(&r.metric) {
            methods.push(m);
        }
    }
    let mut headers = vec!["metric".to_string()];
    headers.extend(columns.iter().map(|(n, _)| n.clone()));
    headers.extend(methods.iter().map(|(t, m)| format!("{m} ({t})")));
    let mut t = Table::new(headers).with_title("comparison");
    for k in &keys {
        let mut row = vec![label(k)];
        row.extend(columns.iter().map(|(_, c)| c.get(k).cloned().unwrap_or_default()));
        row.extend(methods.iter().map(|(tb, m)| {
            paper
                .iter()
                .find(|p| &p.table == tb && &p.method == m && &p.metric == k)
                .map(|p| format!("{:.3}±{:.3}", p.mean, p.std))
                .unwrap_or_default()
        }));
        t.push_row(row);
    }
    t
}
