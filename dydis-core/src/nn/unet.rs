//! The conditional denoising U-Net (docs/architecture.md) with Skip Dropout (§5).
//!
//! Levels are numbered from the full-resolution one (level l has downsampling factor 2^l). The condition (the
//! latent units, `[B, N, D]`) enters only as keys and values of the cross-attention layers.
use super::attention::{AttentionRecord, SpatialTransformer};
use super::resblock::{ResBlock, Resample};
use super::{check_groups, conv, group_norm, linear, silu, zero_conv};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Which decoder levels have their skip connections dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SkipLevels {
    /// `"paper"`: the levels whose downsampling factor has no cross-attention (paper §3.3);
    /// `"released-code"`: the levels the released code drops (skip *width* not in the factor list, §5.1).
    Preset(String),
    /// Explicit level indices.
    List(Vec<usize>),
}

/// Skip Dropout: channel-wise Bernoulli mask on the skip tensors of chosen decoder levels, rescaled by 1/(1-p),
/// in training only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SkipDropout {
    pub enabled: bool,
    /// Drop probability p of a channel (the paper's dropout ratio 1 - p of Eq. 7 is this p).
    pub rate: f64,
    pub levels: SkipLevels,
}

impl Default for SkipDropout {
    fn default() -> Self {
        SkipDropout { enabled: true, rate: 0.2, levels: SkipLevels::Preset("paper".into()) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNetConfig {
    pub model_channels: i64,
    pub channel_mult: Vec<i64>,
    pub num_res_blocks: usize,
    /// Downsampling factors (1, 2, 4, ...) whose levels carry spatial transformers (the middle block always does).
    pub attention_ds: Vec<i64>,
    pub num_heads: i64,
    pub transformer_depth: usize,
    pub dropout: f64,
    pub norm_groups: i64,
    pub skip_dropout: SkipDropout,
}

impl Default for UNetConfig {
    /// The paper's U-Net (§4.1).
    fn default() -> Self {
        UNetConfig {
            model_channels: 64,
            channel_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attention_ds: vec![1, 2, 4],
            num_heads: 8,
            transformer_depth: 1,
            dropout: 0.1,
            norm_groups: 32,
            skip_dropout: SkipDropout::default(),
        }
    }
}

impl UNetConfig {
    pub fn validate(&self, latent_size: i64) -> Result<()> {
        let f = |name: &str| format!("unet.{name}");
        if self.model_channels <= 0 {
            return Err(Error::config(f("model_channels"), "must be positive"));
        }
        if self.channel_mult.is_empty() || self.channel_mult.iter().any(|&m| m <= 0) {
            return Err(Error::config(f("channel_mult"), "needs at least one positive multiplier"));
        }
        if self.num_res_blocks == 0 {
            return Err(Error::config(f("num_res_blocks"), "must be at least 1"));
        }
        let levels = self.channel_mult.len() as u32;
        if latent_size % (1 << (levels - 1)) != 0 {
            return Err(Error::config(
                f("channel_mult"),
                format!("{levels} levels need a latent size divisible by {}, got {latent_size}", 1 << (levels - 1)),
            ));
        }
        let chans: Vec<i64> = self.channel_mult.iter().map(|m| m * self.model_channels).collect();
        check_groups(&f("norm_groups"), self.norm_groups, &chans)?;
        if self.num_heads <= 0 || chans.iter().any(|c| c % self.num_heads != 0) {
            return Err(Error::config(
                f("num_heads"),
                format!("{} heads must divide every level's channels {chans:?}", self.num_heads),
            ));
        }
        if self.transformer_depth == 0 {
            return Err(Error::config(f("transformer_depth"), "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(f("dropout"), format!("{} is not in [0, 1)", self.dropout)));
        }
        if !(0.0..1.0).contains(&self.skip_dropout.rate) {
            return Err(Error::config(f("skip_dropout.rate"), format!("{} is not in [0, 1)", self.skip_dropout.rate)));
        }
        self.skip_levels(latent_size)?;
        Ok(())
    }

    fn has_attention(&self, level: usize) -> bool {
        self.attention_ds.contains(&(1i64 << level))
    }

    /// The decoder levels whose skips are dropped (empty when Skip Dropout is off).
    pub fn skip_levels(&self, latent_size: i64) -> Result<Vec<usize>> {
        let sd = &self.skip_dropout;
        if !sd.enabled || sd.rate == 0.0 {
            return Ok(vec![]);
        }
        let n = self.channel_mult.len();
        match &sd.levels {
            SkipLevels::Preset(p) if p == "paper" => Ok((0..n).filter(|&l| !self.has_attention(l)).collect()),
            // The released code tests the skip's spatial width against the list of downsampling factors.
            SkipLevels::Preset(p) if p == "released-code" => {
                Ok((0..n).filter(|&l| !self.attention_ds.contains(&(latent_size >> l))).collect())
            }
            SkipLevels::Preset(p) => Err(Error::config(
                "unet.skip_dropout.levels",
                format!("unknown preset '{p}' (paper, released-code, or a list of level indices)"),
            )),
            SkipLevels::List(l) => match l.iter().find(|&&i| i >= n) {
                Some(bad) => Err(Error::config(
                    "unet.skip_dropout.levels",
                    format!("level {bad} does not exist (the U-Net has {n} levels)"),
                )),
                None => Ok(l.clone()),
            },
        }
    }
}

// A few dozen per network, built once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Layer {
    Conv(nn::Conv2D),
    Res(ResBlock),
    Attn(SpatialTransformer),
}

/// A sequence of layers that forms one skip-producing (input) or skip-consuming (output) block.
#[derive(Debug)]
struct Block {
    layers: Vec<Layer>,
    /// Resolution level of the block's input (for output blocks: of the skip it consumes).
    level: usize,
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        emb: &Tensor,
        ctx: &Tensor,
        train: bool,
        mut rec: Option<&mut Vec<AttentionRecord>>,
    ) -> Tensor {
        let mut h = x.shallow_clone();
        for l in &self.layers {
            h = match l {
                Layer::Conv(c) => h.apply(c),
                Layer::Res(r) => r.forward(&h, emb, train),
                Layer::Attn(a) => a.forward(&h, ctx, rec.as_deref_mut()),
            };
        }
        h
    }
}

#[derive(Debug)]
pub struct UNet {
    time_1: nn::Linear,
    time_2: nn::Linear,
    input: Vec<Block>,
    middle: Block,
    output: Vec<Block>,
    out_norm: nn::GroupNorm,
    out_conv: nn::Conv2D,
    model_channels: i64,
    skip_rate: f64,
    skip_levels: Vec<usize>,
    /// Number of spatial transformers (= cross-attention layers per transformer depth).
    pub attention_layers: usize,
}

/// Sinusoidal timestep embedding `[B, dim]`, ordered [cos | sin], frequencies exp(-ln(10000) k / (dim/2)).
pub fn timestep_embedding(t: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let freqs = (Tensor::arange(half, (Kind::Float, t.device())) * (-(10000f64.ln()) / half as f64)).exp();
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    Tensor::cat(&[args.cos(), args.sin()], 1)
}

impl UNet {
    /// `channels`: latent channels in and out; `context_dim`: D of a latent unit.
    pub fn new(p: &nn::Path, cfg: &UNetConfig, channels: i64, latent_size: i64, context_dim: i64) -> Result<Self> {
        cfg.validate(latent_size)?;
        let mc = cfg.model_channels;
        let emb_dim = 4 * mc;
        let g = cfg.norm_groups;
        let mut st_index = 0;
        let mut new_st = |path: nn::Path, ch: i64| {
            let st = SpatialTransformer::new(path, ch, context_dim, cfg.num_heads, cfg.transformer_depth, g, st_index);
            st_index += 1;
            Layer::Attn(st)
        };
        let ip = p / "input";
        let mut input = vec![Block { layers: vec![Layer::Conv(conv(&ip / 0 / 0, channels, mc, 3, 1, 1))], level: 0 }];
        let mut skip_ch = vec![mc];
        let mut ch = mc;
        let n = cfg.channel_mult.len();
        for (level, &mult) in cfg.channel_mult.iter().enumerate() {
            for _ in 0..cfg.num_res_blocks {
                let bp = &ip / input.len();
                let out = mult * mc;
                let mut layers =
                    vec![Layer::Res(ResBlock::new(&bp / 0, ch, out, emb_dim, cfg.dropout, g, Resample::None))];
                ch = out;
                if cfg.has_attention(level) {
                    layers.push(new_st(&bp / 1, ch));
                }
                input.push(Block { layers, level });
                skip_ch.push(ch);
            }
            if level + 1 < n {
                let bp = &ip / input.len();
                input.push(Block {
                    layers: vec![Layer::Res(ResBlock::new(&bp / 0, ch, ch, emb_dim, cfg.dropout, g, Resample::Down))],
                    level,
                });
                skip_ch.push(ch);
            }
        }
        let mp = p / "middle";
        let middle = Block {
            layers: vec![
                Layer::Res(ResBlock::new(&mp / 0, ch, ch, emb_dim, cfg.dropout, g, Resample::None)),
                new_st(&mp / 1, ch),
                Layer::Res(ResBlock::new(&mp / 2, ch, ch, emb_dim, cfg.dropout, g, Resample::None)),
            ],
            level: n - 1,
        };
        let op = p / "output";
        let mut output = Vec::new();
        for level in (0..n).rev() {
            let mult = cfg.channel_mult[level];
            for i in 0..=cfg.num_res_blocks {
                let bp = &op / output.len();
                let sc = skip_ch.pop().expect("one skip per output block");
                let out = mult * mc;
                let mut layers =
                    vec![Layer::Res(ResBlock::new(&bp / 0, ch + sc, out, emb_dim, cfg.dropout, g, Resample::None))];
                ch = out;
                if cfg.has_attention(level) {
                    layers.push(new_st(&bp / layers.len(), ch));
                }
                if level > 0 && i == cfg.num_res_blocks {
                    layers.push(Layer::Res(ResBlock::new(
                        &bp / layers.len(),
                        ch,
                        ch,
                        emb_dim,
                        cfg.dropout,
                        g,
                        Resample::Up,
                    )));
                }
                output.push(Block { layers, level });
            }
        }
        Ok(UNet {
            time_1: linear(p / "time" / 0, mc, emb_dim, true),
            time_2: linear(p / "time" / 2, emb_dim, emb_dim, true),
            input,
            middle,
            output,
            out_norm: group_norm(p / "out_norm", g, ch, 1e-5),
            out_conv: zero_conv(p / "out_conv", ch, channels, 3, 1),
            model_channels: mc,
            skip_rate: cfg.skip_dropout.rate,
            skip_levels: cfg.skip_levels(latent_size)?,
            attention_layers: st_index,
        })
    }

    /// The decoder levels whose skips Skip Dropout drops (in training).
    pub fn dropped_levels(&self) -> &[usize] {
        &self.skip_levels
    }

    /// Predict the noise of `x` `[B, C, H, W]` at timesteps `t` `[B]` given latent units `context` `[B, N, D]`.
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, context: &Tensor, train: bool) -> Tensor {
        self.run(x, t, context, train, None, None)
    }

    /// As `forward_t` in eval mode, also returning every cross-attention layer's probabilities.
    pub fn forward_recording(&self, x: &Tensor, t: &Tensor, context: &Tensor) -> (Tensor, Vec<AttentionRecord>) {
        let mut rec = Vec::new();
        let out = self.run(x, t, context, false, Some(&mut rec), None);
        (out, rec)
    }

    /// As `forward_t`, also returning every skip connection as the encoder produced it and as the decoder used it
    /// (after Skip Dropout), decoder order.
    pub fn forward_skips(&self, x: &Tensor, t: &Tensor, context: &Tensor, train: bool) -> (Tensor, Vec<SkipRecord>) {
        let mut skips = Vec::new();
        let out = self.run(x, t, context, train, None, Some(&mut skips));
        (out, skips)
    }

    fn run(
        &self,
        x: &Tensor,
        t: &Tensor,
        ctx: &Tensor,
        train: bool,
        mut rec: Option<&mut Vec<AttentionRecord>>,
        mut skip_rec: Option<&mut Vec<SkipRecord>>,
    ) -> Tensor {
        let emb = silu(&timestep_embedding(t, self.model_channels).apply(&self.time_1)).apply(&self.time_2);
        let mut skips = Vec::with_capacity(self.input.len());
        let mut h = x.shallow_clone();
        for b in &self.input {
            h = b.forward(&h, &emb, ctx, train, rec.as_deref_mut());
            skips.push(h.shallow_clone());
        }
        h = self.middle.forward(&h, &emb, ctx, train, rec.as_deref_mut());
        for b in &self.output {
            let produced = skips.pop().expect("one skip per output block");
            let s = if train && self.skip_levels.contains(&b.level) {
                channel_dropout(&produced, self.skip_rate)
            } else {
                produced.shallow_clone()
            };
            if let Some(r) = skip_rec.as_deref_mut() {
                r.push(SkipRecord { level: b.level, produced, used: s.shallow_clone() });
            }
            h = b.forward(&Tensor::cat(&[h, s], 1), &emb, ctx, train, rec.as_deref_mut());
        }
        silu(&h.apply(&self.out_norm)).apply(&self.out_conv)
    }
}

/// One skip connection of a forward pass: the decoder level it enters, the encoder's tensor and what the decoder
/// received (the same tensor unless Skip Dropout dropped channels of it).
#[derive(Debug)]
pub struct SkipRecord {
    pub level: usize,
    pub produced: Tensor,
    pub used: Tensor,
}

/// Channel-wise dropout: one Bernoulli(1 - rate) keep decision per sample and channel, kept channels scaled by
/// 1 / (1 - rate).
pub fn channel_dropout(x: &Tensor, rate: f64) -> Tensor {
    let (b, c, _, _) = x.size4().unwrap();
    let keep = Tensor::rand([b, c, 1, 1], (x.kind(), x.device())).gt(rate).to_kind(x.kind());
    x * keep / (1.0 - rate)
}
