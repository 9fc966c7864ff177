//! Latent-unit projections (paper Fig. 1, Fig. 11): each unit's D-dimensional features of many images projected to
//! 2-D by PCA (fitted on those features), each point coloured by the value of the factor the unit is most associated
//! with, measured by normalised mutual information (arithmetic mean normalisation, as scikit-learn's default) between
//! the unit's first principal component — discretised into 20 equal-width bins, as MIG does — and each factor.
//! The unit's anchors (means, same projection) are drawn on top. The paper uses PaCMAP; PCA is deterministic and
//! needs no extra native library (docs/architecture.md).
use crate::data::FactorSpace;
use crate::display::{Show, Svg, Table};
use crate::dyga::Anchors;
use crate::eval::metrics::{discretise, entropy, mutual_info};
use crate::{Error, Result};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// One unit's projection.
#[derive(Debug, Clone, Serialize)]
pub struct UnitProjection {
    pub unit: usize,
    /// 2-D coordinates of every image's feature.
    pub coords: Vec<(f64, f64)>,
    /// Variance explained by the two axes (fraction of the total).
    pub explained: (f64, f64),
    /// The factor with the highest NMI, and that NMI.
    pub factor: usize,
    pub nmi: f64,
    /// NMI with every factor.
    pub nmi_all: Vec<f64>,
    /// The class of `factor` for every point (the colour).
    pub classes: Vec<usize>,
    /// Projected anchor means and their weights (empty without anchors).
    pub anchors: Vec<(f64, f64, f64)>,
}

/// Projections of all units of a set of images.
#[derive(Debug, Clone, Serialize)]
pub struct Projections {
    pub units: Vec<UnitProjection>,
    pub factor_names: Vec<String>,
    pub factor_sizes: Vec<usize>,
    pub method: String,
}

/// Normalised mutual information of two discrete labelings, 2 I / (H(a) + H(b)) (0 when both are constant).
pub fn nmi(a: &[usize], b: &[usize]) -> f64 {
    let h = entropy(a) + entropy(b);
    if h <= 0.0 {
        return 0.0;
    }
    (2.0 * mutual_info(a, b) / h).clamp(0.0, 1.0)
}

/// Project the raw units `[n, N, D]` of the grid images `indices` (one per row) of `space`. `anchors` (fitted on
/// the same units, e.g. the model's) are projected too.
pub fn project_units(
    units: &Tensor,
    indices: &[usize],
    space: &FactorSpace,
    anchors: Option<&Anchors>,
) -> Result<Projections> {
    let (n, n_units, d) =
        units.size3().map_err(|_| Error::Shape { got: units.size(), expected: "[n, N, D] latent units".into() })?;
    if n as usize != indices.len() {
        return Err(Error::config("projection", format!("{} indices for {n} rows of units", indices.len())));
    }
    if n < 3 {
        return Err(Error::config("projection", format!("{n} images are too few to project (need at least 3)")));
    }
    let u = units.to_device(Device::Cpu).to_kind(Kind::Double);
    if u.isfinite().all().int64_value(&[]) == 0 {
        return Err(Error::config("projection", "the latent units contain NaN or infinity"));
    }
    let classes: Vec<Vec<usize>> = indices.iter().map(|&i| space.classes_of(i)).collect::<Result<_>>()?;
    let nf = space.num_factors();
    let per_factor: Vec<Vec<usize>> = (0..nf).map(|f| classes.iter().map(|c| c[f]).collect()).collect();
    let mut out = Vec::new();
    for j in 0..n_units {
        let x = u.select(1, j); // [n, D]
        let mean = x.mean_dim(0, true, Kind::Double);
        let xc = &x - &mean;
        let cov = xc.transpose(0, 1).matmul(&xc) / (n - 1) as f64;
        let (evals, evecs) = cov.linalg_eigh("L"); // ascending
        let total = evals.sum(Kind::Double).double_value(&[]).max(1e-300);
        let axes = evecs.narrow(1, d - 2.min(d), 2.min(d)).flip([1]); // [D, 2], leading first
        let ev: Vec<f64> = Vec::try_from(evals.flip([0]))?;
        let p = xc.matmul(&axes);
        let p = if p.size()[1] == 1 { Tensor::cat(&[p.shallow_clone(), p.zeros_like()], 1) } else { p };
        let flat: Vec<f64> = Vec::try_from(p.flatten(0, -1))?;
        let coords: Vec<(f64, f64)> = flat.chunks(2).map(|c| (c[0], c[1])).collect();
        let first: Vec<f64> = coords.iter().map(|c| c.0).collect();
        let code = discretise(&first, 20);
        let nmi_all: Vec<f64> = per_factor.iter().map(|f| nmi(&code, f)).collect();
        let factor = nmi_all.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        let anchors_2d = match anchors.and_then(|a| a.units.iter().find(|ua| ua.unit == j as usize)) {
            Some(ua) => {
                let m = ua.raw_means().to_device(Device::Cpu).to_kind(Kind::Double);
                if m.size()[1] != d {
                    return Err(Error::config(
                        "projection",
                        format!("unit {j}: anchors of dimension {} for features of {d}", m.size()[1]),
                    ));
                }
                let pm = (m - &mean).matmul(&axes);
                let w: Vec<f64> = Vec::try_from(ua.mixture.weights.to_device(Device::Cpu).to_kind(Kind::Double))?;
                let pv: Vec<f64> = Vec::try_from(pm.flatten(0, -1))?;
                let cols = pm.size()[1] as usize;
                pv.chunks(cols).zip(w).map(|(c, w)| (c[0], c.get(1).copied().unwrap_or(0.0), w)).collect()
            }
            None => Vec::new(),
        };
        out.push(UnitProjection {
            unit: j as usize,
            coords,
            explained: (ev[0] / total, ev.get(1).copied().unwrap_or(0.0) / total),
            factor,
            nmi: nmi_all[factor],
            nmi_all,
            classes: per_factor[factor].clone(),
            anchors: anchors_2d,
        });
    }
    Ok(Projections {
        units: out,
        factor_names: space.names().iter().map(|s| s.to_string()).collect(),
        factor_sizes: space.sizes(),
        method: "PCA".into(),
    })
}

impl Projections {
    /// Per unit: the most associated factor, its NMI, and the NMI with every factor.
    pub fn table(&self) -> Table {
        let mut headers = vec!["unit".to_string(), "factor (max NMI)".into(), "NMI".into(), "PC1/PC2 variance".into()];
        headers.extend(self.factor_names.iter().map(|f| format!("NMI {f}")));
        let mut t =
            Table::new(headers).with_title(format!("latent units projected by {} and matched to factors", self.method));
        for u in &self.units {
            let mut row = vec![
                u.unit.to_string(),
                self.factor_names[u.factor].clone(),
                format!("{:.3}", u.nmi),
                format!("{:.2} / {:.2}", u.explained.0, u.explained.1),
            ];
            row.extend(u.nmi_all.iter().map(|v| format!("{v:.3}")));
            t.push_row(row);
        }
        t
    }

    /// Write the figure as SVG and, next to it (`.json`), the table with the image count and seed.
    pub fn save(&self, svg: &std::path::Path, images: usize, seed: u64) -> Result<()> {
        self.figure()?.save(svg)?;
        let json = serde_json::json!({"images": images, "seed": seed, "table": self.table().to_json()});
        let text = serde_json::to_string_pretty(&json).map_err(|e| crate::Error::json("the projection table", e))?;
        crate::fs::write_atomic(&svg.with_extension("json"), text.as_bytes())
    }

    /// Small multiples, one panel per unit: points coloured by the class of the unit's factor (viridis, first class
    /// dark), anchors as red crosses sized by weight.
    pub fn figure(&self) -> Result<Svg> {
        use plotters::prelude::*;
        let n = self.units.len().max(1);
        let cols = n.min(5);
        let rows = n.div_ceil(cols);
        let (pw, ph) = (220u32, 210u32);
        let text = self.table().to_text();
        Svg::draw((pw * cols as u32, ph * rows as u32 + 24), text, |root| {
            root.fill(&WHITE)?;
            let (head, body) = root.split_vertically(24);
            head.draw(&Text::new(
                format!(
                    "{} of each latent unit, coloured by its most associated factor (NMI); red ×: anchors",
                    self.method
                ),
                (6, 5),
                ("sans-serif", 13).into_font(),
            ))?;
            let panels = body.split_evenly((rows, cols));
            for (u, area) in self.units.iter().zip(panels.iter()) {
                let span = |v: Vec<f64>| {
                    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let pad = ((hi - lo) * 0.05).max(1e-9);
                    (lo - pad)..(hi + pad)
                };
                let xs = span(u.coords.iter().map(|c| c.0).chain(u.anchors.iter().map(|a| a.0)).collect());
                let ys = span(u.coords.iter().map(|c| c.1).chain(u.anchors.iter().map(|a| a.1)).collect());
                let mut chart = ChartBuilder::on(area)
                    .caption(
                        format!("unit {} · {} ({:.2})", u.unit, self.factor_names[u.factor], u.nmi),
                        ("sans-serif", 12),
                    )
                    .margin(4)
                    .x_label_area_size(14)
                    .y_label_area_size(22)
                    .build_cartesian_2d(xs, ys)?;
                chart.configure_mesh().disable_mesh().x_labels(3).y_labels(3).label_style(("sans-serif", 8)).draw()?;
                let size = self.factor_sizes[u.factor].max(2) - 1;
                chart.draw_series(u.coords.iter().zip(&u.classes).map(|(c, &k)| {
                    let col = super::viridis(k as f64 / size as f64);
                    let rgb = RGBColor((col[0] * 255.0) as u8, (col[1] * 255.0) as u8, (col[2] * 255.0) as u8);
                    Circle::new(*c, 2, rgb.mix(0.7).filled())
                }))?;
                chart.draw_series(
                    u.anchors
                        .iter()
                        .map(|a| Cross::new((a.0, a.1), (3.0 + 10.0 * a.2.sqrt()) as i32, RED.stroke_width(2))),
                )?;
            }
            Ok(())
        })
    }
}

super::show_figure_and_table!(Projections);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Factor;

    #[test]
    fn nmi_is_one_for_a_relabelling_and_zero_for_independence() {
        let a = [0, 0, 1, 1, 2, 2];
        assert!((nmi(&a, &[5, 5, 3, 3, 9, 9]) - 1.0).abs() < 1e-12);
        assert_eq!(nmi(&[0, 1, 0, 1], &[0, 0, 1, 1]), 0.0);
        assert_eq!(nmi(&[1, 1, 1], &[2, 2, 2]), 0.0);
    }

    #[test]
    fn each_unit_is_matched_to_the_factor_it_encodes() {
        let space = FactorSpace::new(vec![Factor::categorical("a", 4), Factor::categorical("b", 5)]).unwrap();
        let idx: Vec<usize> = (0..space.len()).collect();
        // unit 0 follows factor b along a line in 8-D, unit 1 follows factor a.
        let rows: Vec<f64> = idx
            .iter()
            .flat_map(|&i| {
                let c = space.classes_of(i).unwrap();
                let mut r = vec![0.0; 16];
                for k in 0..8 {
                    r[k] = c[1] as f64 * (k as f64 + 1.0) + 0.01 * ((i * 7 + k) % 5) as f64;
                    r[8 + k] = c[0] as f64 * (1.0 - k as f64 * 0.1) + 0.01 * ((i * 3 + k) % 7) as f64;
                }
                r
            })
            .collect();
        let units = Tensor::from_slice(&rows).view([space.len() as i64, 2, 8]);
        let p = project_units(&units, &idx, &space, None).unwrap();
        assert_eq!((p.units[0].factor, p.units[1].factor), (1, 0));
        assert!(p.units[0].nmi > 0.9 && p.units[1].nmi > 0.9, "{:?}", p.table().to_text());
        assert!(p.units[0].explained.0 > 0.95);
        assert!(p.figure().unwrap().svg.contains("unit 1"));
        let nan = Tensor::full([space.len() as i64, 2, 8], f64::NAN, (Kind::Double, Device::Cpu));
        assert!(project_units(&nan, &idx, &space, None).unwrap_err().to_string().contains("NaN"));
    }
}
