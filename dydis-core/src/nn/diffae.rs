//! Diff-AE's networks (CL-Dis's backbone, docs/architecture.md): the semantic encoder (a half U-Net without time
//! input whose residual blocks have no output layers) giving z_sem, and the conditional noise predictor ε_θ(x_t, t,
//! z_sem), an ADM U-Net whose decoder blocks are modulated by both conditions: h ← GN(h)·(1 + s_t) + b_t, then
//! h ← h·(1 + s_z). Also the navigation's shift predictor (the LeNet variant of Voynov & Babenko's).
use super::resblock::Resample;
use super::unet::timestep_embedding;
use super::{check_groups, conv, group_norm, linear, silu, zero_conv};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// The Diff-AE networks' sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffAeConfig {
    /// Base width ch of both networks.
    pub channels: i64,
    /// Width multipliers of the U-Net's levels.
    pub channel_mult: Vec<i64>,
    /// Width multipliers of the semantic encoder's levels (one more level than the U-Net in Diff-AE's configs).
    pub enc_channel_mult: Vec<i64>,
    pub num_res_blocks: usize,
    /// Resolutions (in pixels) whose blocks are followed by self-attention.
    pub attention_res: Vec<i64>,
    pub num_heads: i64,
    pub dropout: f64,
    /// Width of the time embedding.
    pub embed_dim: i64,
    /// d_sem: the semantic code's width.
    pub z_sem: i64,
    pub norm_groups: i64,
}

impl Default for DiffAeConfig {
    /// Diff-AE's 64 px configuration (`ffhq64_autoenc`).
    fn default() -> Self {
        DiffAeConfig {
            channels: 64,
            channel_mult: vec![1, 2, 4, 8],
            enc_channel_mult: vec![1, 2, 4, 8, 8],
            num_res_blocks: 2,
            attention_res: vec![16],
            num_heads: 1,
            dropout: 0.1,
            embed_dim: 512,
            z_sem: 512,
            norm_groups: 32,
        }
    }
}

impl DiffAeConfig {
    pub fn validate(&self, image_size: i64) -> Result<()> {
        let f = |name: &str| format!("cldis.diffae.{name}");
        if self.channels < 1 || self.embed_dim < 2 || self.embed_dim % 2 != 0 || self.z_sem < 1 {
            return Err(Error::config(f("channels"), "channels and z_sem must be positive, embed_dim even"));
        }
        for (name, mult) in [("channel_mult", &self.channel_mult), ("enc_channel_mult", &self.enc_channel_mult)] {
            if mult.is_empty() || mult.iter().any(|&m| m < 1) {
                return Err(Error::config(f(name), "needs at least one positive multiplier"));
            }
            let down = 1i64 << (mult.len() - 1);
            if image_size % down != 0 {
                return Err(Error::config(
                    f(name),
                    format!("{} levels need an image size divisible by {down}, got {image_size}", mult.len()),
                ));
            }
            let chans: Vec<i64> = mult.iter().map(|m| m * self.channels).collect();
            check_groups(&f("norm_groups"), self.norm_groups, &chans)?;
            if self.num_heads < 1 || chans.iter().any(|c| c % self.num_heads != 0) {
                return Err(Error::config(f("num_heads"), format!("{} heads must divide {chans:?}", self.num_heads)));
            }
        }
        if self.num_res_blocks == 0 {
            return Err(Error::config(f("num_res_blocks"), "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(f("dropout"), format!("{} is not in [0, 1)", self.dropout)));
        }
        Ok(())
    }
}

/// Multi-head self-attention over the positions of a feature map, residual, output projection zero-initialised.
#[derive(Debug)]
pub struct SelfAttention {
    norm: nn::GroupNorm,
    qkv: nn::Conv2D,
    proj: nn::Conv2D,
    heads: i64,
}

impl SelfAttention {
    pub fn new(p: nn::Path, channels: i64, heads: i64, groups: i64) -> Self {
        SelfAttention {
            norm: group_norm(&p / "norm", groups, channels, 1e-5),
            qkv: conv(&p / "qkv", channels, 3 * channels, 1, 1, 0),
            proj: zero_conv(&p / "proj", channels, channels, 1, 0),
            heads,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().unwrap();
        let dh = c / self.heads;
        // [B, 3C, HW] → q, k, v as [B, heads, HW, dh].
        let qkv = x.apply(&self.norm).apply(&self.qkv).view([b, 3, self.heads, dh, h * w]);
        let part = |i: i64| qkv.select(1, i).transpose(-2, -1);
        let scale = (dh as f64).powf(-0.5);
        let out = Tensor::scaled_dot_product_attention::<Tensor>(
            &part(0),
            &part(1),
            &part(2),
            None,
            0.0,
            false,
            scale,
            false,
        );
        x + out.transpose(-2, -1).reshape([b, c, h, w]).apply(&self.proj)
    }
}

/// The semantic encoder's residual block: GN → SiLU → (resample) → conv3×3, plus the (1×1 when the width changes)
/// skip; no output layers, as Diff-AE's condition-free blocks have.
#[derive(Debug)]
pub struct EncResBlock {
    norm: nn::GroupNorm,
    conv: nn::Conv2D,
    skip: Option<nn::Conv2D>,
    resample: Resample,
}

impl EncResBlock {
    pub fn new(p: nn::Path, cin: i64, cout: i64, groups: i64, resample: Resample) -> Self {
        EncResBlock {
            norm: group_norm(&p / "norm", groups, cin, 1e-5),
            conv: conv(&p / "conv", cin, cout, 3, 1, 1),
            skip: (cin != cout).then(|| conv(&p / "skip", cin, cout, 1, 1, 0)),
            resample,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.resample.apply(&silu(&x.apply(&self.norm))).apply(&self.conv);
        let x = self.resample.apply(x);
        match &self.skip {
            Some(s) => x.apply(s) + h,
            None => x + h,
        }
    }
}

/// The noise predictor's residual block with the two conditions of Diff-AE's `resnet_two_cond` modulation.
#[derive(Debug)]
pub struct CondResBlock {
    in_norm: nn::GroupNorm,
    in_conv: nn::Conv2D,
    time: nn::Linear,
    cond: nn::Linear,
    out_norm: nn::GroupNorm,
    out_conv: nn::Conv2D,
    skip: Option<nn::Conv2D>,
    resample: Resample,
    dropout: f64,
}

/// What every conditional block reads: the time embedding `[B, E]` and the semantic code `[B, d_sem]`.
pub struct Conditions<'a> {
    pub time: &'a Tensor,
    pub z_sem: &'a Tensor,
}

/// The widths of a conditional block.
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
    pub cin: i64,
    pub cout: i64,
    pub embed: i64,
    pub z_sem: i64,
    pub groups: i64,
}

impl CondResBlock {
    pub fn new(p: nn::Path, d: BlockDims, dropout: f64, resample: Resample) -> Self {
        CondResBlock {
            in_norm: group_norm(&p / "in_norm", d.groups, d.cin, 1e-5),
            in_conv: conv(&p / "in_conv", d.cin, d.cout, 3, 1, 1),
            time: linear(&p / "time", d.embed, 2 * d.cout, true),
            cond: linear(&p / "cond", d.z_sem, d.cout, true),
            out_norm: group_norm(&p / "out_norm", d.groups, d.cout, 1e-5),
            out_conv: zero_conv(&p / "out_conv", d.cout, d.cout, 3, 1),
            skip: (d.cin != d.cout).then(|| conv(&p / "skip", d.cin, d.cout, 1, 1, 0)),
            resample,
            dropout,
        }
    }

    pub fn forward(&self, x: &Tensor, c: &Conditions, train: bool) -> Tensor {
        let h = self.resample.apply(&silu(&x.apply(&self.in_norm))).apply(&self.in_conv);
        let x = self.resample.apply(x);
        let spatial = |t: Tensor| t.unsqueeze(-1).unsqueeze(-1);
        let st = spatial(silu(c.time).apply(&self.time)).chunk(2, 1);
        let sz = spatial(silu(c.z_sem).apply(&self.cond));
        let h = (h.apply(&self.out_norm) * (1.0 + &st[0]) + &st[1]) * (1.0 + sz);
        let h = silu(&h).dropout(self.dropout, train).apply(&self.out_conv);
        match &self.skip {
            Some(s) => x.apply(s) + h,
            None => x + h,
        }
    }
}

/// Blocks followed by optional self-attention.
#[derive(Debug)]
struct Stage<B> {
    block: B,
    attn: Option<SelfAttention>,
}

/// E_sem: images `[B, C, S, S]` in [−1, 1] → z_sem `[B, d_sem]`, deterministic.
#[derive(Debug)]
pub struct SemanticEncoder {
    input: nn::Conv2D,
    blocks: Vec<Stage<EncResBlock>>,
    middle: (EncResBlock, SelfAttention, EncResBlock),
    out_norm: nn::GroupNorm,
    head: nn::Conv2D,
}

impl SemanticEncoder {
    pub fn new(p: &nn::Path, cfg: &DiffAeConfig, image_channels: i64, image_size: i64) -> Self {
        let (ch, g) = (cfg.channels, cfg.norm_groups);
        let mut blocks = Vec::new();
        let (mut cur, mut res) = (ch, image_size);
        let levels = cfg.enc_channel_mult.len();
        for (l, m) in cfg.enc_channel_mult.iter().enumerate() {
            for _ in 0..cfg.num_res_blocks {
                let q = p / "blocks" / blocks.len();
                let block = EncResBlock::new(&q / "res", cur, m * ch, g, Resample::None);
                cur = m * ch;
                let attn =
                    cfg.attention_res.contains(&res).then(|| SelfAttention::new(&q / "attn", cur, cfg.num_heads, g));
                blocks.push(Stage { block, attn });
            }
            if l + 1 < levels {
                let q = p / "blocks" / blocks.len();
                blocks.push(Stage { block: EncResBlock::new(&q / "res", cur, cur, g, Resample::Down), attn: None });
                res /= 2;
            }
        }
        SemanticEncoder {
            input: conv(p / "input", image_channels, ch, 3, 1, 1),
            blocks,
            middle: (
                EncResBlock::new(p / "mid0", cur, cur, g, Resample::None),
                SelfAttention::new(p / "mid_attn", cur, cfg.num_heads, g),
                EncResBlock::new(p / "mid1", cur, cur, g, Resample::None),
            ),
            out_norm: group_norm(p / "out_norm", g, cur, 1e-5),
            head: conv(p / "head", cur, cfg.z_sem, 1, 1, 0),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.apply(&self.input);
        for s in &self.blocks {
            h = s.block.forward(&h);
            if let Some(a) = &s.attn {
                h = a.forward(&h);
            }
        }
        h = self.middle.2.forward(&self.middle.1.forward(&self.middle.0.forward(&h)));
        let h = silu(&h.apply(&self.out_norm)).adaptive_avg_pool2d([1, 1]);
        h.apply(&self.head).flatten(1, -1)
    }
}

/// ε_θ(x_t, t, z_sem): an ADM U-Net with lateral skips, every block modulated by the time and the semantic code.
#[derive(Debug)]
pub struct CondUNet {
    embed_in: i64,
    time1: nn::Linear,
    time2: nn::Linear,
    input: nn::Conv2D,
    down: Vec<Stage<CondResBlock>>,
    middle: (CondResBlock, SelfAttention, CondResBlock),
    up: Vec<Stage<CondResBlock>>,
    out_norm: nn::GroupNorm,
    out_conv: nn::Conv2D,
}

impl CondUNet {
    pub fn new(p: &nn::Path, cfg: &DiffAeConfig, image_channels: i64, image_size: i64) -> Self {
        let (ch, g, e, zd) = (cfg.channels, cfg.norm_groups, cfg.embed_dim, cfg.z_sem);
        let dims = |cin: i64, cout: i64| BlockDims { cin, cout, embed: e, z_sem: zd, groups: g };
        let attn_at = |q: &nn::Path, res: i64, c: i64| {
            cfg.attention_res.contains(&res).then(|| SelfAttention::new(q / "attn", c, cfg.num_heads, g))
        };
        let levels = cfg.channel_mult.len();
        let (mut down, mut skips) = (Vec::new(), vec![ch]);
        let (mut cur, mut res) = (ch, image_size);
        for (l, m) in cfg.channel_mult.iter().enumerate() {
            for _ in 0..cfg.num_res_blocks {
                let q = p / "down" / down.len();
                let block = CondResBlock::new(&q / "res", dims(cur, m * ch), cfg.dropout, Resample::None);
                cur = m * ch;
                down.push(Stage { block, attn: attn_at(&q, res, cur) });
                skips.push(cur);
            }
            if l + 1 < levels {
                let q = p / "down" / down.len();
                let block = CondResBlock::new(&q / "res", dims(cur, cur), cfg.dropout, Resample::Down);
                down.push(Stage { block, attn: None });
                skips.push(cur);
                res /= 2;
            }
        }
        let middle = (
            CondResBlock::new(p / "mid0", dims(cur, cur), cfg.dropout, Resample::None),
            SelfAttention::new(p / "mid_attn", cur, cfg.num_heads, g),
            CondResBlock::new(p / "mid1", dims(cur, cur), cfg.dropout, Resample::None),
        );
        let mut up = Vec::new();
        for (l, m) in cfg.channel_mult.iter().enumerate().rev() {
            for i in 0..=cfg.num_res_blocks {
                let q = p / "up" / up.len();
                let skip = skips.pop().expect("one skip per input block");
                let block = CondResBlock::new(&q / "res", dims(cur + skip, m * ch), cfg.dropout, Resample::None);
                cur = m * ch;
                up.push(Stage { block, attn: attn_at(&q, res, cur) });
                if l > 0 && i == cfg.num_res_blocks {
                    let q = p / "up" / up.len();
                    let block = CondResBlock::new(&q / "res", dims(cur, cur), cfg.dropout, Resample::Up);
                    up.push(Stage { block, attn: None });
                    res *= 2;
                }
            }
        }
        CondUNet {
            embed_in: ch.max(2) / 2 * 2,
            time1: linear(p / "time1", ch.max(2) / 2 * 2, e, true),
            time2: linear(p / "time2", e, e, true),
            input: conv(p / "input", image_channels, ch, 3, 1, 1),
            down,
            middle,
            up,
            out_norm: group_norm(p / "out_norm", g, cur, 1e-5),
            out_conv: zero_conv(p / "out_conv", cur, image_channels, 3, 1),
        }
    }

    /// The noise prediction for `x_t` `[B, C, S, S]` at integer timesteps `t` `[B]` given `z_sem` `[B, d_sem]`.
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, z_sem: &Tensor, train: bool) -> Tensor {
        let temb = timestep_embedding(t, self.embed_in).apply(&self.time1).silu().apply(&self.time2);
        let c = Conditions { time: &temb, z_sem };
        let mut h = x.apply(&self.input);
        let mut skips = vec![h.shallow_clone()];
        for s in &self.down {
            h = s.block.forward(&h, &c, train);
            if let Some(a) = &s.attn {
                h = a.forward(&h);
            }
            // Up-sampling blocks (resample inside) are the ones without a matching skip.
            skips.push(h.shallow_clone());
        }
        h = self.middle.0.forward(&h, &c, train);
        h = self.middle.2.forward(&self.middle.1.forward(&h), &c, train);
        for s in &self.up {
            if s.block.resample != Resample::Up {
                let skip = skips.pop().expect("one skip per input block");
                h = Tensor::cat(&[h, skip], 1);
            }
            h = s.block.forward(&h, &c, train);
            if let Some(a) = &s.attn {
                h = a.forward(&h);
            }
        }
        silu(&h.apply(&self.out_norm)).apply(&self.out_conv)
    }
}

/// The navigation's predictor (Voynov & Babenko's LeNet variant): the image pair concatenated on channels →
/// three conv5×5 + BatchNorm + ReLU layers (the first two max-pooled) → global average → the direction's logits
/// `[B, K]` and the shift's magnitude `[B]`.
#[derive(Debug)]
pub struct ShiftPredictor {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    logits: nn::Linear,
    shift: nn::Linear,
}

impl ShiftPredictor {
    pub fn new(p: &nn::Path, image_channels: i64, directions: i64, width: i64) -> Self {
        let widths = [2 * image_channels, 3 * width, 8 * width, 60 * width];
        let convs = (0..3)
            .map(|i| {
                let q = p / format!("conv{i}");
                let c = nn::conv2d(
                    &q / "conv",
                    widths[i],
                    widths[i + 1],
                    5,
                    nn::ConvConfig { padding: 2, ..Default::default() },
                );
                (c, nn::batch_norm2d(&q / "bn", widths[i + 1], Default::default()))
            })
            .collect();
        ShiftPredictor {
            convs,
            logits: linear(p / "logits", widths[3], directions, true),
            shift: linear(p / "shift", widths[3], 1, true),
        }
    }

    /// (direction logits `[B, K]`, shift `[B]`) for image pairs `[B, C, S, S]` each.
    pub fn forward_t(&self, a: &Tensor, b: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = Tensor::cat(&[a, b], 1);
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            h = h.apply(c).apply_t(bn, train).relu();
            if i < 2 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        let f = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        (f.apply(&self.logits), f.apply(&self.shift).squeeze_dim(1))
    }
}
