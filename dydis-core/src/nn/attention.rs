//! Spatial transformer of the conditional U-Net (docs/architecture.md): self-attention, cross-attention over the
//! latent units, GEGLU feed-forward, zero-initialised output projection. Cross-attention can record its
//! post-softmax probabilities for the attention-map tools.
use super::{conv, group_norm, linear, zero_conv};
use tch::{nn, nn::Module, Kind, Tensor};

/// Post-softmax cross-attention probabilities of one layer at one call: `[B, heads, H*W, N]` (detached).
#[derive(Debug)]
pub struct AttentionRecord {
    /// Which spatial transformer (in forward order, 0-based).
    pub layer: usize,
    /// Spatial size of the layer's query grid.
    pub height: i64,
    pub width: i64,
    pub probs: Tensor,
}

/// Multi-head attention; keys and values come from `context` (cross-attention) or from the queries (self).
#[derive(Debug)]
pub struct Attention {
    to_q: nn::Linear,
    to_k: nn::Linear,
    to_v: nn::Linear,
    to_out: nn::Linear,
    heads: i64,
    dim_head: i64,
}

impl Attention {
    pub fn new(p: nn::Path, query_dim: i64, context_dim: i64, heads: i64, dim_head: i64) -> Self {
        let inner = heads * dim_head;
        Attention {
            to_q: linear(&p / "to_q", query_dim, inner, false),
            to_k: linear(&p / "to_k", context_dim, inner, false),
            to_v: linear(&p / "to_v", context_dim, inner, false),
            to_out: linear(&p / "to_out", inner, query_dim, true),
            heads,
            dim_head,
        }
    }

    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, l, _) = x.size3().unwrap();
        x.view([b, l, self.heads, self.dim_head]).transpose(1, 2)
    }

    /// `x` `[B, L, query_dim]`, `context` `[B, M, context_dim]`. When `record` is given, the probabilities
    /// `[B, heads, L, M]` are returned as well (computed explicitly instead of by the fused kernel).
    pub fn forward(&self, x: &Tensor, context: &Tensor, record: bool) -> (Tensor, Option<Tensor>) {
        let (b, l, _) = x.size3().unwrap();
        let q = self.split_heads(&x.apply(&self.to_q));
        let k = self.split_heads(&context.apply(&self.to_k));
        let v = self.split_heads(&context.apply(&self.to_v));
        let scale = (self.dim_head as f64).powf(-0.5);
        let (out, probs) = if record {
            let p = (q.matmul(&k.transpose(-2, -1)) * scale).softmax(-1, Kind::Float);
            (p.matmul(&v), Some(p.detach()))
        } else {
            (Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, false, scale, false), None)
        };
        let out = out.transpose(1, 2).contiguous().view([b, l, self.heads * self.dim_head]);
        (out.apply(&self.to_out), probs)
    }
}

/// GEGLU feed-forward: Linear(d -> 2*4d) split into value and gate, value * GELU(gate), Linear(4d -> d).
#[derive(Debug)]
struct FeedForward {
    proj: nn::Linear,
    out: nn::Linear,
}

impl FeedForward {
    fn new(p: nn::Path, dim: i64) -> Self {
        let inner = 4 * dim;
        FeedForward { proj: linear(&p / "geglu", dim, 2 * inner, true), out: linear(&p / "out", inner, dim, true) }
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x.apply(&self.proj).chunk(2, -1);
        (&h[0] * h[1].gelu("none")).apply(&self.out)
    }
}

/// Pre-LayerNorm block: self-attention, cross-attention over the context, feed-forward, each residual.
#[derive(Debug)]
struct TransformerBlock {
    norm1: nn::LayerNorm,
    attn1: Attention,
    norm2: nn::LayerNorm,
    attn2: Attention,
    norm3: nn::LayerNorm,
    ff: FeedForward,
}

impl TransformerBlock {
    fn new(p: nn::Path, dim: i64, context_dim: i64, heads: i64) -> Self {
        let dh = dim / heads;
        let ln = |name: &str| nn::layer_norm(&p / name, vec![dim], Default::default());
        TransformerBlock {
            norm1: ln("norm1"),
            attn1: Attention::new(&p / "attn1", dim, dim, heads, dh),
            norm2: ln("norm2"),
            attn2: Attention::new(&p / "attn2", dim, context_dim, heads, dh),
            norm3: ln("norm3"),
            ff: FeedForward::new(&p / "ff", dim),
        }
    }

    fn forward(&self, x: &Tensor, context: &Tensor, record: bool) -> (Tensor, Option<Tensor>) {
        let h = x.apply(&self.norm1);
        let x = x + self.attn1.forward(&h, &h, false).0;
        let (a, probs) = self.attn2.forward(&x.apply(&self.norm2), context, record);
        let x = x + a;
        let x = &x + x.apply(&self.norm3).apply(&self.ff);
        (x, probs)
    }
}

/// GroupNorm -> 1x1 conv -> tokens -> transformer blocks -> zero-initialised 1x1 conv, added to the input.
#[derive(Debug)]
pub struct SpatialTransformer {
    norm: nn::GroupNorm,
    proj_in: nn::Conv2D,
    blocks: Vec<TransformerBlock>,
    proj_out: nn::Conv2D,
    /// Index among the network's spatial transformers, in forward order (for attention records).
    pub layer: usize,
}

impl SpatialTransformer {
    pub fn new(
        p: nn::Path,
        channels: i64,
        context_dim: i64,
        heads: i64,
        depth: usize,
        groups: i64,
        layer: usize,
    ) -> Self {
        SpatialTransformer {
            norm: group_norm(&p / "norm", groups, channels, 1e-6),
            proj_in: conv(&p / "proj_in", channels, channels, 1, 1, 0),
            blocks: (0..depth)
                .map(|i| TransformerBlock::new(&p / "blocks" / i, channels, context_dim, heads))
                .collect(),
            proj_out: zero_conv(&p / "proj_out", channels, channels, 1, 0),
            layer,
        }
    }

    pub fn forward(&self, x: &Tensor, context: &Tensor, mut records: Option<&mut Vec<AttentionRecord>>) -> Tensor {
        let (b, c, h, w) = x.size4().unwrap();
        let mut t = x.apply(&self.norm).apply(&self.proj_in).view([b, c, h * w]).transpose(1, 2);
        for block in &self.blocks {
            let (next, probs) = block.forward(&t, context, records.is_some());
            t = next;
            if let (Some(r), Some(probs)) = (records.as_deref_mut(), probs) {
                r.push(AttentionRecord { layer: self.layer, height: h, width: w, probs });
            }
        }
        let t = t.transpose(1, 2).contiguous().view([b, c, h, w]).apply(&self.proj_out);
        t + x
    }
}
