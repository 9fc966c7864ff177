//! The U-Net's residual block (docs/architecture.md): GroupNorm, SiLU, conv; the time embedding as a scale and
//! shift of the second GroupNorm; dropout; a zero-initialised conv; optional average-pool down / nearest up on both
//! branches (`resblock_updown`).
use super::{conv, group_norm, linear, silu, zero_conv};
use tch::{nn, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    None,
    Down,
    Up,
}

impl Resample {
    pub(crate) fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Resample::None => x.shallow_clone(),
            Resample::Down => x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
            Resample::Up => {
                let (_, _, h, w) = x.size4().unwrap();
                x.upsample_nearest2d([h * 2, w * 2], None, None)
            }
        }
    }
}

#[derive(Debug)]
pub struct ResBlock {
    in_norm: nn::GroupNorm,
    in_conv: nn::Conv2D,
    emb: nn::Linear,
    out_norm: nn::GroupNorm,
    out_conv: nn::Conv2D,
    skip: Option<nn::Conv2D>,
    resample: Resample,
    dropout: f64,
}

impl ResBlock {
    #[allow(clippy::too_many_arguments)]
    pub fn new(p: nn::Path, cin: i64, cout: i64, emb_dim: i64, dropout: f64, groups: i64, resample: Resample) -> Self {
        ResBlock {
            in_norm: group_norm(&p / "in_norm", groups, cin, 1e-5),
            in_conv: conv(&p / "in_conv", cin, cout, 3, 1, 1),
            emb: linear(&p / "emb", emb_dim, 2 * cout, true),
            out_norm: group_norm(&p / "out_norm", groups, cout, 1e-5),
            out_conv: zero_conv(&p / "out_conv", cout, cout, 3, 1),
            skip: (cin != cout).then(|| conv(&p / "skip", cin, cout, 1, 1, 0)),
            resample,
            dropout,
        }
    }

    pub fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Tensor {
        let h = silu(&x.apply(&self.in_norm));
        let (h, x) = (self.resample.apply(&h), self.resample.apply(x));
        let h = h.apply(&self.in_conv);
        let ss = silu(emb).apply(&self.emb).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
        let h = h.apply(&self.out_norm) * (1.0 + &ss[0]) + &ss[1];
        let h = silu(&h).dropout(self.dropout, train).apply(&self.out_conv);
        match &self.skip {
            Some(s) => x.apply(s) + h,
            None => x + h,
        }
    }
}
