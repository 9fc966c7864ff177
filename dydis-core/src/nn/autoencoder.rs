//! The first stage (docs/architecture.md): an LDM-style VQ autoencoder (f = 2^(levels-1)), its PatchGAN
//! discriminator and losses, and an `identity` first stage for pixel-space diffusion.
//!
//! LPIPS is not part of the generator loss: its VGG16 weights cannot be obtained offline. The first-stage trainer
//! (`train::AeTrainer::perceptual`) takes an optional perceptual term so that a user who has weights can add it.
use super::{check_groups, conv, group_norm, silu};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VqConfig {
    pub ch: i64,
    pub ch_mult: Vec<i64>,
    pub num_res_blocks: usize,
    /// Codebook size.
    pub n_embed: i64,
    /// Codebook vector size = latent channels.
    pub embed_dim: i64,
    /// Weight beta of the (legacy) codebook term.
    pub beta: f64,
    pub norm_groups: i64,
    /// Discriminator layers and base width (PatchGAN).
    pub disc_layers: usize,
    pub disc_ndf: i64,
}

impl Default for VqConfig {
    /// The paper's VQ-f4 (§2.1).
    fn default() -> Self {
        VqConfig {
            ch: 32,
            ch_mult: vec![1, 2, 4],
            num_res_blocks: 2,
            n_embed: 2048,
            embed_dim: 3,
            beta: 0.25,
            norm_groups: 32,
            disc_layers: 3,
            disc_ndf: 64,
        }
    }
}

impl VqConfig {
    pub fn factor(&self) -> i64 {
        1 << (self.ch_mult.len() - 1)
    }
    pub fn validate(&self, image_size: i64) -> Result<()> {
        if self.ch_mult.is_empty() || self.ch_mult.iter().any(|&m| m <= 0) || self.ch <= 0 {
            return Err(Error::config("first_stage.ch_mult", "needs positive channels and at least one level"));
        }
        if self.num_res_blocks == 0 {
            return Err(Error::config("first_stage.num_res_blocks", "must be at least 1"));
        }
        if image_size % self.factor() != 0 {
            return Err(Error::config(
                "first_stage.ch_mult",
                format!("image size {image_size} is not divisible by the downsampling factor {}", self.factor()),
            ));
        }
        if self.n_embed < 2 || self.embed_dim < 1 {
            return Err(Error::config(
                "first_stage.n_embed",
                "the codebook needs at least 2 entries of dimension >= 1",
            ));
        }
        let chans: Vec<i64> = self.ch_mult.iter().map(|m| m * self.ch).collect();
        check_groups("first_stage.norm_groups", self.norm_groups, &chans)?;
        if self.disc_layers == 0 || self.disc_ndf <= 0 {
            return Err(Error::config(
                "first_stage.disc_layers",
                "the discriminator needs at least one layer and positive width",
            ));
        }
        Ok(())
    }
}

/// Which first stage a model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FirstStageConfig {
    Vq(VqConfig),
    /// Diffusion in pixel space.
    Identity,
}

impl FirstStageConfig {
    /// Latent channels and spatial size for images of `image_size`.
    pub fn latent_shape(&self, image_size: i64) -> (i64, i64) {
        match self {
            FirstStageConfig::Vq(c) => (c.embed_dim, image_size / c.factor()),
            FirstStageConfig::Identity => (3, image_size),
        }
    }
}

#[derive(Debug)]
struct ResnetBlock {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

impl ResnetBlock {
    fn new(p: nn::Path, cin: i64, cout: i64, g: i64) -> Self {
        ResnetBlock {
            norm1: group_norm(&p / "norm1", g, cin, 1e-6),
            conv1: conv(&p / "conv1", cin, cout, 3, 1, 1),
            norm2: group_norm(&p / "norm2", g, cout, 1e-6),
            conv2: conv(&p / "conv2", cout, cout, 3, 1, 1),
            shortcut: (cin != cout).then(|| conv(&p / "nin_shortcut", cin, cout, 1, 1, 0)),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = silu(&x.apply(&self.norm1)).apply(&self.conv1);
        let h = silu(&h.apply(&self.norm2)).apply(&self.conv2);
        match &self.shortcut {
            Some(s) => x.apply(s) + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the spatial positions (the mid block's attention).
#[derive(Debug)]
struct AttnBlock {
    norm: nn::GroupNorm,
    q: nn::Conv2D,
    k: nn::Conv2D,
    v: nn::Conv2D,
    proj: nn::Conv2D,
}

impl AttnBlock {
    fn new(p: nn::Path, c: i64, g: i64) -> Self {
        AttnBlock {
            norm: group_norm(&p / "norm", g, c, 1e-6),
            q: conv(&p / "q", c, c, 1, 1, 0),
            k: conv(&p / "k", c, c, 1, 1, 0),
            v: conv(&p / "v", c, c, 1, 1, 0),
            proj: conv(&p / "proj_out", c, c, 1, 1, 0),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().unwrap();
        let n = x.apply(&self.norm);
        let tok = |t: Tensor| t.view([b, 1, c, h * w]).transpose(-1, -2);
        let (q, k, v) = (tok(n.apply(&self.q)), tok(n.apply(&self.k)), tok(n.apply(&self.v)));
        let o =
            Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, false, (c as f64).powf(-0.5), false);
        x + o.transpose(-1, -2).contiguous().view([b, c, h, w]).apply(&self.proj)
    }
}

#[derive(Debug)]
struct Encoder {
    conv_in: nn::Conv2D,
    levels: Vec<(Vec<ResnetBlock>, Option<nn::Conv2D>)>,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Encoder {
    fn new(p: nn::Path, c: &VqConfig) -> Self {
        let g = c.norm_groups;
        let mut ch = c.ch;
        let mut levels = Vec::new();
        for (l, &m) in c.ch_mult.iter().enumerate() {
            let lp = &p / "down" / l;
            let blocks = (0..c.num_res_blocks)
                .map(|i| {
                    let b = ResnetBlock::new(&lp / "block" / i, ch, m * c.ch, g);
                    ch = m * c.ch;
                    b
                })
                .collect();
            let down = (l + 1 < c.ch_mult.len()).then(|| conv(&lp / "downsample", ch, ch, 3, 2, 0));
            levels.push((blocks, down));
        }
        Encoder {
            conv_in: conv(&p / "conv_in", 3, c.ch, 3, 1, 1),
            levels,
            mid: (
                ResnetBlock::new(&p / "mid" / "block_1", ch, ch, g),
                AttnBlock::new(&p / "mid" / "attn_1", ch, g),
                ResnetBlock::new(&p / "mid" / "block_2", ch, ch, g),
            ),
            norm_out: group_norm(&p / "norm_out", g, ch, 1e-6),
            conv_out: conv(&p / "conv_out", ch, c.embed_dim, 3, 1, 1),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.apply(&self.conv_in);
        for (blocks, down) in &self.levels {
            for b in blocks {
                h = b.forward(&h);
            }
            if let Some(d) = down {
                // Pad right and bottom by one, then a stride-2 convolution without padding.
                h = h.constant_pad_nd([0, 1, 0, 1]).apply(d);
            }
        }
        h = self.mid.2.forward(&self.mid.1.forward(&self.mid.0.forward(&h)));
        silu(&h.apply(&self.norm_out)).apply(&self.conv_out)
    }
}

#[derive(Debug)]
struct Decoder {
    conv_in: nn::Conv2D,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    /// From the lowest resolution up.
    levels: Vec<(Vec<ResnetBlock>, Option<nn::Conv2D>)>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Decoder {
    fn new(p: nn::Path, c: &VqConfig) -> Self {
        let g = c.norm_groups;
        let mut ch = c.ch * c.ch_mult.last().unwrap();
        let conv_in = conv(&p / "conv_in", c.embed_dim, ch, 3, 1, 1);
        let mid = (
            ResnetBlock::new(&p / "mid" / "block_1", ch, ch, g),
            AttnBlock::new(&p / "mid" / "attn_1", ch, g),
            ResnetBlock::new(&p / "mid" / "block_2", ch, ch, g),
        );
        let mut levels = Vec::new();
        for (l, &m) in c.ch_mult.iter().enumerate().rev() {
            let lp = &p / "up" / l;
            let blocks = (0..=c.num_res_blocks)
                .map(|i| {
                    let b = ResnetBlock::new(&lp / "block" / i, ch, m * c.ch, g);
                    ch = m * c.ch;
                    b
                })
                .collect();
            let up = (l > 0).then(|| conv(&lp / "upsample", ch, ch, 3, 1, 1));
            levels.push((blocks, up));
        }
        Decoder {
            conv_in,
            mid,
            levels,
            norm_out: group_norm(&p / "norm_out", g, ch, 1e-6),
            conv_out: conv(&p / "conv_out", ch, 3, 3, 1, 1),
        }
    }
    fn forward(&self, z: &Tensor) -> Tensor {
        let mut h = z.apply(&self.conv_in);
        h = self.mid.2.forward(&self.mid.1.forward(&self.mid.0.forward(&h)));
        for (blocks, up) in &self.levels {
            for b in blocks {
                h = b.forward(&h);
            }
            if let Some(u) = up {
                let (_, _, hh, ww) = h.size4().unwrap();
                h = h.upsample_nearest2d([hh * 2, ww * 2], None, None).apply(u);
            }
        }
        silu(&h.apply(&self.norm_out)).apply(&self.conv_out)
    }
}

/// The result of quantising a latent.
pub struct Quantized {
    /// Straight-through quantised latent (forward value: codebook vectors; gradient: identity to the input).
    pub z_q: Tensor,
    /// Legacy taming loss: mean (sg(z_q) - z)^2 + beta * mean (z_q - sg(z))^2.
    pub loss: Tensor,
    /// Codebook index per latent position `[B, H, W]`.
    pub indices: Tensor,
}

#[derive(Debug)]
pub struct VqAutoencoder {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: nn::Conv2D,
    post_quant_conv: nn::Conv2D,
    pub codebook: Tensor,
    beta: f64,
    pub config: VqConfig,
}

impl VqAutoencoder {
    pub fn new(p: &nn::Path, c: &VqConfig, image_size: i64) -> Result<Self> {
        c.validate(image_size)?;
        let bound = 1.0 / c.n_embed as f64;
        Ok(VqAutoencoder {
            encoder: Encoder::new(p / "encoder", c),
            decoder: Decoder::new(p / "decoder", c),
            quant_conv: conv(p / "quant_conv", c.embed_dim, c.embed_dim, 1, 1, 0),
            post_quant_conv: conv(p / "post_quant_conv", c.embed_dim, c.embed_dim, 1, 1, 0),
            codebook: p.var("codebook", &[c.n_embed, c.embed_dim], nn::Init::Uniform { lo: -bound, up: bound }),
            beta: c.beta,
            config: c.clone(),
        })
    }

    /// The continuous latent before quantisation (what the diffusion model sees, before scaling).
    pub fn encode(&self, x: &Tensor) -> Tensor {
        self.encoder.forward(x).apply(&self.quant_conv)
    }

    pub fn quantize(&self, z: &Tensor) -> Quantized {
        let (b, c, h, w) = z.size4().unwrap();
        let flat = z.permute([0, 2, 3, 1]).reshape([-1, c]);
        let d = flat.square().sum_dim_intlist(1, true, Kind::Float)
            + self.codebook.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0)
            - flat.matmul(&self.codebook.tr()) * 2.0;
        let idx = d.argmin(1, false);
        let zq = self.codebook.index_select(0, &idx).view([b, h, w, c]).permute([0, 3, 1, 2]);
        let loss =
            (zq.detach() - z).square().mean(Kind::Float) + (&zq - z.detach()).square().mean(Kind::Float) * self.beta;
        let z_q = z + (&zq - z).detach();
        Quantized { z_q, loss, indices: idx.view([b, h, w]) }
    }

    /// Decode a (not yet quantised) latent: quantise, post-quant conv, decoder.
    pub fn decode(&self, z: &Tensor) -> Tensor {
        self.decode_quantized(&self.quantize(z).z_q)
    }

    pub fn decode_quantized(&self, z_q: &Tensor) -> Tensor {
        self.decoder.forward(&z_q.apply(&self.post_quant_conv))
    }

    /// Reconstruction and codebook loss.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let q = self.quantize(&self.encode(x));
        (self.decode_quantized(&q.z_q), q.loss)
    }

    /// The last decoder layer's weight (for the adaptive GAN weight).
    pub fn last_layer(&self) -> &Tensor {
        &self.decoder.conv_out.ws
    }
}

/// PatchGAN discriminator (taming's NLayerDiscriminator): conv4 s2 without norm, then conv4 + BatchNorm +
/// LeakyReLU(0.2) layers, a stride-1 layer, and a 1-channel logit map.
#[derive(Debug)]
pub struct Discriminator {
    layers: Vec<(nn::Conv2D, Option<nn::BatchNorm>)>,
}

impl Discriminator {
    pub fn new(p: &nn::Path, layers: usize, ndf: i64) -> Self {
        let normal = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let cv = |i: usize, cin: i64, cout: i64, stride: i64, bias: bool| {
            nn::conv2d(
                p / "main" / i,
                cin,
                cout,
                4,
                nn::ConvConfig { stride, padding: 1, bias, ws_init: normal, ..Default::default() },
            )
        };
        let bn = |i: usize, c: i64| {
            nn::batch_norm2d(
                p / "main" / i / "bn",
                c,
                nn::BatchNormConfig { ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.02 }, ..Default::default() },
            )
        };
        let mut v = vec![(cv(0, 3, ndf, 2, true), None)];
        let mut mult = 1;
        for n in 1..layers {
            let prev = mult;
            mult = (1 << n).min(8);
            v.push((cv(n, ndf * prev, ndf * mult, 2, false), Some(bn(n, ndf * mult))));
        }
        let prev = mult;
        mult = (1 << layers).min(8);
        v.push((cv(layers, ndf * prev, ndf * mult, 1, false), Some(bn(layers, ndf * mult))));
        v.push((cv(layers + 1, ndf * mult, 1, 1, true), None));
        Discriminator { layers: v }
    }
}

impl ModuleT for Discriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (c, bn)) in self.layers.iter().enumerate() {
            h = h.apply(c);
            if let Some(bn) = bn {
                h = h.apply_t(bn, train);
            }
            if i < last {
                // LeakyReLU(0.2)
                h = h.maximum(&(&h * 0.2));
            }
        }
        h
    }
}

/// Hinge loss of the discriminator: 0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x̂))).
pub fn hinge_d_loss(real: &Tensor, fake: &Tensor) -> Tensor {
    ((real.neg() + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)) * 0.5
}

/// The adaptive GAN weight: ||∇_W nll|| / (||∇_W g|| + 1e-4), clamped to [0, 1e4], times `disc_weight`, detached.
pub fn adaptive_weight(nll: &Tensor, g_loss: &Tensor, last_layer: &Tensor, disc_weight: f64) -> Tensor {
    let gn = Tensor::run_backward(&[nll], &[last_layer], true, false).remove(0);
    let gg = Tensor::run_backward(&[g_loss], &[last_layer], true, false).remove(0);
    (gn.norm() / (gg.norm() + 1e-4)).clamp(0.0, 1e4).detach() * disc_weight
}

/// A frozen first stage as the latent diffusion model uses it.
// One per model: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum FirstStage {
    Vq(VqAutoencoder),
    Identity,
}

impl FirstStage {
    /// Images `[B, 3, S, S]` to unscaled latents.
    pub fn encode(&self, x: &Tensor) -> Tensor {
        match self {
            FirstStage::Vq(vq) => vq.encode(x),
            FirstStage::Identity => x.shallow_clone(),
        }
    }
    /// Unscaled latents to images in [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Tensor {
        match self {
            FirstStage::Vq(vq) => vq.decode(z).clamp(-1.0, 1.0),
            FirstStage::Identity => z.clamp(-1.0, 1.0),
        }
    }
}
