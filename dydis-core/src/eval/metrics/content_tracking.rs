//! The label-free content-tracking score (CT-score): ours, since the CL-Dis paper's exact definition is unknown
//! (docs/architecture.md). For each direction k, frames are rendered along the direction from N images; dense
//! optical flow between consecutive frames (Horn–Schunck, `crate::flow`) says which content persists and where
//! things moved:
//! - tracking TC_k: the fraction of pixels that pass the forward-backward check, over images and frame pairs;
//! - locality L_k: 1 − H(m)/log(HW), m the map of observable motion |w(p)|·|∇I(p)| normalised to sum 1 (the flow
//!   weighted by the first frame's gradient, since Horn–Schunck fills flat regions with smoothed flow that nothing
//!   in the images moved; 0 where nothing moved: a direction that edits nothing has no attribute to localise);
//! - exclusivity E: 1 − the mean cosine between different directions' mean magnitude maps.
//!
//! CT = mean_k TC_k·L_k; E is reported beside it. Higher is better for all.
use crate::cldis::ContentTrackingConfig;
use crate::flow::{horn_schunck, tracked, Gray};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// One direction's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionScore {
    pub tracking: f64,
    pub locality: f64,
}

/// The score of a set of traversals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentTracking {
    pub directions: Vec<DirectionScore>,
    /// mean_k TC_k · L_k.
    pub score: f64,
    pub exclusivity: f64,
}

/// 1 − H(m)/log(n) of a magnitude map (0 when nothing moved).
fn locality(mag: &[f32]) -> f64 {
    let total: f64 = mag.iter().map(|&m| m as f64).sum();
    if total <= 1e-9 || mag.len() < 2 {
        return 0.0;
    }
    let h: f64 = mag.iter().map(|&m| m as f64 / total).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
    1.0 - h / (mag.len() as f64).ln()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f64>().sqrt(), b.iter().map(|x| x * x).sum::<f64>().sqrt());
    if na <= 1e-12 || nb <= 1e-12 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// A traversal's (tracked fraction, locality, summed magnitude map) over its consecutive frame pairs.
fn score_traversal(frames: &[Gray], cfg: &ContentTrackingConfig) -> Result<(f64, f64, Vec<f64>)> {
    let pairs = frames.len() - 1;
    let (mut tc, mut loc) = (0.0, 0.0);
    let mut mag_sum = vec![0f64; frames[0].data.len()];
    for w in frames.windows(2) {
        let fwd = horn_schunck(&w[0], &w[1], &cfg.flow)?;
        let bwd = horn_schunck(&w[1], &w[0], &cfg.flow)?;
        let t = tracked(&fwd, &bwd, cfg.threshold as f32, cfg.relative as f32);
        tc += t.iter().filter(|&&b| b).count() as f64 / t.len() as f64;
        let mag: Vec<f32> = fwd.magnitude().iter().zip(w[0].gradient_magnitude()).map(|(m, g)| m * g).collect();
        loc += locality(&mag);
        for (s, m) in mag_sum.iter_mut().zip(&mag) {
            *s += *m as f64;
        }
    }
    Ok((tc / pairs as f64, loc / pairs as f64, mag_sum))
}

/// Frames `[K, N, M, C, H, W]` in [−1, 1] (K directions, N images, M frames along each) → grey frames in [0, 1].
fn grey_frames(frames: &Tensor) -> Result<(Vec<Vec<Vec<Gray>>>, usize)> {
    let s = frames.size();
    if s.len() != 6 || s[2] < 2 || s[0] < 1 || s[1] < 1 {
        return Err(Error::Shape { got: s, expected: "[K, N, M ≥ 2, C, H, W] frames".into() });
    }
    let (k, n, m, h, w) = (s[0] as usize, s[1] as usize, s[2] as usize, s[4] as usize, s[5] as usize);
    let g = ((frames.to_device(Device::Cpu).to_kind(Kind::Float).mean_dim(3, false, Kind::Float) + 1.0) * 0.5)
        .clamp(0.0, 1.0)
        .contiguous();
    let flat = Vec::<f32>::try_from(g.flatten(0, -1)).map_err(|e| Error::config("frames", e.to_string()))?;
    let px = h * w;
    let mut out = Vec::with_capacity(k);
    for ki in 0..k {
        let mut imgs = Vec::with_capacity(n);
        for ni in 0..n {
            let mut seq = Vec::with_capacity(m);
            for mi in 0..m {
                let off = ((ki * n + ni) * m + mi) * px;
                seq.push(Gray::new(w, h, flat[off..off + px].to_vec())?);
            }
            imgs.push(seq);
        }
        out.push(imgs);
    }
    Ok((out, px))
}

/// The CT-score of traversal frames `[K, N, M, C, H, W]` in [−1, 1].
pub fn content_tracking(frames: &Tensor, cfg: &ContentTrackingConfig) -> Result<ContentTracking> {
    let (grey, px) = grey_frames(frames)?;
    let mut directions = Vec::new();
    let mut maps = Vec::new();
    for traversals in &grey {
        let scored: Vec<(f64, f64, Vec<f64>)> =
            traversals.par_iter().map(|f| score_traversal(f, cfg)).collect::<Result<_>>()?;
        let n = scored.len() as f64;
        let mut map = vec![0f64; px];
        for (_, _, m) in &scored {
            for (a, b) in map.iter_mut().zip(m) {
                *a += b / n;
            }
        }
        directions.push(DirectionScore {
            tracking: scored.iter().map(|s| s.0).sum::<f64>() / n,
            locality: scored.iter().map(|s| s.1).sum::<f64>() / n,
        });
        maps.push(map);
    }
    let score = directions.iter().map(|d| d.tracking * d.locality).sum::<f64>() / directions.len() as f64;
    let mut cos = Vec::new();
    for a in 0..maps.len() {
        for b in 0..maps.len() {
            if a != b {
                cos.push(cosine(&maps[a], &maps[b]));
            }
        }
    }
    // One direction has nothing to overlap with.
    let exclusivity = if cos.is_empty() { 1.0 } else { 1.0 - cos.iter().sum::<f64>() / cos.len() as f64 };
    Ok(ContentTracking { directions, score, exclusivity })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blobs on a 32×32 grey frame in [−1, 1].
    fn frame(blobs: &[(f64, f64)]) -> Tensor {
        let t = Tensor::zeros([32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::arange(32, (Kind::Float, Device::Cpu)).view([32, 1]);
        let x = Tensor::arange(32, (Kind::Float, Device::Cpu)).view([1, 32]);
        let img = blobs
            .iter()
            .fold(t, |acc, &(cx, cy)| acc + (-((&x - cx).square() + (&y - cy).square()) / (2.0 * 9.0)).exp());
        (img.clamp(0.0, 1.0) * 2.0 - 1.0).view([1, 32, 32])
    }

    /// Frames `[K=2, N=1, M=4, 1, 32, 32]`: direction k moves the blobs by `moves[k]` per frame.
    fn traversals(moves: [[(f64, f64); 2]; 2]) -> Tensor {
        let start = [(9.0, 10.0), (22.0, 21.0)];
        let dirs: Vec<Tensor> = moves
            .iter()
            .map(|mv| {
                let f: Vec<Tensor> = (0..4)
                    .map(|m| {
                        let m = m as f64;
                        frame(&[
                            (start[0].0 + m * mv[0].0, start[0].1 + m * mv[0].1),
                            (start[1].0 + m * mv[1].0, start[1].1 + m * mv[1].1),
                        ])
                    })
                    .collect();
                Tensor::stack(&f, 0).unsqueeze(0)
            })
            .collect();
        Tensor::stack(&dirs, 0)
    }

    fn cfg() -> ContentTrackingConfig {
        ContentTrackingConfig { images: 1, frames: 4, ..Default::default() }
    }

    #[test]
    fn disentangled_traversals_outscore_entangled_ones() {
        // Disentangled: each direction moves one object; entangled: each moves both.
        let dis = content_tracking(&traversals([[(1.0, 0.0), (0.0, 0.0)], [(0.0, 0.0), (0.0, 1.0)]]), &cfg()).unwrap();
        let ent = content_tracking(&traversals([[(1.0, 0.0), (0.0, 1.0)], [(1.0, 0.0), (0.0, -1.0)]]), &cfg()).unwrap();
        for d in dis.directions.iter().chain(&ent.directions) {
            assert!(d.tracking > 0.75, "translations are tracked: {d:?}");
        }
        assert!(dis.score > ent.score + 0.02, "CT {} vs {}", dis.score, ent.score);
        assert!(dis.exclusivity > 0.8 && ent.exclusivity < 0.3, "E {} vs {}", dis.exclusivity, ent.exclusivity);
    }

    #[test]
    fn noise_frames_are_not_tracked_and_bad_shapes_are_refused() {
        let _g = crate::device::global_rng_lock();
        tch::manual_seed(3);
        let noise = Tensor::rand([1, 1, 3, 1, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let r = content_tracking(&noise, &cfg()).unwrap();
        assert!(r.directions[0].tracking < 0.3, "{:?}", r.directions);
        assert!(content_tracking(&Tensor::zeros([2, 1, 1, 1, 8, 8], (Kind::Float, Device::Cpu)), &cfg()).is_err());
        let still = Tensor::zeros([1, 1, 3, 1, 16, 16], (Kind::Float, Device::Cpu));
        let r = content_tracking(&still, &cfg()).unwrap();
        assert_eq!((r.directions[0].tracking, r.directions[0].locality), (1.0, 0.0), "nothing moved");
    }
}
