//! The Multi-β VAE's networks: disentanglement_lib's conv encoder and deconv decoder with every layer modulated by
//! the β level t through FiLM (h·(1 + a) + b, a and b from the time embedding, zero-initialised so training starts
//! as an unconditioned VAE), the monotone learned noise schedule γ(t), and the denoiser over β (an MLP with the
//! latent concatenated to every hidden layer, Diff-AE's latent-DDIM design).
use super::unet::timestep_embedding;
use super::vae::{conv, deconv, dense};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// sinusoidal(1000·t) → Linear → SiLU → Linear: `[B]` times in [0, 1] → `[B, width]`.
#[derive(Debug)]
pub struct TimeEmbed {
    dims: i64,
    l1: nn::Linear,
    l2: nn::Linear,
}

impl TimeEmbed {
    pub fn new(p: &nn::Path, dims: i64, width: i64) -> Self {
        TimeEmbed {
            dims,
            l1: nn::linear(p / "l1", dims, width, Default::default()),
            l2: nn::linear(p / "l2", width, width, Default::default()),
        }
    }

    pub fn forward(&self, t: &Tensor) -> Tensor {
        self.l2.forward(&self.l1.forward(&timestep_embedding(&(t * 1000.0), self.dims)).silu())
    }
}

/// FiLM of `channels` features from an embedding: (a, b) = Linear(SiLU(e)), zero-initialised.
#[derive(Debug)]
struct Film {
    proj: nn::Linear,
    channels: i64,
}

impl Film {
    fn new(p: nn::Path, width: i64, channels: i64) -> Self {
        let cfg = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        Film { proj: nn::linear(p, width, 2 * channels, cfg), channels }
    }

    /// h `[B, C, ...]` → h·(1 + a) + b.
    fn apply(&self, h: &Tensor, emb: &Tensor) -> Tensor {
        let ab = self.proj.forward(&emb.silu());
        let mut shape = vec![-1, self.channels];
        shape.extend(std::iter::repeat_n(1, h.dim() - 2));
        let a = ab.narrow(1, 0, self.channels).reshape(&shape[..]);
        let b = ab.narrow(1, self.channels, self.channels).reshape(&shape[..]);
        h * (a + 1.0) + b
    }
}

/// `conv_encoder` with FiLM after every layer and a mean head only (the posterior's scale is the shared σ_t).
#[derive(Debug)]
pub struct FilmEncoder {
    convs: Vec<(nn::Conv2D, Film)>,
    fc: (nn::Linear, Film),
    means: nn::Linear,
}

impl FilmEncoder {
    pub fn new(p: &nn::Path, channels: i64, latent: i64, image_size: i64, width: i64) -> Self {
        let s = image_size / 16;
        let layer = |name: &str, c_in, c_out, k, pad| {
            (conv(p / name, c_in, c_out, k, pad), Film::new(p / format!("{name}_film"), width, c_out))
        };
        FilmEncoder {
            convs: vec![
                layer("e1", channels, 32, 4, 1),
                layer("e2", 32, 32, 4, 1),
                layer("e3", 32, 64, 2, 0),
                layer("e4", 64, 64, 2, 0),
            ],
            fc: (dense(p / "e5", 64 * s * s, 256), Film::new(p / "e5_film", width, 256)),
            means: dense(p / "means", 256, latent),
        }
    }

    /// Images `[B, C, S, S]` in [0, 1] and their levels' embedding `[B, width]` → μ `[B, latent]`.
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Tensor {
        let h = self.convs.iter().fold(x.shallow_clone(), |h, (c, f)| f.apply(&c.forward(&h).relu(), emb));
        let h = self.fc.1.apply(&self.fc.0.forward(&h.flatten(1, -1)).relu(), emb);
        self.means.forward(&h)
    }
}

/// `deconv_decoder` with FiLM after every hidden layer; Bernoulli logits out.
#[derive(Debug)]
pub struct FilmDecoder {
    fc1: (nn::Linear, Film),
    fc2: (nn::Linear, Film),
    deconvs: Vec<(nn::ConvTranspose2D, Option<Film>)>,
    side: i64,
}

impl FilmDecoder {
    pub fn new(p: &nn::Path, channels: i64, latent: i64, image_size: i64, width: i64) -> Self {
        let s = image_size / 16;
        let film = |name: &str, c| Film::new(p / format!("{name}_film"), width, c);
        FilmDecoder {
            fc1: (dense(p / "d1", latent, 256), film("d1", 256)),
            fc2: (dense(p / "d2", 256, 64 * s * s), film("d2", 64 * s * s)),
            deconvs: vec![
                (deconv(p / "d3", 64, 64), Some(film("d3", 64))),
                (deconv(p / "d4", 64, 32), Some(film("d4", 32))),
                (deconv(p / "d5", 32, 32), Some(film("d5", 32))),
                (deconv(p / "d6", 32, channels), None),
            ],
            side: s,
        }
    }

    /// Codes `[B, latent]` and the levels' embedding → logits `[B, C, S, S]`.
    pub fn forward(&self, z: &Tensor, emb: &Tensor) -> Tensor {
        let h = self.fc1.1.apply(&self.fc1.0.forward(z).relu(), emb);
        let h = self.fc2.1.apply(&self.fc2.0.forward(&h).relu(), emb).view([-1, 64, self.side, self.side]);
        self.deconvs.iter().fold(h, |h, (d, film)| match film {
            Some(f) => f.apply(&d.forward(&h).relu(), emb),
            None => d.forward(&h),
        })
    }
}

/// The learned schedule γ(t) = γ0 + softplus(g)·ĝ(t), ĝ(t) = (h(t) − h(0)) / (h(1) − h(0)) with h an MLP of
/// positive weights and sigmoid units (VDM's monotone network), so γ rises from γ0 at t = 0 to γ1 at t = 1 and
/// σ_t² = sigmoid(γ(t)) grows with t.
#[derive(Debug)]
pub struct Gamma {
    gamma0: Tensor,
    gap: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
}

impl Gamma {
    pub const HIDDEN: i64 = 64;

    pub fn new(p: &nn::Path, gamma0: f64, gamma1: f64) -> Self {
        // softplus⁻¹(γ1 − γ0) so that the gap starts at the configured value.
        let gap = (gamma1 - gamma0).exp_m1().ln();
        Gamma {
            gamma0: p.var("gamma0", &[1], nn::Init::Const(gamma0)),
            gap: p.var("gap", &[1], nn::Init::Const(gap)),
            w1: p.var("w1", &[Self::HIDDEN], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            b1: p.var("b1", &[Self::HIDDEN], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            w2: p.var("w2", &[Self::HIDDEN], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
        }
    }

    fn h(&self, t: &Tensor) -> Tensor {
        let u = (t.reshape([-1, 1]) * self.w1.softplus() + &self.b1).sigmoid();
        (u * self.w2.softplus()).sum_dim_intlist(1, false, Kind::Float)
    }

    /// γ(t) for times `[B]`.
    pub fn forward(&self, t: &Tensor) -> Tensor {
        let ends = self.h(&Tensor::from_slice(&[0f32, 1.0]).to_device(t.device()));
        let (h0, h1) = (ends.get(0), ends.get(1));
        let g = (self.h(t) - &h0) / (h1 - &h0);
        &self.gamma0 + self.gap.softplus() * g
    }
}

/// The denoiser over β: (z_t, t) → (ε̂, v̂), an MLP of `depth` hidden layers (LayerNorm, SiLU) with z concatenated
/// to every layer's input and the time embedding added to every hidden layer.
#[derive(Debug)]
pub struct Denoiser {
    embed: TimeEmbed,
    input: nn::Linear,
    layers: Vec<(nn::LayerNorm, nn::Linear, nn::Linear)>,
    out: nn::Linear,
    latent: i64,
}

impl Denoiser {
    pub fn new(p: &nn::Path, latent: i64, width: i64, depth: usize, t_embed: i64) -> Self {
        let layers = (0..depth)
            .map(|i| {
                let q = p / format!("h{i}");
                (
                    nn::layer_norm(&q / "norm", vec![width], Default::default()),
                    nn::linear(&q / "lin", width + latent, width, Default::default()),
                    nn::linear(&q / "time", width, width, Default::default()),
                )
            })
            .collect();
        Denoiser {
            embed: TimeEmbed::new(&(p / "time"), t_embed, width),
            input: nn::linear(p / "input", latent, width, Default::default()),
            layers,
            out: nn::linear(p / "out", width, 2 * latent, Default::default()),
            latent,
        }
    }

    /// Latents `[B, d]` at times `[B]` → (ε̂, v̂), each `[B, d]`.
    pub fn forward(&self, z: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let e = self.embed.forward(t);
        let mut h = self.input.forward(z);
        for (norm, lin, time) in &self.layers {
            let a = norm.forward(&h).silu() + time.forward(&e.silu());
            h = &h + lin.forward(&Tensor::cat(&[a, z.shallow_clone()], 1));
        }
        let o = self.out.forward(&h.silu());
        (o.narrow(1, 0, self.latent), o.narrow(1, self.latent, self.latent))
    }
}
