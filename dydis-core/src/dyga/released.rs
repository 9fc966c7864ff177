//! The released code's anchor fit (`DyGA.fit` with its driver, `dyga.fit = "released-code"`), phase for phase, so
//! that a run can be the released code in everything that matters: the max-subtracting normalisation, a subsample of
//! n/10 rows when n > 100,000, K₀ distinct random rows with identity covariances, a full-covariance mixture with
//! fixed EM iterations and no convergence test, its split loop as written (split indices chosen once per pass and
//! applied to a list that shifts as parents are deleted, children weighted π_child / 2, densities recomputed after
//! every split, `split_iter` counting splits and checked per pass, K_max checked per pass), the soft-count filter
//! and a final EM.
//!
//! What it cannot copy: the released EM turns an empty component into NaN and its driver retries a failed fit on a
//! fresh subsample up to 20 times (then keeps the half-fitted object); here EM drops a component that lost its
//! mass (recorded in the events), and a fit that still fails is retried on a fresh subsample up to 20 times and
//! then reported as an error, never kept half-fitted.
use super::anchors::{hard_clusters, random_rows_mixture, record_em, Normalisation, UnitAnchors};
use super::gmm::{CovModel, EmOptions, Mixture};
use super::{DygaConfig, Event};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Fresh subsamples the released driver tries before it gives up.
const RETRIES: usize = 20;

/// Select one unit's anchors as the released code does.
pub fn select_anchors_released(unit: usize, raw: &Tensor, cfg: &DygaConfig, seed: u64) -> Result<UnitAnchors> {
    let t0 = Instant::now();
    let n = raw.size()[0] as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (unit as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let norm = Normalisation::fit(raw, true);
    let all = norm.apply(raw);
    let rows = super::released_fit_rows(n);
    let tries = if rows < n { RETRIES } else { 1 };
    let mut last_error = None;
    for _ in 0..tries {
        let x = if rows < n {
            let idx: Vec<i64> = rand::seq::index::sample(&mut rng, n, rows).into_iter().map(|i| i as i64).collect();
            all.index_select(0, &Tensor::from_slice(&idx).to_device(all.device()))
        } else {
            all.shallow_clone()
        };
        match fit(unit, &x, cfg, &mut rng) {
            Ok((mixture, ids, events, log_likelihood)) => {
                let k = mixture.k();
                let onehot = mixture.predict(&x)?.one_hot(k).to_kind(x.kind());
                let (sizes, densities, _) = hard_clusters(&x, &onehot, 0.5);
                return Ok(UnitAnchors {
                    unit,
                    norm,
                    mixture,
                    ids,
                    events,
                    log_likelihood,
                    sizes,
                    densities,
                    n_fit: x.size()[0] as usize,
                    seconds: t0.elapsed().as_secs_f64(),
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::failed(
        format!("the released-code anchor fit of unit {unit}"),
        format!("{tries} attempt(s) failed; the last: {}", last_error.map(|e| e.to_string()).unwrap_or_default()),
    ))
}

type Fitted = (Mixture, Vec<usize>, Vec<Event>, Vec<(String, f64)>);

fn fit(unit: usize, x: &Tensor, cfg: &DygaConfig, rng: &mut ChaCha8Rng) -> Result<Fitted> {
    let opt = EmOptions { max_iter: cfg.max_iter, tol: None, reg: 1e-6, model: CovModel::Full };
    let mut events = Vec::new();
    let mut ll = Vec::new();
    let (m0, distinct) = random_rows_mixture(x, cfg.k0, rng);
    events.push(Event::Init {
        k: m0.k() as usize,
        n_fit: x.size()[0] as usize,
        distinct_rows: distinct,
        by: "distinct random rows, identity covariances (released code)".into(),
    });
    let (mut m, tr) = m0.em(x, &opt)?;
    record_em(&mut events, &mut ll, "initial", &tr);
    let mut ids: Vec<usize> = tr.kept.clone();
    let mut next_id = cfg.k0;

    let mut split_iter = 0;
    let mut pass = 0;
    'passes: while split_iter < cfg.max_split_rounds {
        if ids.len() >= cfg.k_max {
            break;
        }
        let dens = densities(x, &m, cfg.phi)?;
        // NaN (an empty hard cluster) is never above ψ; such a cluster can still be drawn for a random split.
        let selected: Vec<(usize, bool)> = (0..ids.len())
            .filter_map(|k| {
                let dense = dens[k] > cfg.psi;
                let random = rng.random::<f64>() < cfg.random_split;
                (dense || random).then_some((k, !dense))
            })
            .collect();
        if selected.is_empty() {
            break;
        }
        for (k, random) in selected {
            // Positions were chosen before this pass's deletions: `k` now names whatever component sits there.
            let (resp, _) = m.e_step(x)?;
            let members = resp.select(1, k as i64).gt(cfg.phi).nonzero().flatten(0, -1);
            let size = members.size()[0] as usize;
            if size < 2 {
                events.push(Event::SplitSkipped {
                    round: pass,
                    parent: ids[k],
                    reason: format!("hard cluster has {size} member(s)"),
                });
                continue;
            }
            let sub = x.index_select(0, &members);
            let (c0, _) = random_rows_mixture(&sub, 2, rng);
            let (child, ctr) = c0.em(&sub, &opt)?;
            record_em(&mut events, &mut ll, &format!("split {pass} child of {}", ids[k]), &ctr);
            let cw: Vec<f64> =
                Vec::try_from(child.weights.to_kind(Kind::Double).to_device(Device::Cpu)).map_err(Error::Torch)?;
            let parent_weight = m.weights.double_value(&[k as i64]);
            let child_ids: Vec<usize> = (0..cw.len()).map(|i| next_id + i).collect();
            next_id += cw.len();
            if let [a, b] = child_ids[..] {
                events.push(Event::Split {
                    round: pass,
                    parent: ids[k],
                    parent_weight,
                    size,
                    density: dens.get(k).copied().unwrap_or(f64::NAN),
                    random,
                    children: [a, b],
                    child_weights: [cw[0] / 2.0, cw[1] / 2.0],
                    delta_bic: None,
                });
            }
            m = append_children_delete_parent(&m, &child, k);
            ids.remove(k);
            ids.extend(child_ids);
            let after = densities(x, &m, cfg.phi)?;
            // NaN compares false, as in the released code: an empty cluster keeps the pass going.
            if after.iter().all(|d| *d <= cfg.psi) {
                // The released loop leaves the pass here without counting the split.
                pass += 1;
                continue 'passes;
            }
            split_iter += 1;
        }
        pass += 1;
    }

    let (resp, _) = m.e_step(x)?;
    let counts: Vec<f64> =
        Vec::try_from(resp.sum_dim_intlist(0, false, Kind::Double).to_device(Device::Cpu)).map_err(Error::Torch)?;
    let keep: Vec<i64> = (0..ids.len() as i64).filter(|&k| counts[k as usize] >= cfg.min_size).collect();
    if keep.is_empty() {
        return Err(Error::failed(
            format!("anchor selection of unit {unit}"),
            format!("every component has fewer than {} members", cfg.min_size),
        ));
    }
    let removed: Vec<(usize, f64)> =
        (0..ids.len()).filter(|k| !keep.contains(&(*k as i64))).map(|k| (ids[k], counts[k])).collect();
    events.push(Event::Filter { removed, kept: keep.len() });
    let mut m = m.select(&keep);
    m.normalise_weights();
    let ids: Vec<usize> = keep.iter().map(|&k| ids[k as usize]).collect();
    let (m, tr) = m.em(x, &opt)?;
    record_em(&mut events, &mut ll, "final", &tr);
    let ids = tr.kept.iter().map(|&k| ids[k]).collect();
    Ok((m, ids, events, ll))
}

/// Density of every component's hard cluster (mean distance to the cluster's own mean; NaN when empty).
fn densities(x: &Tensor, m: &Mixture, phi: f64) -> Result<Vec<f64>> {
    let (resp, _) = m.e_step(x)?;
    let (sizes, dens, _) = hard_clusters(x, &resp, phi);
    Ok(sizes.iter().zip(dens).map(|(&s, d)| if s == 0 { f64::NAN } else { d }).collect())
}

/// The released bookkeeping: the children are appended with weights π_child / 2 (whatever the parent's weight),
/// the parent is deleted (later components shift down), and the weights are renormalised.
fn append_children_delete_parent(m: &Mixture, child: &Mixture, parent: usize) -> Mixture {
    let keep: Vec<i64> = (0..m.k()).filter(|&i| i != parent as i64).collect();
    let rest = m.select(&keep);
    let mut dims = rest.dims.clone();
    dims.extend(&child.dims);
    let mut out = Mixture {
        weights: Tensor::cat(&[&rest.weights, &(&child.weights / 2.0)], 0),
        means: Tensor::cat(&[&rest.means, &child.means], 0),
        covs: Tensor::cat(&[&rest.covs, &child.covs], 0),
        dims,
    };
    out.normalise_weights();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_appends_the_children_at_half_weight_and_shifts_the_rest_down() {
        let opts = (Kind::Double, Device::Cpu);
        let m = Mixture {
            weights: Tensor::from_slice(&[0.5, 0.3, 0.2]).to_kind(Kind::Double),
            means: Tensor::from_slice(&[0.0, 1.0, 2.0]).to_kind(Kind::Double).view([3, 1]),
            covs: Tensor::ones([3, 1, 1], opts),
            dims: vec![1; 3],
        };
        let child = Mixture {
            weights: Tensor::from_slice(&[0.6, 0.4]).to_kind(Kind::Double),
            means: Tensor::from_slice(&[-0.5, 0.5]).to_kind(Kind::Double).view([2, 1]),
            covs: Tensor::ones([2, 1, 1], opts),
            dims: vec![1; 2],
        };
        let out = append_children_delete_parent(&m, &child, 0);
        let w: Vec<f64> = Vec::try_from(&out.weights).unwrap();
        let mu: Vec<f64> = Vec::try_from(out.means.flatten(0, -1)).unwrap();
        // 0.3, 0.2 kept; the children get 0.3 and 0.2 whatever the parent's 0.5 was; the total is 1 again.
        for (a, b) in w.iter().zip([0.3, 0.2, 0.3, 0.2]) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        assert_eq!(mu, vec![1.0, 2.0, -0.5, 0.5]);
    }
}
