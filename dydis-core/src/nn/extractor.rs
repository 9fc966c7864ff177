//! The latent-unit feature extractor (docs/architecture.md): a CNN and an FC stack give N scalars, and N independent
//! MLPs lift scalar i to latent unit i in R^D. The last layer is a ReLU, as in the released code, so features are
//! non-negative with exact zeros.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractorConfig {
    /// Channels of the first convolution (64 in the paper); the next four have 2w, 4w, 4w, 4w.
    pub width: i64,
    /// Hidden widths of the FC stack (paper: 4096, 256).
    pub fc: Vec<i64>,
    /// Hidden widths of each unit's MLP (paper: 256, 512).
    pub mlp: Vec<i64>,
    /// N, the number of latent units.
    pub units: i64,
    /// D, the dimension of one unit.
    pub unit_dim: i64,
}

impl Default for ExtractorConfig {
    /// The paper's extractor (§3.1, N = 20, D = 32).
    fn default() -> Self {
        ExtractorConfig { width: 64, fc: vec![4096, 256], mlp: vec![256, 512], units: 20, unit_dim: 32 }
    }
}

impl ExtractorConfig {
    pub fn validate(&self, image_size: i64) -> Result<()> {
        let pos = |name: &str, v: i64| {
            if v > 0 {
                Ok(())
            } else {
                Err(Error::config(format!("extractor.{name}"), format!("{v} must be positive")))
            }
        };
        pos("width", self.width)?;
        pos("units", self.units)?;
        pos("unit_dim", self.unit_dim)?;
        for &h in self.fc.iter().chain(&self.mlp) {
            pos("fc/mlp", h)?;
        }
        if image_size < 16 || image_size % 16 != 0 {
            return Err(Error::config(
                "extractor",
                format!("the CNN halves the image four times: image size {image_size} must be a multiple of 16"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Extractor {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc: Vec<nn::Linear>,
    /// Per-unit MLPs stored batched over units: weights `[N, in, out]`, biases `[N, 1, out]`.
    unit_w: Vec<Tensor>,
    unit_b: Vec<Tensor>,
    pub units: i64,
    pub unit_dim: i64,
}

impl Extractor {
    pub fn new(p: &nn::Path, cfg: &ExtractorConfig, image_size: i64) -> Result<Self> {
        cfg.validate(image_size)?;
        let w = cfg.width;
        let spec = [
            (3, w, 7, 1, 3),
            (w, 2 * w, 4, 2, 1),
            (2 * w, 4 * w, 4, 2, 1),
            (4 * w, 4 * w, 4, 2, 1),
            (4 * w, 4 * w, 4, 2, 1),
        ];
        let convs = spec
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, s, pad))| {
                let c = nn::conv2d(
                    p / "cnn" / i / "conv",
                    cin,
                    cout,
                    k,
                    nn::ConvConfig { stride: s, padding: pad, ..Default::default() },
                );
                (c, nn::batch_norm2d(p / "cnn" / i / "bn", cout, Default::default()))
            })
            .collect();
        let flat = 4 * w * (image_size / 16) * (image_size / 16);
        let mut dims = vec![flat];
        dims.extend(&cfg.fc);
        dims.push(cfg.units);
        let fc = dims.windows(2).enumerate().map(|(i, d)| super::linear(p / "fc" / i, d[0], d[1], true)).collect();
        let mut mdims = vec![1];
        mdims.extend(&cfg.mlp);
        mdims.push(cfg.unit_dim);
        let (mut unit_w, mut unit_b) = (Vec::new(), Vec::new());
        for (i, d) in mdims.windows(2).enumerate() {
            // PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
            let bound = 1.0 / (d[0] as f64).sqrt();
            let init = nn::Init::Uniform { lo: -bound, up: bound };
            unit_w.push((p / "units").var(&format!("w{i}"), &[cfg.units, d[0], d[1]], init));
            unit_b.push((p / "units").var(&format!("b{i}"), &[cfg.units, 1, d[1]], init));
        }
        Ok(Extractor { convs, fc, unit_w, unit_b, units: cfg.units, unit_dim: cfg.unit_dim })
    }

    /// The N scalars before the per-unit MLPs, `[B, N]`.
    pub fn scalars(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (c, bn) in &self.convs {
            h = h.apply(c).apply_t(bn, train).relu();
        }
        let mut h = h.flatten(1, -1);
        let last = self.fc.len() - 1;
        for (i, l) in self.fc.iter().enumerate() {
            h = h.apply(l);
            if i < last {
                h = h.relu();
            }
        }
        h
    }

    /// Latent units `[B, N, D]` of images `[B, 3, S, S]` in [-1, 1].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // [N, B, 1]: unit i's MLP reads scalar i.
        let mut h = self.scalars(x, train).transpose(0, 1).unsqueeze(-1);
        for (w, b) in self.unit_w.iter().zip(&self.unit_b) {
            h = h.bmm(w).f_add(b).unwrap().relu();
        }
        h.transpose(0, 1).contiguous()
    }
}

impl ModuleT for Extractor {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        Extractor::forward_t(self, xs, train)
    }
}
