//! The diffusion process (docs/architecture.md): the LDM sqrt-linear schedule computed in f64, forward
//! noising, the epsilon-prediction L1 loss, and the DDIM sampler with the released timestep convention.
use tch::{Device, Kind, Tensor};

/// Noise schedule: β_t = (linspace(√β_start, √β_end, T))², ᾱ_t = ∏_{s ≤ t} (1 − β_s).
#[derive(Debug)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    sqrt_ac: Tensor,
    sqrt_1mac: Tensor,
}

impl Clone for Schedule {
    fn clone(&self) -> Self {
        Schedule {
            betas: self.betas.clone(),
            alphas_cumprod: self.alphas_cumprod.clone(),
            sqrt_ac: self.sqrt_ac.copy(),
            sqrt_1mac: self.sqrt_1mac.copy(),
        }
    }
}

impl Schedule {
    /// The paper's schedule: T = 1000, 0.0015 -> 0.0155.
    pub fn paper(device: Device) -> Self {
        Self::sqrt_linear(1000, 0.0015, 0.0155, device)
    }

    pub fn sqrt_linear(steps: usize, beta_start: f64, beta_end: f64, device: Device) -> Self {
        let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                let f = if steps > 1 { i as f64 / (steps - 1) as f64 } else { 0.0 };
                (a + (b - a) * f).powi(2)
            })
            .collect();
        Self::from_betas(betas, device)
    }

    /// The linear schedule of DDPM and Diff-AE: β_t = linspace(β_start, β_end, T) (1e-4 → 0.02 at T = 1000).
    pub fn linear(steps: usize, beta_start: f64, beta_end: f64, device: Device) -> Self {
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                let f = if steps > 1 { i as f64 / (steps - 1) as f64 } else { 0.0 };
                beta_start + (beta_end - beta_start) * f
            })
            .collect();
        Self::from_betas(betas, device)
    }

    fn from_betas(betas: Vec<f64>, device: Device) -> Self {
        let mut acc = 1.0;
        let alphas_cumprod: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let t = |v: Vec<f64>| Tensor::from_slice(&v).to_kind(Kind::Float).to_device(device);
        Schedule {
            sqrt_ac: t(alphas_cumprod.iter().map(|a| a.sqrt()).collect()),
            sqrt_1mac: t(alphas_cumprod.iter().map(|a| (1.0 - a).sqrt()).collect()),
            betas,
            alphas_cumprod,
        }
    }

    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    /// K timesteps spread evenly over {0, …, T−1}, both ends included (Diff-AE's `space_timesteps` for one
    /// section): round(i·(T−1)/(K−1)).
    pub fn spaced_timesteps(&self, k: usize) -> Vec<usize> {
        let t = self.steps();
        if k <= 1 {
            return vec![0];
        }
        let mut ts: Vec<usize> = (0..k).map(|i| ((i * (t - 1)) as f64 / (k - 1) as f64).round() as usize).collect();
        ts.dedup();
        ts
    }

    /// Deterministic DDIM (η = 0) from `x_t` at the last of `ts` down to x̂₀, with ᾱ = 1 before the first
    /// timestep, as Diff-AE's respaced sampler does; `eps(x, t)` predicts the noise.
    pub fn ddim_decode(&self, ts: &[usize], x_t: Tensor, mut eps: impl FnMut(&Tensor, &Tensor) -> Tensor) -> Tensor {
        let ac = &self.alphas_cumprod;
        let (b, device) = (x_t.size()[0], x_t.device());
        let mut x = x_t;
        for i in (0..ts.len()).rev() {
            let a_t = ac[ts[i]];
            let a_prev = if i > 0 { ac[ts[i - 1]] } else { 1.0 };
            let e = eps(&x, &Tensor::full([b], ts[i] as i64, (Kind::Int64, device)));
            let x0 = (&x - &e * (1.0 - a_t).sqrt()) / a_t.sqrt();
            x = x0 * a_prev.sqrt() + e * (1.0 - a_prev).sqrt();
        }
        x
    }

    /// DDIM run forward (Diff-AE's stochastic encoder): from x₀ at the first of `ts` up to x_T, each step
    /// x_next = √ᾱ_next x̂₀ + √(1 − ᾱ_next) ε̂ with ᾱ = 0 after the last timestep; the inverse of
    /// [`Schedule::ddim_decode`] up to the network's change between neighbouring steps.
    pub fn ddim_invert(&self, ts: &[usize], x0: Tensor, mut eps: impl FnMut(&Tensor, &Tensor) -> Tensor) -> Tensor {
        let ac = &self.alphas_cumprod;
        let (b, device) = (x0.size()[0], x0.device());
        let mut x = x0;
        for i in 0..ts.len() {
            let a_t = if i == 0 { 1.0 } else { ac[ts[i - 1]] };
            let a_next = ac[ts[i]];
            let t = if i == 0 { ts[0] } else { ts[i - 1] };
            let e = eps(&x, &Tensor::full([b], t as i64, (Kind::Int64, device)));
            let x0 = (&x - &e * (1.0 - a_t).sqrt()) / a_t.sqrt();
            x = x0 * a_next.sqrt() + e * (1.0 - a_next).sqrt();
        }
        x
    }

    /// z_t = √ᾱ_t z₀ + √(1 − ᾱ_t) ε for per-sample timesteps `t` `[B]`.
    pub fn q_sample(&self, z0: &Tensor, t: &Tensor, noise: &Tensor) -> Tensor {
        let shape = [-1, 1, 1, 1];
        let a = self.sqrt_ac.to_device(z0.device()).index_select(0, t).view(shape);
        let s = self.sqrt_1mac.to_device(z0.device()).index_select(0, t).view(shape);
        a * z0 + s * noise
    }

    /// Uniform random timesteps `[B]` in {0, …, T−1}.
    pub fn sample_t(&self, batch: i64, device: Device) -> Tensor {
        Tensor::randint(self.steps() as i64, [batch], (Kind::Int64, device))
    }

    /// The DDIM timesteps for S steps ("uniform" discretisation of the released code): {0, c, 2c, …} + 1 with
    /// c = T / S.
    pub fn ddim_timesteps(&self, steps: usize) -> Vec<usize> {
        let c = (self.steps() / steps.max(1)).max(1);
        (0..self.steps()).step_by(c).map(|t| t + 1).filter(|&t| t < self.steps()).collect()
    }
}

/// The training loss: mean |ε̂ − ε| (mean over C, H, W, then over the batch).
pub fn l1_loss(pred: &Tensor, noise: &Tensor) -> Tensor {
    (pred - noise).abs().mean(Kind::Float)
}

/// DDIM sampling parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ddim {
    pub steps: usize,
    pub eta: f64,
}

impl Default for Ddim {
    fn default() -> Self {
        Ddim { steps: 100, eta: 0.0 }
    }
}

impl Ddim {
    /// Run the sampler from `x_t` (`[B, C, H, W]`, usually standard normal), calling `eps(x, t)` for the noise
    /// prediction at each step (t as a `[B]` tensor). `on_step(i, t)` is called after each step.
    pub fn sample(
        &self,
        schedule: &Schedule,
        x_t: Tensor,
        mut eps: impl FnMut(&Tensor, &Tensor) -> Tensor,
        mut on_step: impl FnMut(usize, usize),
    ) -> Tensor {
        let ts = schedule.ddim_timesteps(self.steps);
        let ac = &schedule.alphas_cumprod;
        let (b, device) = (x_t.size()[0], x_t.device());
        let mut x = x_t;
        for i in (0..ts.len()).rev() {
            let t = ts[i];
            let a_t = ac[t];
            let a_prev = if i > 0 { ac[ts[i - 1]] } else { ac[0] };
            let sigma = self.eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)).sqrt();
            let tt = Tensor::full([b], t as i64, (Kind::Int64, device));
            let e = eps(&x, &tt);
            let x0 = (&x - &e * (1.0 - a_t).sqrt()) / a_t.sqrt();
            let dir = &e * (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
            x = x0 * a_prev.sqrt() + dir;
            if sigma > 0.0 {
                x += x.randn_like() * sigma;
            }
            on_step(ts.len() - 1 - i, t);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_closed_form() {
        let s = Schedule::paper(Device::Cpu);
        assert_eq!(s.steps(), 1000);
        assert!((s.betas[0] - 0.0015).abs() < 1e-15);
        assert!((s.betas[999] - 0.0155).abs() < 1e-15);
        let prod: f64 = s.betas.iter().map(|b| 1.0 - b).product();
        assert!((s.alphas_cumprod[999] - prod).abs() < 1e-15);
        // ᾱ at T−1 for this schedule, computed independently in Python: 0.000668665173739800.
        assert!((s.alphas_cumprod[999] - 0.0006686651737398).abs() < 1e-12, "{}", s.alphas_cumprod[999]);
    }

    #[test]
    fn ddim_timesteps_follow_released_convention() {
        let s = Schedule::paper(Device::Cpu);
        let ts = s.ddim_timesteps(100);
        assert_eq!(ts.len(), 100);
        assert_eq!((ts[0], ts[1], ts[99]), (1, 11, 991));
    }

    #[test]
    fn ddim_with_exact_noise_recovers_x0() {
        let _rng = crate::device::global_rng_lock();
        // With the true ε of a fixed x0, deterministic DDIM lands on x0 up to the last step's residual.
        let s = Schedule::paper(Device::Cpu);
        tch::manual_seed(0);
        let x0 = Tensor::randn([2, 3, 4, 4], (Kind::Float, Device::Cpu)) * 0.5;
        let noise = Tensor::randn([2, 3, 4, 4], (Kind::Float, Device::Cpu));
        let t_last = s.ddim_timesteps(20).last().copied().unwrap() as i64;
        let xt = s.q_sample(&x0, &Tensor::full([2], t_last, (Kind::Int64, Device::Cpu)), &noise);
        let ac = s.alphas_cumprod.clone();
        let out = Ddim { steps: 20, eta: 0.0 }.sample(
            &s,
            xt,
            |x, t| {
                let a = ac[t.int64_value(&[0]) as usize];
                (x - &x0 * a.sqrt()) / (1.0 - a).sqrt()
            },
            |_, _| {},
        );
        let a0 = s.alphas_cumprod[0];
        let expected = &x0 * a0.sqrt() + &noise * (1.0 - a0).sqrt();
        let err = (out - expected).abs().max().double_value(&[]);
        assert!(err < 1e-4, "max error {err}");
    }
}
