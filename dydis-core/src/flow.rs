//! Dense optical flow: Horn–Schunck on an image pyramid with warping (coarse to fine, the flow re-linearised
//! around the current estimate at every warp), and the forward-backward consistency check that says which pixels
//! are tracked from one frame to the next. CL-Dis's label-free content-tracking score is built on these
//! (`eval::metrics::content_tracking`).
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Horn–Schunck's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HornSchunck {
    /// Smoothness weight α (intensities in [0, 1]).
    pub alpha: f64,
    /// Jacobi iterations per warp.
    pub iterations: usize,
    /// Pyramid levels (1: the full resolution only).
    pub levels: usize,
    /// Warping rounds per level.
    pub warps: usize,
}

impl Default for HornSchunck {
    fn default() -> Self {
        HornSchunck { alpha: 0.1, iterations: 100, levels: 3, warps: 3 }
    }
}

/// A grey image, row-major, intensities in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

fn at(d: &[f32], width: usize, height: usize, x: isize, y: isize) -> f32 {
    let x = x.clamp(0, width as isize - 1) as usize;
    let y = y.clamp(0, height as isize - 1) as usize;
    d[y * width + x]
}

fn bilinear(d: &[f32], width: usize, height: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let g = |dx: isize, dy: isize| at(d, width, height, x0 + dx, y0 + dy);
    let top = g(0, 0) * (1.0 - fx) + g(1, 0) * fx;
    let bottom = g(0, 1) * (1.0 - fx) + g(1, 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A flow field: the displacement (u, v) in pixels of every pixel of the first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub width: usize,
    pub height: usize,
    pub u: Vec<f32>,
    pub v: Vec<f32>,
}

impl Gray {
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if width == 0 || height == 0 || data.len() != width * height {
            return Err(Error::Shape { got: vec![data.len() as i64], expected: format!("{width}x{height} pixels") });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::config("flow", "an image holds a NaN or infinite value"));
        }
        Ok(Gray { width, height, data })
    }

    fn at(&self, x: isize, y: isize) -> f32 {
        at(&self.data, self.width, self.height, x, y)
    }

    /// Bilinear sample at (x, y), borders replicated.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        bilinear(&self.data, self.width, self.height, x, y)
    }

    /// |∇I| at every pixel (central differences): where motion is observable at all.
    pub fn gradient_magnitude(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.data.len());
        for y in 0..self.height as isize {
            for x in 0..self.width as isize {
                let dx = 0.5 * (self.at(x + 1, y) - self.at(x - 1, y));
                let dy = 0.5 * (self.at(x, y + 1) - self.at(x, y - 1));
                out.push((dx * dx + dy * dy).sqrt());
            }
        }
        out
    }

    /// Half the size by 2×2 averaging (odd sizes round down).
    fn halve(&self) -> Gray {
        let (w, h) = ((self.width / 2).max(1), (self.height / 2).max(1));
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = (2 * x as isize, 2 * y as isize);
                data.push(
                    0.25 * (self.at(sx, sy) + self.at(sx + 1, sy) + self.at(sx, sy + 1) + self.at(sx + 1, sy + 1)),
                );
            }
        }
        Gray { width: w, height: h, data }
    }

    /// This image sampled at every pixel displaced by `flow` (the second frame pulled back onto the first).
    fn warp(&self, flow: &Flow) -> Gray {
        let mut data = Vec::with_capacity(flow.u.len());
        for y in 0..flow.height {
            for x in 0..flow.width {
                let i = y * flow.width + x;
                data.push(self.sample(x as f32 + flow.u[i], y as f32 + flow.v[i]));
            }
        }
        Gray { width: flow.width, height: flow.height, data }
    }
}

impl Flow {
    fn zeros(width: usize, height: usize) -> Flow {
        Flow { width, height, u: vec![0.0; width * height], v: vec![0.0; width * height] }
    }

    /// The magnitude |w| of every pixel.
    pub fn magnitude(&self) -> Vec<f32> {
        self.u.iter().zip(&self.v).map(|(u, v)| (u * u + v * v).sqrt()).collect()
    }

    /// Bilinear sample of (u, v) at (x, y), borders replicated.
    fn sample(&self, x: f32, y: f32) -> (f32, f32) {
        let (w, h) = (self.width, self.height);
        (bilinear(&self.u, w, h, x, y), bilinear(&self.v, w, h, x, y))
    }

    /// Twice the size (nearest neighbour), displacements doubled.
    fn upsample(&self, width: usize, height: usize) -> Flow {
        let mut f = Flow::zeros(width, height);
        for y in 0..height {
            for x in 0..width {
                let s = (y / 2).min(self.height - 1) * self.width + (x / 2).min(self.width - 1);
                f.u[y * width + x] = 2.0 * self.u[s];
                f.v[y * width + x] = 2.0 * self.v[s];
            }
        }
        f
    }
}

/// Horn–Schunck's weighted neighbour mean (1/6 for the four edge neighbours, 1/12 for the diagonals).
fn neighbour_mean(d: &[f32], width: usize, height: usize, x: usize, y: usize) -> f32 {
    let at = |dx: isize, dy: isize| at(d, width, height, x as isize + dx, y as isize + dy);
    (at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)) / 6.0 + (at(-1, -1) + at(1, -1) + at(-1, 1) + at(1, 1)) / 12.0
}

/// One level's refinement of `flow` from `a` to `b` (same size).
fn refine(a: &Gray, b: &Gray, flow: &mut Flow, cfg: &HornSchunck) {
    let (w, h) = (a.width, a.height);
    let alpha2 = (cfg.alpha * cfg.alpha) as f32;
    for _ in 0..cfg.warps {
        let bw = b.warp(flow);
        // Spatial derivatives averaged over both frames (central differences), the temporal one after warping,
        // and the constant part of the linearised constraint Ix·u + Iy·v + It0 = 0 around the current flow.
        let mut ix = vec![0f32; w * h];
        let mut iy = vec![0f32; w * h];
        let mut it0 = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (xi, yi) = (x as isize, y as isize);
                let dx = |g: &Gray| 0.5 * (g.at(xi + 1, yi) - g.at(xi - 1, yi));
                let dy = |g: &Gray| 0.5 * (g.at(xi, yi + 1) - g.at(xi, yi - 1));
                ix[i] = 0.5 * (dx(a) + dx(&bw));
                iy[i] = 0.5 * (dy(a) + dy(&bw));
                it0[i] = bw.data[i] - a.data[i] - ix[i] * flow.u[i] - iy[i] * flow.v[i];
            }
        }
        for _ in 0..cfg.iterations {
            let (mut u, mut v) = (flow.u.clone(), flow.v.clone());
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let (ub, vb) = (neighbour_mean(&flow.u, w, h, x, y), neighbour_mean(&flow.v, w, h, x, y));
                    let common = (ix[i] * ub + iy[i] * vb + it0[i]) / (alpha2 + ix[i] * ix[i] + iy[i] * iy[i]);
                    u[i] = ub - ix[i] * common;
                    v[i] = vb - iy[i] * common;
                }
            }
            flow.u = u;
            flow.v = v;
        }
    }
}

/// The flow from frame `a` to frame `b`: pixel p of `a` is found at p + w(p) in `b`.
pub fn horn_schunck(a: &Gray, b: &Gray, cfg: &HornSchunck) -> Result<Flow> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(Error::Shape {
            got: vec![b.height as i64, b.width as i64],
            expected: format!("a second frame of {}x{}", a.width, a.height),
        });
    }
    let mut pyramid = vec![(a.clone(), b.clone())];
    for _ in 1..cfg.levels {
        let (pa, pb) = pyramid.last().expect("one level at least");
        if pa.width < 8 || pa.height < 8 {
            break;
        }
        let next = (pa.halve(), pb.halve());
        pyramid.push(next);
    }
    let (top_a, _) = pyramid.last().expect("one level at least");
    let mut flow = Flow::zeros(top_a.width, top_a.height);
    for (i, (la, lb)) in pyramid.iter().enumerate().rev() {
        if i + 1 < pyramid.len() {
            flow = flow.upsample(la.width, la.height);
        }
        refine(la, lb, &mut flow, cfg);
    }
    Ok(flow)
}

/// Which pixels of the first frame are tracked: |w_f(p) + w_b(p + w_f(p))| < threshold + relative·|w_f(p)|, and
/// p + w_f(p) inside the frame.
pub fn tracked(forward: &Flow, backward: &Flow, threshold: f32, relative: f32) -> Vec<bool> {
    let (w, h) = (forward.width, forward.height);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (qx, qy) = (x as f32 + forward.u[i], y as f32 + forward.v[i]);
            let inside = qx >= 0.0 && qy >= 0.0 && qx <= (w - 1) as f32 && qy <= (h - 1) as f32;
            let (bu, bv) = backward.sample(qx, qy);
            let (eu, ev) = (forward.u[i] + bu, forward.v[i] + bv);
            let mag = (forward.u[i].powi(2) + forward.v[i].powi(2)).sqrt();
            out.push(inside && (eu * eu + ev * ev).sqrt() < threshold + relative * mag);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth blob centred at (cx, cy) on a 32×32 frame.
    fn blob(cx: f32, cy: f32) -> Gray {
        let data = (0..32 * 32)
            .map(|i| {
                let (x, y) = ((i % 32) as f32, (i / 32) as f32);
                (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * 4.0f32.powi(2))).exp()
            })
            .collect();
        Gray::new(32, 32, data).unwrap()
    }

    #[test]
    fn a_known_translation_is_recovered() {
        let (a, b) = (blob(15.0, 16.0), blob(16.5, 15.0));
        let f = horn_schunck(&a, &b, &HornSchunck::default()).unwrap();
        // Where the blob has texture (intensity above a tenth), the flow is the translation (1.5, −1.0).
        let region: Vec<usize> = (0..a.data.len()).filter(|&i| a.data[i] > 0.1).collect();
        let mean = |d: &[f32]| region.iter().map(|&i| d[i]).sum::<f32>() / region.len() as f32;
        let (mu, mv) = (mean(&f.u), mean(&f.v));
        assert!((mu - 1.5).abs() < 0.2 && (mv + 1.0).abs() < 0.2, "mean flow ({mu}, {mv})");
        let back = horn_schunck(&b, &a, &HornSchunck::default()).unwrap();
        let t = tracked(&f, &back, 1.0, 0.05);
        let frac = region.iter().filter(|&&i| t[i]).count() as f32 / region.len() as f32;
        assert!(frac > 0.95, "tracked fraction {frac}");
    }

    #[test]
    fn bad_frames_are_refused() {
        assert!(Gray::new(4, 4, vec![0.0; 15]).is_err());
        assert!(Gray::new(2, 1, vec![0.0, f32::NAN]).is_err());
        let e = horn_schunck(&blob(1.0, 1.0), &Gray::new(4, 4, vec![0.0; 16]).unwrap(), &HornSchunck::default());
        assert!(e.is_err());
    }
}
