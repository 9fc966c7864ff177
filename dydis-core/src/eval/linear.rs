//! Linear models the metrics need, with scikit-learn semantics: `LinearSVC` on one feature (SAP),
//! `LogisticRegression` (β-VAE score, Explicitness, InfoE) and the ROC AUC.
//!
//! Both models minimise strictly convex objectives, so any accurate solver reaches the same optimum as liblinear /
//! scipy's L-BFGS-B; the SVM is solved to convergence with Newton steps on its two variables, the logistic
//! regression with L-BFGS under scikit-learn's limits (100 iterations, gradient tolerance 1e-4), which is what its
//! numbers mean.
use super::{argmax, sigmoid, softmax_rows, sorted_classes};
use crate::{Error, Result};

/// scikit-learn `LinearSVC(C, class_weight="balanced", dual="auto")` on a single feature: squared hinge loss,
/// L2 penalty on the weight *and* the intercept (liblinear appends a bias feature of 1), one-vs-rest for more
/// than two classes with positives weighted `C·n/(K·n_k)` and negatives plain `C` (liblinear's `weighted_C` use);
/// for two classes both sides weighted.
#[derive(Debug, Clone)]
pub struct LinearSvc1d {
    pub classes: Vec<i64>,
    /// Per one-vs-rest problem (one for two classes): (weight, intercept).
    pub coef: Vec<(f64, f64)>,
}

/// Minimise ½(w² + b²) + Σ c_i max(0, 1 − y_i (w x_i + b))² by Newton steps with backtracking.
fn svm_binary(x: &[f64], pos: &[bool], cp: f64, cn: f64) -> (f64, f64) {
    let obj = |w: f64, b: f64| {
        0.5 * (w * w + b * b)
            + x.iter()
                .zip(pos)
                .map(|(&xi, &p)| {
                    let (y, c) = if p { (1.0, cp) } else { (-1.0, cn) };
                    let m = 1.0 - y * (w * xi + b);
                    if m > 0.0 {
                        c * m * m
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
    };
    let (mut w, mut b) = (0.0, 0.0);
    let mut f = obj(w, b);
    for _ in 0..100 {
        // gradient and generalised Hessian
        let (mut gw, mut gb) = (w, b);
        let (mut hww, mut hwb, mut hbb) = (1.0, 0.0, 1.0);
        for (&xi, &p) in x.iter().zip(pos) {
            let (y, c) = if p { (1.0, cp) } else { (-1.0, cn) };
            let m = 1.0 - y * (w * xi + b);
            if m > 0.0 {
                gw -= 2.0 * c * y * m * xi;
                gb -= 2.0 * c * y * m;
                hww += 2.0 * c * xi * xi;
                hwb += 2.0 * c * xi;
                hbb += 2.0 * c;
            }
        }
        let gnorm = (gw * gw + gb * gb).sqrt();
        if gnorm < 1e-10 * (1.0 + f.abs()) {
            break;
        }
        let det = hww * hbb - hwb * hwb;
        let (dw, db) = ((hbb * gw - hwb * gb) / det, (hww * gb - hwb * gw) / det);
        let mut t = 1.0;
        loop {
            let (nw, nb) = (w - t * dw, b - t * db);
            let nf = obj(nw, nb);
            if nf <= f - 1e-4 * t * (gw * dw + gb * db) || t < 1e-12 {
                w = nw;
                b = nb;
                f = nf;
                break;
            }
            t *= 0.5;
        }
    }
    (w, b)
}

impl LinearSvc1d {
    pub fn fit(x: &[f64], y: &[i64], c: f64) -> Result<Self> {
        if x.len() != y.len() || x.is_empty() {
            return Err(Error::config("svm", format!("{} values for {} labels", x.len(), y.len())));
        }
        let classes = sorted_classes(y);
        let k = classes.len();
        if k < 2 {
            return Ok(LinearSvc1d { classes, coef: vec![] });
        }
        let n = x.len() as f64;
        let counts: Vec<f64> = classes.iter().map(|c| y.iter().filter(|v| *v == c).count() as f64).collect();
        let weight: Vec<f64> = counts.iter().map(|nk| c * n / (k as f64 * nk)).collect();
        let coef = if k == 2 {
            let pos: Vec<bool> = y.iter().map(|v| *v == classes[1]).collect();
            vec![svm_binary(x, &pos, weight[1], weight[0])]
        } else {
            (0..k)
                .map(|j| {
                    let pos: Vec<bool> = y.iter().map(|v| *v == classes[j]).collect();
                    svm_binary(x, &pos, weight[j], c)
                })
                .collect()
        };
        Ok(LinearSvc1d { classes, coef })
    }

    pub fn predict(&self, x: f64) -> i64 {
        match self.coef.len() {
            0 => self.classes[0],
            1 => self.classes[(self.coef[0].0 * x + self.coef[0].1 > 0.0) as usize],
            _ => {
                let scores: Vec<f64> = self.coef.iter().map(|(w, b)| w * x + b).collect();
                self.classes[argmax(&scores)]
            }
        }
    }

    pub fn accuracy(&self, x: &[f64], y: &[i64]) -> f64 {
        x.iter().zip(y).filter(|(a, b)| self.predict(**a) == **b).count() as f64 / x.len().max(1) as f64
    }
}

/// scikit-learn `LogisticRegression` (lbfgs): multinomial for more than two classes, one sigmoid for two;
/// objective `(1/S) Σ s_i ℓ_i + ‖W‖²/(2 C S)` (intercept not penalised; `c = None` for no penalty), optional
/// per-sample weights (`class_weight="balanced"` via [`balanced_weights`]).
#[derive(Debug, Clone)]
pub struct LogReg {
    pub classes: Vec<i64>,
    pub dims: usize,
    /// Row-major `[outputs, dims + 1]`, the intercept last.
    pub coef: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

/// `n / (K · n_{y_i})` per sample.
pub fn balanced_weights(y: &[i64]) -> Vec<f64> {
    let classes = sorted_classes(y);
    let counts: Vec<usize> = classes.iter().map(|c| y.iter().filter(|v| *v == c).count()).collect();
    let (n, k) = (y.len() as f64, classes.len() as f64);
    y.iter().map(|v| n / (k * counts[classes.binary_search(v).unwrap()] as f64)).collect()
}

struct LrProblem<'a> {
    x: &'a [f64],
    d: usize,
    yi: Vec<usize>,
    s: Vec<f64>,
    outputs: usize,
    c: Option<f64>,
}

impl LrProblem<'_> {
    /// Objective and gradient at `w` (`[outputs, d + 1]`).
    fn eval(&self, w: &[f64], g: &mut [f64]) -> f64 {
        let (d, k) = (self.d, self.outputs);
        let ssum: f64 = self.s.iter().sum();
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut loss = 0.0;
        let mut z = vec![0.0; k];
        for (i, row) in self.x.chunks(d).enumerate() {
            for (o, zo) in z.iter_mut().enumerate() {
                let wo = &w[o * (d + 1)..(o + 1) * (d + 1)];
                *zo = wo[d] + row.iter().zip(wo).map(|(a, b)| a * b).sum::<f64>();
            }
            let si = self.s[i] / ssum;
            if k == 1 {
                let y = (self.yi[i] == 1) as u8 as f64;
                let zz = z[0];
                loss += si * (if zz > 0.0 { zz + (-zz).exp().ln_1p() } else { zz.exp().ln_1p() } - y * zz);
                let r = si * (sigmoid(zz) - y);
                let go = &mut g[..d + 1];
                row.iter().zip(go.iter_mut()).for_each(|(a, gv)| *gv += r * a);
                go[d] += r;
            } else {
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                loss += si * (lse - z[self.yi[i]]);
                for o in 0..k {
                    let r = si * ((z[o] - lse).exp() - (o == self.yi[i]) as u8 as f64);
                    let go = &mut g[o * (d + 1)..(o + 1) * (d + 1)];
                    row.iter().zip(go.iter_mut()).for_each(|(a, gv)| *gv += r * a);
                    go[d] += r;
                }
            }
        }
        if let Some(c) = self.c {
            let lam = 1.0 / (c * ssum);
            for o in 0..k {
                for j in 0..d {
                    let v = w[o * (d + 1) + j];
                    loss += 0.5 * lam * v * v;
                    g[o * (d + 1) + j] += lam * v;
                }
            }
        }
        loss
    }
}

/// L-BFGS (memory 10) with a backtracking Armijo line search; stops when the largest gradient entry is below
/// `gtol`, the relative decrease below `ftol`, or after `max_iter` iterations. Returns (iterations, converged).
fn lbfgs(w: &mut [f64], f: impl Fn(&[f64], &mut [f64]) -> f64, max_iter: usize, gtol: f64, ftol: f64) -> (usize, bool) {
    let n = w.len();
    let mut g = vec![0.0; n];
    let mut fx = f(w, &mut g);
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for it in 0..max_iter {
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) <= gtol {
            return (it, true);
        }
        // two-loop recursion
        let mut q = g.clone();
        let mut alpha = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qv, yv)| *qv -= a * yv);
            alpha.push(a);
        }
        if let Some((s, y, _)) = hist.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        } else {
            let gn = dot(&g, &g).sqrt();
            q.iter_mut().for_each(|v| *v /= gn.max(1.0));
        }
        for ((s, y, rho), a) in hist.iter().zip(alpha.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qv, sv)| *qv += (a - b) * sv);
        }
        let gd = -dot(&g, &q);
        if gd >= 0.0 {
            hist.clear();
            continue;
        }
        let mut t = 1.0;
        let mut nw = vec![0.0; n];
        let mut ng = vec![0.0; n];
        let mut nf;
        loop {
            nw.iter_mut().zip(w.iter()).zip(&q).for_each(|((a, b), c)| *a = b - t * c);
            nf = f(&nw, &mut ng);
            if nf <= fx + 1e-4 * t * gd || t < 1e-20 {
                break;
            }
            t *= 0.5;
        }
        let s: Vec<f64> = nw.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = ng.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            hist.push_back((s, y, 1.0 / sy));
            if hist.len() > 10 {
                hist.pop_front();
            }
        }
        let rel = (fx - nf) / fx.abs().max(nf.abs()).max(1.0);
        w.copy_from_slice(&nw);
        g = ng;
        fx = nf;
        if rel <= ftol {
            return (it + 1, true);
        }
    }
    (max_iter, false)
}

impl LogReg {
    /// Fit on row-major `x` (`dims` per row). `c`: inverse regularisation strength (`None`: no penalty);
    /// `weights`: per-sample weights (`None`: all 1); `max_iter` and `tol` (largest gradient entry) as scikit-learn's
    /// (100 and 1e-4 by default there).
    pub fn fit(
        x: &[f64],
        dims: usize,
        y: &[i64],
        c: Option<f64>,
        weights: Option<&[f64]>,
        max_iter: usize,
        tol: f64,
    ) -> Result<Self> {
        if dims == 0 || x.len() != y.len() * dims || y.is_empty() {
            return Err(Error::config(
                "logistic regression",
                format!("{} values do not form {} rows of {dims}", x.len(), y.len()),
            ));
        }
        if let Some(p) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::config(
                "logistic regression",
                format!("row {} feature {} is not finite", p / dims, p % dims),
            ));
        }
        let classes = sorted_classes(y);
        if classes.len() < 2 {
            return Ok(LogReg { classes, dims, coef: vec![], iterations: 0, converged: true });
        }
        let outputs = if classes.len() == 2 { 1 } else { classes.len() };
        let p = LrProblem {
            x,
            d: dims,
            yi: y.iter().map(|v| classes.binary_search(v).unwrap()).collect(),
            s: weights.map(|w| w.to_vec()).unwrap_or_else(|| vec![1.0; y.len()]),
            outputs,
            c,
        };
        let mut w = vec![0.0; outputs * (dims + 1)];
        let (iterations, converged) = lbfgs(&mut w, |w, g| p.eval(w, g), max_iter, tol, 64.0 * f64::EPSILON);
        Ok(LogReg { classes, dims, coef: w, iterations, converged })
    }

    /// Class probabilities, row-major `[n, classes]`.
    pub fn predict_proba(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dims;
        let k = self.classes.len();
        if k < 2 {
            return vec![1.0; x.len() / d];
        }
        let outputs = if k == 2 { 1 } else { k };
        let raw: Vec<f64> = x
            .chunks(d)
            .flat_map(|row| {
                (0..outputs).map(move |o| {
                    let wo = &self.coef[o * (d + 1)..(o + 1) * (d + 1)];
                    wo[d] + row.iter().zip(wo).map(|(a, b)| a * b).sum::<f64>()
                })
            })
            .collect();
        if k == 2 {
            raw.iter().flat_map(|&z| [1.0 - sigmoid(z), sigmoid(z)]).collect()
        } else {
            softmax_rows(&raw, k)
        }
    }

    pub fn predict(&self, x: &[f64]) -> Vec<i64> {
        let k = self.classes.len();
        self.predict_proba(x).chunks(k).map(|p| self.classes[argmax(p)]).collect()
    }

    pub fn accuracy(&self, x: &[f64], y: &[i64]) -> f64 {
        self.predict(x).iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len().max(1) as f64
    }

    /// Mean cross-entropy (nats) of the labels under the model, probabilities clipped to [ε, 1 − ε]
    /// (scikit-learn's `log_loss`).
    pub fn log_loss(&self, x: &[f64], y: &[i64]) -> f64 {
        let k = self.classes.len();
        let p = self.predict_proba(x);
        let eps = f64::EPSILON;
        y.iter()
            .enumerate()
            .map(|(i, v)| match self.classes.binary_search(v) {
                Ok(j) => -(p[i * k + j].clamp(eps, 1.0 - eps)).ln(),
                Err(_) => -(eps.ln()),
            })
            .sum::<f64>()
            / y.len().max(1) as f64
    }
}

/// Area under the ROC curve of `score` for `positive` labels (Mann–Whitney; ties count one half). `None` when
/// only one of the two classes is present.
pub fn roc_auc(score: &[f64], positive: &[bool]) -> Option<f64> {
    let np = positive.iter().filter(|p| **p).count();
    let nn = positive.len() - np;
    if np == 0 || nn == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    // average ranks (1-based) over ties
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&t| positive[idx[t]]).count() as f64 * r;
        i = j + 1;
    }
    Some((rank_sum - np as f64 * (np as f64 + 1.0) / 2.0) / (np as f64 * nn as f64))
}
