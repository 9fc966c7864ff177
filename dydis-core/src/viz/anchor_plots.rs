//! DyGA anchors over time (paper §3.2): per unit, K after every refit, the splits and
//! filters each refit performed, the final log-likelihood, and, for the latest anchors, the sorted weights and
//! hard-cluster sizes. The refit history is the `anchors.jsonl` log the trainer appends to after every refit.
use crate::display::{line_plot, Panel, Series, Show, Svg, Table};
use crate::dyga::{Anchors, RefitRecord};
use crate::{Error, Result};
use std::path::Path;
use tch::Kind;

/// The anchor plots of a model: named SVGs plus a table of the latest anchors.
#[derive(Debug, Clone)]
pub struct AnchorPlots {
    pub plots: Vec<(String, Svg)>,
    pub table: Table,
}

fn per_unit(history: &[RefitRecord], units: usize, value: impl Fn(&RefitRecord, usize) -> Option<f64>) -> Vec<Series> {
    (0..units)
        .map(|u| {
            Series::new(format!("unit {u}"), history.iter().filter_map(|r| value(r, u).map(|v| (r.epoch as f64, v))))
        })
        .collect()
}

/// Plots of the latest `anchors` and of the refit `history` (may be empty: then only the latest anchors).
pub fn anchor_plots(anchors: &Anchors, history: &[RefitRecord]) -> Result<AnchorPlots> {
    let n = anchors.units.len();
    let mut plots = Vec::new();
    if !history.is_empty() {
        plots.push((
            "k-over-refits".to_string(),
            line_plot(
                "anchors K per unit over refits",
                "epoch",
                "K",
                &per_unit(history, n, |r, u| r.k.get(u).map(|&k| k as f64)),
            )?,
        ));
        if history.iter().any(|r| !r.splits.is_empty()) {
            let total = |f: fn(&RefitRecord) -> &Vec<usize>| {
                history.iter().map(move |r| (r.epoch as f64, f(r).iter().sum::<usize>() as f64))
            };
            plots.push((
                "splits-filters".to_string(),
                line_plot(
                    "splits and filtered anchors per refit (all units)",
                    "epoch",
                    "count",
                    &[Series::new("splits", total(|r| &r.splits)), Series::new("filtered", total(|r| &r.filtered))],
                )?,
            ));
            plots.push((
                "log-likelihood".to_string(),
                line_plot(
                    "final mean log-likelihood per unit over refits",
                    "epoch",
                    "log-likelihood",
                    &per_unit(history, n, |r, u| r.log_likelihood.get(u).copied()),
                )?,
            ));
        }
    }
    let sorted = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(|a, b| b.total_cmp(a));
        v.into_iter().enumerate().map(|(i, x)| (i as f64, x)).collect::<Vec<_>>()
    };
    let weights: Vec<Series> = anchors
        .units
        .iter()
        .map(|u| {
            Series::new(
                format!("unit {}", u.unit),
                sorted(
                    Vec::try_from(u.mixture.weights.to_kind(Kind::Double).to_device(tch::Device::Cpu))
                        .unwrap_or_default(),
                ),
            )
        })
        .collect();
    plots.push((
        "weights".to_string(),
        line_plot(
            &format!("anchor weights per unit, sorted (after epoch {})", anchors.epoch),
            "anchor rank",
            "weight",
            &weights,
        )?,
    ));
    let sizes: Vec<Series> = anchors
        .units
        .iter()
        .map(|u| Series::new(format!("unit {}", u.unit), sorted(u.sizes.iter().map(|&s| s as f64).collect())))
        .collect();
    plots.push((
        "sizes".to_string(),
        line_plot(
            &format!("hard-cluster sizes per unit, sorted (after epoch {})", anchors.epoch),
            "anchor rank",
            "members",
            &sizes,
        )?,
    ));
    Ok(AnchorPlots { plots, table: anchors.table() })
}

impl AnchorPlots {
    /// Save every plot as `<dir>/<name>.svg` and the table as `<dir>/anchors.txt`; returns the files written.
    pub fn save(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::new();
        for (name, svg) in &self.plots {
            let p = dir.join(format!("{name}.svg"));
            svg.save(&p)?;
            files.push(p);
        }
        let p = dir.join("anchors.txt");
        crate::fs::write_atomic(&p, self.table.to_text().as_bytes())?;
        files.push(p);
        Ok(files)
    }

    fn panel(&self) -> Panel {
        let mut p = Panel::column().push(&self.table);
        let mut row = Panel::row();
        for (i, (_, svg)) in self.plots.iter().enumerate() {
            row = row.push(svg);
            if i % 2 == 1 {
                p = p.push(&row);
                row = Panel::row();
            }
        }
        if self.plots.len() % 2 == 1 {
            p = p.push(&row);
        }
        p
    }
}

impl Show for AnchorPlots {
    fn to_html(&self) -> String {
        self.panel().to_html()
    }
    fn to_text(&self) -> String {
        self.panel().to_text()
    }
}
crate::display::rich_display!(AnchorPlots);
