//! TAD, the Total AUROC Difference (Yeats et al., NashAE), for datasets with binary attributes (CelebA,
//! docs/architecture.md): per attribute, the gap between the two latents that predict it best by a thresholded
//! AUROC, summed over attributes that are captured (max AUROC ≥ 0.75) and not largely explained by another
//! attribute (max mutual information with another attribute ≤ 0.2 of its entropy).
use super::{entropy, mutual_info};
use crate::display::{impl_show_via, Table};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TadAttribute {
    pub name: String,
    pub max_auroc: f64,
    pub best_latent: usize,
    pub gap: f64,
    /// max over other attributes of MI / H(attribute); None for an attribute with a single value.
    pub entropy_reduction: Option<f64>,
    pub captured: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TadResult {
    pub tad: f64,
    pub attributes_captured: usize,
    pub per_attribute: Vec<TadAttribute>,
}

/// AUROC of one latent for one attribute from the 11-threshold sweep of the NashAE code (both polarities, FPR and
/// TPR sorted independently, right Riemann sum, no end points added).
fn auroc(z: &[f64], t: &[u8], lo: f64, hi: f64) -> f64 {
    let pos = t.iter().filter(|v| **v == 1).count() as f64;
    let neg = t.len() as f64 - pos;
    let mut area = [0.0f64; 2];
    for (pol, a) in area.iter_mut().enumerate() {
        let mut fpr = Vec::with_capacity(11);
        let mut tpr = Vec::with_capacity(11);
        for s in 0..=10 {
            let thr = s as f64 / 10.0 * (hi - lo) + lo;
            let (mut tp, mut fp) = (0.0, 0.0);
            for (&v, &l) in z.iter().zip(t) {
                let pred = if pol == 0 { v >= thr } else { v < thr };
                if pred {
                    if l == 1 {
                        tp += 1.0
                    } else {
                        fp += 1.0
                    }
                }
            }
            tpr.push(tp / pos);
            fpr.push(fp / neg);
        }
        fpr.sort_by(f64::total_cmp);
        tpr.sort_by(f64::total_cmp);
        *a = (1..fpr.len()).map(|i| tpr[i] * (fpr[i] - fpr[i - 1])).sum();
    }
    area[0].max(area[1])
}

/// TAD of `latents[latent][sample]` against `attributes[attribute][sample]` (labels 0/1). A latent whose range is
/// at most 0.2 gets AUROC 0.5; an attribute with a single value is never captured.
pub fn tad(latents: &[Vec<f64>], attributes: &[Vec<u8>], names: &[String]) -> Result<TadResult> {
    let n = attributes.first().map_or(0, Vec::len);
    if n == 0 || latents.is_empty() || latents.iter().any(|l| l.len() != n) || names.len() != attributes.len() {
        return Err(Error::config("tad", "latents, attributes and names must be non-empty and of matching lengths"));
    }
    if let Some((a, _)) = attributes.iter().enumerate().find(|(_, v)| v.iter().any(|x| *x > 1)) {
        return Err(Error::config(
            "tad",
            format!("attribute '{}' has labels other than 0/1 (convert CelebA's -1/1 first)", names[a]),
        ));
    }
    let ranges: Vec<(f64, f64)> = latents
        .iter()
        .map(|z| (z.iter().cloned().fold(f64::INFINITY, f64::min), z.iter().cloned().fold(f64::NEG_INFINITY, f64::max)))
        .collect();
    let labels: Vec<Vec<usize>> = attributes.iter().map(|a| a.iter().map(|&v| v as usize).collect()).collect();
    let h: Vec<f64> = labels.iter().map(|a| entropy(a)).collect();
    let per: Vec<TadAttribute> = attributes
        .iter()
        .enumerate()
        .map(|(ai, a)| {
            let aur: Vec<f64> = latents
                .iter()
                .zip(&ranges)
                .map(|(z, &(lo, hi))| if hi - lo > 0.2 && h[ai] > 0.0 { auroc(z, a, lo, hi) } else { 0.5 })
                .collect();
            let (best, max) =
                aur.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
            let second = aur.iter().enumerate().filter(|(j, _)| *j != best).map(|(_, v)| *v).fold(0.0, f64::max);
            let erp = (h[ai] > 0.0).then(|| {
                labels
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != ai)
                    .map(|(_, b)| mutual_info(&labels[ai], b))
                    .fold(0.0, f64::max)
                    / h[ai]
            });
            let captured = max >= 0.75 && erp.is_some_and(|e| e <= 0.2);
            TadAttribute {
                name: names[ai].clone(),
                max_auroc: max,
                best_latent: best,
                gap: max - second,
                entropy_reduction: erp,
                captured,
            }
        })
        .collect();
    Ok(TadResult {
        tad: per.iter().filter(|a| a.captured).map(|a| a.gap).sum(),
        attributes_captured: per.iter().filter(|a| a.captured).count(),
        per_attribute: per,
    })
}

impl TadResult {
    /// Per attribute: its best latent, max AUROC, gap to the second latent, entropy reduction by another attribute,
    /// and whether it counts toward TAD.
    pub fn table(&self) -> Table {
        let mut t = Table::new(["attribute", "best latent", "max AUROC", "gap", "entropy reduction", "captured"])
            .with_title(format!("TAD {:.3} over {} captured attribute(s)", self.tad, self.attributes_captured));
        for a in &self.per_attribute {
            t.push_row([
                a.name.clone(),
                a.best_latent.to_string(),
                format!("{:.3}", a.max_auroc),
                format!("{:.3}", a.gap),
                a.entropy_reduction.map(|e| format!("{e:.3}")).unwrap_or_else(|| "one value".into()),
                if a.captured { "yes" } else { "" }.to_string(),
            ]);
        }
        t
    }
}

impl_show_via!(TadResult, table);
