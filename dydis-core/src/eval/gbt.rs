//! Gradient-boosted trees with scikit-learn `GradientBoostingClassifier()` semantics (the predictor of DCI and of
//! the downstream task, docs/architecture.md).
//!
//! What is reproduced exactly: `X` cast to f32; the prior initialisation (class frequencies clipped to [ε, 1 − ε];
//! log-odds for two classes, the symmetric multinomial logit otherwise); one regression tree per class and stage
//! (one per stage for two classes) fitted to the negative gradient computed once per stage; exact best splits on
//! sorted features between consecutive distinct values (gap > 1e-7), threshold at the midpoint `a/2 + b/2` in f64,
//! proxy `S_L²/n_L + S_R²/n_R`, the first (smallest) threshold winning within a feature; leaves at depth 3, below two
//! samples or at zero impurity; Newton leaf values (`(K−1)/K · Σr / Σp(1−p)`, 0 when the denominator is below
//! 1e-150); shrinkage 0.1 over 100 stages; impurity-based importances per tree (unnormalised, divided by the root's
//! sample count), averaged over trees with more than one node, normalised once; nodes numbered in pre-order.
//!
//! What is not: scikit-learn breaks exact ties between features by the order in which a per-tree `rand_r` stream
//! visits them (seeded from numpy's MT19937). Here every node visits its features in an order drawn from a seeded
//! ChaCha8 stream, so ties are broken just as arbitrarily and reproducibly, but not identically: fits agree with
//! scikit-learn's the way scikit-learn's fits with different `random_state` agree with each other (tested against
//! stored fixtures).
//!
//! Trees are grown level by level over features sorted once per fit (O(n·F) per level); the trees of one stage are
//! fitted in parallel.
use super::{argmax, sigmoid, softmax_rows, sorted_classes};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const FEATURE_THRESHOLD: f64 = 1e-7;

/// Booster settings; the defaults are scikit-learn's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GbtConfig {
    pub n_estimators: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Seed of the feature-visiting order that breaks exact ties.
    pub seed: u64,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig { n_estimators: 100, learning_rate: 0.1, max_depth: 3, seed: 0 }
    }
}

impl GbtConfig {
    pub fn validate(&self) -> Result<()> {
        if self.n_estimators == 0 {
            return Err(Error::config("gbt.n_estimators", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::config(
                "gbt.learning_rate",
                format!("must be a positive number, got {}", self.learning_rate),
            ));
        }
        if self.max_depth == 0 {
            return Err(Error::config("gbt.max_depth", "must be at least 1"));
        }
        Ok(())
    }
}

/// One node of a regression tree (scikit-learn's `tree_` arrays, one struct per node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Split feature, `None` for a leaf.
    pub feature: Option<usize>,
    pub threshold: f64,
    pub left: usize,
    pub right: usize,
    /// Leaf: the Newton step (without the learning rate). Internal node: the mean residual.
    pub value: f64,
    pub impurity: f64,
    pub n_samples: usize,
}

/// A fitted regression tree, nodes in pre-order (root 0, then its left subtree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    fn leaf_of(&self, row: &[f32]) -> usize {
        let mut i = 0;
        while let Some(f) = self.nodes[i].feature {
            i = if row[f] as f64 <= self.nodes[i].threshold { self.nodes[i].left } else { self.nodes[i].right };
        }
        i
    }
    pub fn predict(&self, row: &[f32]) -> f64 {
        self.nodes[self.leaf_of(row)].value
    }
    /// Unnormalised impurity decrease per feature divided by the root's sample count.
    fn importances(&self, nf: usize) -> Vec<f64> {
        let mut imp = vec![0.0; nf];
        let root = self.nodes[0].n_samples as f64;
        for n in &self.nodes {
            if let Some(f) = n.feature {
                let (l, r) = (&self.nodes[n.left], &self.nodes[n.right]);
                imp[f] += (n.n_samples as f64 * n.impurity
                    - l.n_samples as f64 * l.impurity
                    - r.n_samples as f64 * r.impurity)
                    / root;
            }
        }
        imp
    }
}

/// A fitted multi-class booster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Booster {
    /// The labels seen in training, sorted; predictions are among them.
    pub classes: Vec<i64>,
    pub n_features: usize,
    pub learning_rate: f64,
    /// Initial raw prediction per output (one output for two classes).
    pub init: Vec<f64>,
    /// `stages[s][k]`: the tree of output k at stage s.
    pub stages: Vec<Vec<Tree>>,
    /// Training loss after each stage (mean cross-entropy; twice the mean log-loss for two classes, as sklearn).
    pub train_loss: Vec<f64>,
    pub feature_importances: Vec<f64>,
}

/// Checks that `x` holds whole rows of `n_features` finite values; returns the number of rows.
fn checked_rows(x: &[f64], n_features: usize, what: &str) -> Result<usize> {
    if n_features == 0 || x.len() % n_features != 0 {
        return Err(Error::config(what, format!("{} values do not form rows of {n_features} features", x.len())));
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(
            what,
            format!("row {} feature {} is {} (features must be finite)", p / n_features, p % n_features, x[p]),
        ));
    }
    Ok(x.len() / n_features)
}

/// Training rows as f32 columns, checked.
fn columns(x: &[f64], n_features: usize, what: &str) -> Result<(usize, Vec<Vec<f32>>)> {
    let n = checked_rows(x, n_features, what)?;
    let cols = (0..n_features).map(|f| (0..n).map(|i| x[i * n_features + f] as f32).collect()).collect();
    Ok((n, cols))
}

struct Grower<'a> {
    cols: &'a [Vec<f32>],
    sorted: &'a [Vec<u32>],
    max_depth: usize,
}

/// Per-node accumulator while scanning one feature.
#[derive(Clone)]
struct Scan {
    n_left: usize,
    s_left: f64,
    last: f64,
    best: f64,
    threshold: f64,
}

/// A node while growing: its samples' count and residual sums.
#[derive(Clone, Debug)]
struct Grow {
    n: usize,
    sum: f64,
    sumsq: f64,
    depth: usize,
    feature: Option<usize>,
    threshold: f64,
    children: Option<(usize, usize)>,
}

impl Grow {
    /// A child before its samples are counted.
    fn empty(depth: usize) -> Self {
        Grow { n: 0, sum: 0.0, sumsq: 0.0, depth, feature: None, threshold: 0.0, children: None }
    }

    fn impurity(&self) -> f64 {
        let m = self.sum / self.n as f64;
        self.sumsq / self.n as f64 - m * m
    }
}

impl Grower<'_> {
    /// Grow one tree on residuals `r`; returns the tree with node values = mean residual and each sample's leaf
    /// (pre-order ids).
    fn grow(&self, r: &[f64], rng: &mut ChaCha8Rng) -> (Tree, Vec<usize>) {
        let n = r.len();
        let nf = self.cols.len();
        let (sum, sumsq) = r.iter().fold((0.0, 0.0), |(s, q), v| (s + v, q + v * v));
        let mut nodes = vec![Grow { n, sum, sumsq, depth: 0, feature: None, threshold: 0.0, children: None }];
        let mut node_of = vec![0usize; n];
        let mut level: Vec<usize> = vec![0];
        let mut order: Vec<usize> = (0..nf).collect();
        while !level.is_empty() {
            // Nodes of this level that may split.
            let open: Vec<usize> = level
                .iter()
                .copied()
                .filter(|&m| {
                    let g = &nodes[m];
                    g.depth < self.max_depth && g.n >= 2 && g.impurity() > f64::EPSILON
                })
                .collect();
            if open.is_empty() {
                break;
            }
            let mut slot = vec![usize::MAX; nodes.len()];
            for (j, &m) in open.iter().enumerate() {
                slot[m] = j;
            }
            // best[j][f] = (proxy, threshold) of feature f in open node j.
            let mut best = vec![vec![(f64::NEG_INFINITY, 0.0); nf]; open.len()];
            let init =
                Scan { n_left: 0, s_left: 0.0, last: f64::NEG_INFINITY, best: f64::NEG_INFINITY, threshold: 0.0 };
            for (f, (col, sorted)) in self.cols.iter().zip(self.sorted.iter()).enumerate() {
                let mut st = vec![init.clone(); open.len()];
                for &i in sorted {
                    let i = i as usize;
                    let j = slot[node_of[i]];
                    if j == usize::MAX {
                        continue;
                    }
                    let v = col[i] as f64;
                    let s = &mut st[j];
                    if s.n_left > 0 && v > s.last + FEATURE_THRESHOLD {
                        let g = &nodes[open[j]];
                        let n_right = (g.n - s.n_left) as f64;
                        let s_right = g.sum - s.s_left;
                        let proxy = s.s_left * s.s_left / s.n_left as f64 + s_right * s_right / n_right;
                        if proxy > s.best {
                            s.best = proxy;
                            s.threshold = s.last / 2.0 + v / 2.0;
                        }
                    }
                    s.n_left += 1;
                    s.s_left += r[i];
                    s.last = v;
                }
                for (j, s) in st.iter().enumerate() {
                    best[j][f] = (s.best, s.threshold);
                }
            }
            // Choose per node, visiting features in a seeded random order; strict '>' keeps the first visited.
            let mut next = Vec::new();
            for (j, &m) in open.iter().enumerate() {
                order.shuffle(rng);
                let mut choice: Option<(usize, f64, f64)> = None;
                for &f in &order {
                    let (p, t) = best[j][f];
                    if p > f64::NEG_INFINITY && choice.is_none_or(|c| p > c.1) {
                        choice = Some((f, p, t));
                    }
                }
                if let Some((f, _, t)) = choice {
                    let depth = nodes[m].depth + 1;
                    let l = nodes.len();
                    nodes.push(Grow::empty(depth));
                    nodes.push(Grow::empty(depth));
                    nodes[m].feature = Some(f);
                    nodes[m].threshold = t;
                    nodes[m].children = Some((l, l + 1));
                    next.push(l);
                    next.push(l + 1);
                }
            }
            // Route samples of split nodes to their children.
            for i in 0..n {
                let m = node_of[i];
                if let (Some(f), Some((l, rr))) = (nodes[m].feature, nodes[m].children) {
                    let c = if self.cols[f][i] as f64 <= nodes[m].threshold { l } else { rr };
                    node_of[i] = c;
                    let g = &mut nodes[c];
                    g.n += 1;
                    g.sum += r[i];
                    g.sumsq += r[i] * r[i];
                }
            }
            level = next;
        }
        // Renumber in pre-order.
        let mut pre = vec![0usize; nodes.len()];
        let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
        let mut stack = vec![0usize];
        let mut order_ids = Vec::new();
        while let Some(m) = stack.pop() {
            pre[m] = order_ids.len();
            order_ids.push(m);
            if let Some((l, rr)) = nodes[m].children {
                stack.push(rr);
                stack.push(l);
            }
        }
        for &m in &order_ids {
            let g = &nodes[m];
            let (left, right) = g.children.map(|(l, rr)| (pre[l], pre[rr])).unwrap_or((usize::MAX, usize::MAX));
            out.push(Node {
                feature: g.feature,
                threshold: g.threshold,
                left,
                right,
                value: g.sum / g.n as f64,
                impurity: g.impurity(),
                n_samples: g.n,
            });
        }
        let leaves = node_of.iter().map(|&m| pre[m]).collect();
        (Tree { nodes: out }, leaves)
    }
}

impl Booster {
    /// Fit on `x` (row-major, `n_features` per row) and integer labels `y`. A training set with one class gives a
    /// booster that always predicts it (scikit-learn refuses such a set; the downstream task can meet one with
    /// 100 samples of a factor with few values).
    pub fn fit(x: &[f64], n_features: usize, y: &[i64], cfg: &GbtConfig) -> Result<Self> {
        cfg.validate()?;
        let (n, cols) = columns(x, n_features, "gbt training features")?;
        if n == 0 {
            return Err(Error::config("gbt training set", "is empty"));
        }
        if y.len() != n {
            return Err(Error::config("gbt labels", format!("{} labels for {n} rows", y.len())));
        }
        let classes = sorted_classes(y);
        let nc = classes.len();
        let yi: Vec<usize> = y.iter().map(|v| classes.binary_search(v).unwrap()).collect();
        if nc == 1 {
            return Ok(Booster {
                classes,
                n_features,
                learning_rate: cfg.learning_rate,
                init: vec![],
                stages: vec![],
                train_loss: vec![0.0; cfg.n_estimators],
                feature_importances: vec![0.0; n_features],
            });
        }
        let k = if nc == 2 { 1 } else { nc };
        let mut counts = vec![0usize; nc];
        yi.iter().for_each(|&c| counts[c] += 1);
        let eps = f64::EPSILON;
        let prior: Vec<f64> = counts.iter().map(|&c| (c as f64 / n as f64).clamp(eps, 1.0 - eps)).collect();
        let init: Vec<f64> = if k == 1 {
            vec![(prior[1] / (1.0 - prior[1])).ln()]
        } else {
            let mean = prior.iter().map(|p| p.ln()).sum::<f64>() / nc as f64;
            prior.iter().map(|p| p.ln() - mean).collect()
        };
        let sorted: Vec<Vec<u32>> = cols
            .iter()
            .map(|c| {
                let mut idx: Vec<u32> = (0..n as u32).collect();
                idx.sort_by(|&a, &b| c[a as usize].total_cmp(&c[b as usize]));
                idx
            })
            .collect();
        let grower = Grower { cols: &cols, sorted: &sorted, max_depth: cfg.max_depth };
        let mut raw: Vec<f64> = (0..n).flat_map(|_| init.iter().copied()).collect();
        let mut stages = Vec::with_capacity(cfg.n_estimators);
        let mut train_loss = Vec::with_capacity(cfg.n_estimators);
        let mut seeder = ChaCha8Rng::seed_from_u64(cfg.seed);
        for _ in 0..cfg.n_estimators {
            let prob: Vec<f64> = if k == 1 { raw.iter().map(|&v| sigmoid(v)).collect() } else { softmax_rows(&raw, k) };
            let seeds: Vec<u64> = (0..k).map(|_| rand::Rng::random(&mut seeder)).collect();
            let fitted: Vec<(Tree, Vec<usize>)> = (0..k)
                .into_par_iter()
                .map(|c| {
                    let target = if k == 1 { 1 } else { c };
                    let p: Vec<f64> = (0..n).map(|i| prob[i * k + c]).collect();
                    let r: Vec<f64> = (0..n).map(|i| (yi[i] == target) as u8 as f64 - p[i]).collect();
                    let (mut tree, leaves) = grower.grow(&r, &mut ChaCha8Rng::seed_from_u64(seeds[c]));
                    // Newton step per leaf.
                    let mut num = vec![0.0; tree.nodes.len()];
                    let mut den = vec![0.0; tree.nodes.len()];
                    for i in 0..n {
                        num[leaves[i]] += r[i];
                        den[leaves[i]] += p[i] * (1.0 - p[i]);
                    }
                    let scale = if k == 1 { 1.0 } else { (k as f64 - 1.0) / k as f64 };
                    for (j, node) in tree.nodes.iter_mut().enumerate() {
                        if node.feature.is_none() {
                            // sklearn averages both sums over the leaf; the ratio is the same.
                            node.value = if den[j].abs() < 1e-150 { 0.0 } else { scale * num[j] / den[j] };
                        }
                    }
                    (tree, leaves)
                })
                .collect();
            for (c, (tree, leaves)) in fitted.iter().enumerate() {
                for i in 0..n {
                    raw[i * k + c] += cfg.learning_rate * tree.nodes[leaves[i]].value;
                }
            }
            stages.push(fitted.into_iter().map(|t| t.0).collect::<Vec<_>>());
            train_loss.push(Self::loss(&raw, &yi, k));
        }
        let mut imp = vec![0.0; n_features];
        let mut used = 0usize;
        for t in stages.iter().flatten() {
            if t.nodes.len() > 1 {
                used += 1;
                imp.iter_mut().zip(t.importances(n_features)).for_each(|(a, b)| *a += b);
            }
        }
        if used > 0 {
            imp.iter_mut().for_each(|v| *v /= used as f64);
        }
        let total: f64 = imp.iter().sum();
        if total > 0.0 {
            imp.iter_mut().for_each(|v| *v /= total);
        }
        Ok(Booster {
            classes,
            n_features,
            learning_rate: cfg.learning_rate,
            init,
            stages,
            train_loss,
            feature_importances: imp,
        })
    }

    fn loss(raw: &[f64], y: &[usize], k: usize) -> f64 {
        let n = y.len() as f64;
        if k == 1 {
            // Binomial deviance = 2 · mean log-loss.
            2.0 * raw.iter().zip(y).map(|(&f, &c)| (1.0 + f.exp()).ln() - c as f64 * f).sum::<f64>() / n
        } else {
            raw.chunks(k)
                .zip(y)
                .map(|(row, &c)| {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[c]
                })
                .sum::<f64>()
                / n
        }
    }

    /// Number of outputs of the raw prediction (1 for two classes).
    pub fn outputs(&self) -> usize {
        self.init.len()
    }

    /// Raw predictions after `stages` stages (all when `None`), row-major `[n, outputs]`.
    pub fn decision_function(&self, x: &[f64], stages: Option<usize>) -> Result<Vec<f64>> {
        checked_rows(x, self.n_features, "gbt features")?;
        let k = self.outputs();
        let upto = stages.unwrap_or(self.stages.len()).min(self.stages.len());
        Ok(x.par_chunks(self.n_features)
            .flat_map_iter(|row| {
                let row: Vec<f32> = row.iter().map(|v| *v as f32).collect();
                let mut out = self.init.clone();
                for stage in &self.stages[..upto] {
                    for (c, t) in stage.iter().enumerate() {
                        out[c] += self.learning_rate * t.predict(&row);
                    }
                }
                debug_assert_eq!(out.len(), k);
                out
            })
            .collect())
    }

    /// Class probabilities, row-major `[n, classes]`.
    pub fn predict_proba(&self, x: &[f64]) -> Result<Vec<f64>> {
        let nc = self.classes.len();
        if nc == 1 {
            let n = checked_rows(x, self.n_features, "gbt features")?;
            return Ok(vec![1.0; n]);
        }
        let raw = self.decision_function(x, None)?;
        Ok(if nc == 2 {
            raw.iter().flat_map(|&f| [1.0 - sigmoid(f), sigmoid(f)]).collect()
        } else {
            softmax_rows(&raw, nc)
        })
    }

    /// Predicted labels (binary: class 1 when the log-odds are ≥ 0; otherwise the first most probable class).
    pub fn predict(&self, x: &[f64]) -> Result<Vec<i64>> {
        let nc = self.classes.len();
        if nc == 1 {
            let n = checked_rows(x, self.n_features, "gbt features")?;
            return Ok(vec![self.classes[0]; n]);
        }
        let raw = self.decision_function(x, None)?;
        Ok(if nc == 2 {
            raw.iter().map(|&f| self.classes[(f >= 0.0) as usize]).collect()
        } else {
            raw.chunks(nc).map(|row| self.classes[argmax(row)]).collect()
        })
    }

    /// Fraction of rows predicted correctly.
    pub fn accuracy(&self, x: &[f64], y: &[i64]) -> Result<f64> {
        let p = self.predict(x)?;
        if p.len() != y.len() {
            return Err(Error::config("gbt labels", format!("{} labels for {} rows", y.len(), p.len())));
        }
        if p.is_empty() {
            return Err(Error::config("gbt test set", "is empty"));
        }
        Ok(p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / p.len() as f64)
    }
}
