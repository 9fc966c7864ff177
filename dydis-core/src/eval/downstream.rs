//! The downstream sample-efficiency task (paper Table 5, docs/architecture.md): per factor, a boosted-trees
//! classifier from the 20-scalar representation, trained on 10,000, 1,000 and 100 samples and tested on 5,000 fresh
//! samples each; the ratios Acc₁₀₀₀/Acc and Acc₁₀₀/Acc against the largest size.
use super::gbt::GbtConfig;
use super::metrics::{boosters, labels, rows, sample};
use super::Codes;
use crate::data::{FactorSampler, FactorSpace};
use crate::display::{impl_show_via, Table};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    pub num_train: usize,
    /// (factor, test accuracy)
    pub per_factor: Vec<(String, f64)>,
    pub mean_test_accuracy: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownstreamResult {
    pub sizes: Vec<SizeResult>,
    /// (size, mean accuracy at that size / mean accuracy at the largest size), largest size excluded.
    pub ratios: Vec<(usize, f64)>,
    pub num_test: usize,
    pub seconds: f64,
}

/// Run the task. Sampling follows the released code's order: one stream, train then test for each size in the
/// given order (10,000, 1,000, 100 by default); draws are uniform over the grid, with replacement.
pub fn downstream(
    codes: &Codes,
    space: &FactorSpace,
    sizes: &[usize],
    num_test: usize,
    gbt: &GbtConfig,
    seed: u64,
) -> Result<DownstreamResult> {
    if sizes.is_empty() || sizes.contains(&0) || num_test == 0 {
        return Err(Error::config("downstream", "needs at least one training size, all positive, and a test size"));
    }
    let t0 = std::time::Instant::now();
    let mut s = FactorSampler::new(seed);
    let mut out = Vec::new();
    for &n in sizes {
        let t = std::time::Instant::now();
        let (c, f) = sample(codes, space, n, &mut s)?;
        let (ct, ft) = sample(codes, space, num_test, &mut s)?;
        let (x, xt) = (rows(&c), rows(&ct));
        let acc: Vec<f64> = boosters(&x, codes.dims, &f, gbt)?
            .iter()
            .zip(&ft)
            .map(|(b, fk)| b.accuracy(&xt, &labels(fk)))
            .collect::<Result<_>>()?;
        let mean = acc.iter().sum::<f64>() / acc.len() as f64;
        out.push(SizeResult {
            num_train: n,
            per_factor: space.names().iter().map(|s| s.to_string()).zip(acc).collect(),
            mean_test_accuracy: mean,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let largest = out.iter().max_by_key(|r| r.num_train).unwrap();
    let ratios = out
        .iter()
        .filter(|r| r.num_train != largest.num_train)
        .map(|r| (r.num_train, r.mean_test_accuracy / largest.mean_test_accuracy))
        .collect();
    Ok(DownstreamResult { sizes: out, ratios, num_test, seconds: t0.elapsed().as_secs_f64() })
}

impl DownstreamResult {
    pub fn table(&self) -> Table {
        let mut headers = vec!["training samples".to_string()];
        headers.extend(self.sizes[0].per_factor.iter().map(|p| p.0.clone()));
        headers.push("mean".into());
        let mut t = Table::new(headers)
            .with_title(format!("downstream test accuracy ({} test samples per size)", self.num_test));
        for r in &self.sizes {
            let mut row = vec![r.num_train.to_string()];
            row.extend(r.per_factor.iter().map(|p| format!("{:.3}", p.1)));
            row.push(format!("{:.3}", r.mean_test_accuracy));
            t.push_row(row);
        }
        let largest = self.sizes.iter().map(|s| s.num_train).max().unwrap_or(0);
        for (n, r) in &self.ratios {
            let mut row = vec![format!("Acc_{n}/Acc_{largest}")];
            row.extend(std::iter::repeat_n(String::new(), self.sizes[0].per_factor.len()));
            row.push(format!("{r:.3}"));
            t.push_row(row);
        }
        t
    }
}

impl DownstreamResult {
    /// Test accuracy per factor, one bar per training size.
    pub fn plot(&self) -> Result<crate::display::Svg> {
        let cats: Vec<String> = self.sizes[0].per_factor.iter().map(|p| p.0.clone()).collect();
        let series: Vec<(String, Vec<f64>)> = self
            .sizes
            .iter()
            .map(|s| (format!("{} samples", s.num_train), s.per_factor.iter().map(|p| p.1).collect()))
            .collect();
        crate::display::bar_chart("downstream test accuracy per factor", "accuracy", &cats, &series)
    }

    /// Table and bar chart together (the notebook display).
    pub fn panel(&self) -> crate::display::Panel {
        let p = crate::display::Panel::column().push(&self.table());
        match self.plot() {
            Ok(svg) => p.push(&svg),
            Err(_) => p,
        }
    }
}

impl_show_via!(DownstreamResult, panel);
