//! AdamW (PyTorch's update rule) and the LitEma exponential moving average, with state that checkpoints can save.
use tch::{nn, Tensor};

/// Adam with decoupled weight decay, as `torch.optim.AdamW` (decay 0 gives Adam). The moments are named after
/// their parameters so that checkpoints can store and check them.
#[derive(Debug)]
pub struct AdamW {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub step: i64,
    params: Vec<(String, Tensor, Tensor, Tensor)>,
}

impl AdamW {
    /// Over the trainable variables of `vs` whose names start with one of `prefixes` (all when empty).
    pub fn new(vs: &nn::VarStore, prefixes: &[&str], lr: f64, betas: (f64, f64), weight_decay: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(n, t)| t.requires_grad() && (prefixes.is_empty() || prefixes.iter().any(|p| n.starts_with(p))))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(n, t)| {
                let (m, v) = (t.zeros_like(), t.zeros_like());
                (n, t, m, v)
            })
            .collect();
        AdamW { lr, betas, eps: 1e-8, weight_decay, step: 0, params }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the gradients currently stored on the parameters.
    pub fn step(&mut self) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.step as i32)).sqrt();
        let step_size = self.lr / bc1;
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                }
                let _ = m.lerp_(&g, 1.0 - b1);
                let _ = v.g_mul_scalar_(b2);
                let _ = v.addcmul_(&(&g * (1.0 - b2)), &g);
                let denom = v.sqrt() / bc2_sqrt + self.eps;
                let _ = p.addcdiv_(&(&*m * -step_size), &denom);
            }
        });
    }

    /// Scale the stored gradients so that their global L2 norm is at most `max_norm` (PyTorch's
    /// `clip_grad_norm_`: factor max_norm / (norm + 1e-6) when below 1); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let sq: f64 = self
                .params
                .iter()
                .map(|(_, p, _, _)| p.grad())
                .filter(|g| g.defined())
                .map(|g| g.square().sum(tch::Kind::Double).double_value(&[]))
                .sum();
            let norm = sq.sqrt();
            let factor = max_norm / (norm + 1e-6);
            if factor < 1.0 {
                for (_, p, _, _) in &self.params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(factor);
                    }
                }
            }
            norm
        })
    }

    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The moments as named tensors (`<prefix>m.<param>`, `<prefix>v.<param>`).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (n, _, m, v) in &self.params {
            out.push((format!("{prefix}m.{n}"), m.shallow_clone()));
            out.push((format!("{prefix}v.{n}"), v.shallow_clone()));
        }
        out
    }

    /// Restore the moments from `state` (as written by `state`). Errors name the first missing or mismatching one.
    pub fn load_state(&mut self, prefix: &str, get: &dyn Fn(&str) -> Option<Tensor>, step: i64) -> crate::Result<()> {
        for (n, _, m, v) in &mut self.params {
            for (kind, dst) in [("m", &mut *m), ("v", &mut *v)] {
                let key = format!("{prefix}{kind}.{n}");
                let src = get(&key)
                    .ok_or_else(|| crate::Error::config("checkpoint", format!("optimizer state '{key}' is missing")))?;
                if src.size() != dst.size() {
                    return Err(crate::Error::config(
                        "checkpoint",
                        format!("optimizer state '{key}' has shape {:?}, the model needs {:?}", src.size(), dst.size()),
                    ));
                }
                tch::no_grad(|| dst.copy_(&src));
            }
        }
        self.step = step;
        Ok(())
    }
}

/// LitEma: after optimiser step n (from 1), decay_n = min(decay, (1 + n) / (10 + n)) and
/// shadow ← shadow − (1 − decay_n)(shadow − θ).
#[derive(Debug, Clone)]
pub struct Ema {
    pub decay: f64,
    pub num_updates: i64,
}

impl Ema {
    pub fn new(decay: f64) -> Self {
        Ema { decay, num_updates: 0 }
    }

    pub fn current_decay(&self) -> f64 {
        let n = self.num_updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Copy `source` into `shadow` (same variable names), e.g. at the start of training.
    pub fn copy(shadow: &nn::VarStore, source: &nn::VarStore) {
        let src = source.variables();
        tch::no_grad(|| {
            for (n, mut t) in shadow.variables() {
                if let Some(s) = src.get(&n) {
                    t.copy_(s);
                }
            }
        });
    }

    /// Update every variable of `shadow` from the variable of the same name in `source`.
    pub fn update(&mut self, shadow: &nn::VarStore, source: &nn::VarStore) {
        self.num_updates += 1;
        let one_minus = 1.0 - self.current_decay();
        let src = source.variables();
        tch::no_grad(|| {
            for (n, mut t) in shadow.variables() {
                if let Some(s) = src.get(&n) {
                    let _ = t.lerp_(s, one_minus);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn adamw_matches_closed_form_first_step() {
        // First AdamW step: p ← p(1 − lr·wd) − lr · g / (|g| + eps) (bias corrections cancel).
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root().var("p", &[3], nn::Init::Const(1.0));
        let mut opt = AdamW::new(&vs, &[], 0.1, (0.9, 0.999), 0.01);
        let loss = (&p * Tensor::from_slice(&[1.0f32, -2.0, 0.5])).sum(Kind::Float);
        opt.zero_grad();
        loss.backward();
        opt.step();
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        let g = [1.0f64, -2.0, 0.5];
        for (x, gi) in got.iter().zip(g) {
            let want = 1.0 * (1.0 - 0.1 * 0.01) - 0.1 * gi / (gi.abs() + 1e-8);
            assert!((*x as f64 - want).abs() < 1e-6, "{x} vs {want}");
        }
    }

    #[test]
    fn ema_warmup_formula() {
        let a = nn::VarStore::new(Device::Cpu);
        let b = nn::VarStore::new(Device::Cpu);
        let _x = a.root().var("x", &[1], nn::Init::Const(0.0));
        let _y = b.root().var("x", &[1], nn::Init::Const(1.0));
        let mut ema = Ema::new(0.9999);
        ema.update(&a, &b);
        // n = 1: decay = 2/11, shadow = 0 − (1 − 2/11)(0 − 1) = 9/11.
        let v = a.variables()["x"].double_value(&[0]);
        assert!((v - 9.0 / 11.0).abs() < 1e-6, "{v}");
        ema.num_updates = 1_000_000;
        assert_eq!(ema.current_decay(), 0.9999);
    }
}
