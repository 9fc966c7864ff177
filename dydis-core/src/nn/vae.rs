//! disentanglement_lib's VAE networks (`methods/shared/architectures.py`): `conv_encoder`, `deconv_decoder` and the
//! FactorVAE `fc_discriminator`, with TensorFlow's default initialisation (Glorot-uniform weights, zero biases).
//! TF's `padding="same"` becomes padding 1 for the 4×4 stride-2 layers and 0 for the 2×2 ones (exact halving and
//! doubling either way). At 64 px the encoder flattens 64×4×4 = 1,024 features; other sizes (multiples of 16, e.g.
//! the 32 px CPU presets) flatten 64×(s/16)².
use tch::nn::{self, Module};
use tch::Tensor;

/// TensorFlow's `glorot_uniform`: U(−a, a), a = √(6 / (fan_in + fan_out)), fans counting the receptive field.
pub(crate) fn glorot(fan_in: i64, fan_out: i64) -> nn::Init {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform { lo: -a, up: a }
}

pub(crate) fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride: 2,
        padding,
        ws_init: glorot(c_in * k * k, c_out * k * k),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

pub(crate) fn deconv(p: nn::Path, c_in: i64, c_out: i64) -> nn::ConvTranspose2D {
    let cfg = nn::ConvTransposeConfig {
        stride: 2,
        padding: 1,
        ws_init: glorot(c_in * 16, c_out * 16),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::conv_transpose2d(p, c_in, c_out, 4, cfg)
}

pub(crate) fn dense(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, nn::LinearConfig { ws_init: glorot(i, o), bs_init: Some(nn::Init::Const(0.0)), bias: true })
}

/// `conv_encoder`: four stride-2 convolutions (4×4, 4×4, 2×2, 2×2) with ReLU, a 256-unit dense layer, and the
/// Gaussian posterior's mean and log-variance heads.
#[derive(Debug)]
pub struct ConvEncoder {
    convs: Vec<nn::Conv2D>,
    fc: nn::Linear,
    means: nn::Linear,
    log_var: nn::Linear,
}

impl ConvEncoder {
    pub fn new(p: &nn::Path, channels: i64, latent: i64, image_size: i64) -> Self {
        Self::widened(p, channels, latent, image_size, 1)
    }

    /// The same network with `width` times the convolutions' channels (CL-Dis's co-pilot on faces).
    pub fn widened(p: &nn::Path, channels: i64, latent: i64, image_size: i64, width: i64) -> Self {
        let s = image_size / 16;
        let (a, b) = (32 * width, 64 * width);
        ConvEncoder {
            convs: vec![
                conv(p / "e1", channels, a, 4, 1),
                conv(p / "e2", a, a, 4, 1),
                conv(p / "e3", a, b, 2, 0),
                conv(p / "e4", b, b, 2, 0),
            ],
            fc: dense(p / "e5", b * s * s, 256),
            means: dense(p / "means", 256, latent),
            log_var: dense(p / "log_var", 256, latent),
        }
    }

    /// Images `[B, C, S, S]` in [0, 1] → (mean, log-variance) `[B, latent]` each.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let h = self.convs.iter().fold(x.shallow_clone(), |h, c| c.forward(&h).relu());
        let h = self.fc.forward(&h.flatten(1, -1)).relu();
        (self.means.forward(&h), self.log_var.forward(&h))
    }
}

/// `deconv_decoder`: dense 256 and 64·(s/16)² with ReLU, four 4×4 stride-2 transposed convolutions (ReLU after all
/// but the last); the output is Bernoulli logits `[B, C, S, S]`.
#[derive(Debug)]
pub struct DeconvDecoder {
    fc1: nn::Linear,
    fc2: nn::Linear,
    deconvs: Vec<nn::ConvTranspose2D>,
    side: i64,
    /// Channels of the first feature map.
    width: i64,
}

impl DeconvDecoder {
    pub fn new(p: &nn::Path, channels: i64, latent: i64, image_size: i64) -> Self {
        Self::widened(p, channels, latent, image_size, 1)
    }

    /// The same network with `width` times the transposed convolutions' channels.
    pub fn widened(p: &nn::Path, channels: i64, latent: i64, image_size: i64, width: i64) -> Self {
        let s = image_size / 16;
        let (a, b) = (32 * width, 64 * width);
        DeconvDecoder {
            fc1: dense(p / "d1", latent, 256),
            fc2: dense(p / "d2", 256, b * s * s),
            deconvs: vec![
                deconv(p / "d3", b, b),
                deconv(p / "d4", b, a),
                deconv(p / "d5", a, a),
                deconv(p / "d6", a, channels),
            ],
            side: s,
            width: b,
        }
    }

    pub fn forward(&self, z: &Tensor) -> Tensor {
        let h = self.fc2.forward(&self.fc1.forward(z).relu()).relu().view([-1, self.width, self.side, self.side]);
        let last = self.deconvs.len() - 1;
        self.deconvs.iter().enumerate().fold(h, |h, (i, d)| {
            let y = d.forward(&h);
            if i < last {
                y.relu()
            } else {
                y
            }
        })
    }
}

/// `fc_discriminator`: six 1,000-unit layers with leaky ReLU (slope 0.2, TensorFlow's default) and two logits:
/// class 0 "drawn from the joint", class 1 "permuted".
#[derive(Debug)]
pub struct FcDiscriminator {
    hidden: Vec<nn::Linear>,
    out: nn::Linear,
}

impl FcDiscriminator {
    pub fn new(p: &nn::Path, latent: i64) -> Self {
        let hidden = (0..6).map(|i| dense(p / format!("h{i}"), if i == 0 { latent } else { 1000 }, 1000)).collect();
        FcDiscriminator { hidden, out: dense(p / "logits", 1000, 2) }
    }

    /// Codes `[B, latent]` → logits `[B, 2]`.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        let h = self.hidden.iter().fold(z.shallow_clone(), |h, l| l.forward(&h).leaky_relu_with_slope(0.2));
        self.out.forward(&h)
    }
}

trait LeakyRelu {
    fn leaky_relu_with_slope(&self, slope: f64) -> Tensor;
}

impl LeakyRelu for Tensor {
    fn leaky_relu_with_slope(&self, slope: f64) -> Tensor {
        self.maximum(&(self * slope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn count(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    #[test]
    fn parameter_counts_equal_disentanglement_libs() {
        for (channels, enc, dec) in [(3, 310_228, 382_339), (1, 309_204, 381_313)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let e = ConvEncoder::new(&(vs.root() / "enc"), channels, 10, 64);
            assert_eq!(count(&vs), enc, "encoder, {channels} channel(s)");
            let vs2 = nn::VarStore::new(Device::Cpu);
            let d = DeconvDecoder::new(&(vs2.root() / "dec"), channels, 10, 64);
            assert_eq!(count(&vs2), dec, "decoder, {channels} channel(s)");
            let x = Tensor::rand([2, channels, 64, 64], (Kind::Float, Device::Cpu));
            let (m, lv) = e.forward(&x);
            assert_eq!((m.size(), lv.size()), (vec![2, 10], vec![2, 10]));
            assert_eq!(d.forward(&m).size(), vec![2, channels, 64, 64]);
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let disc = FcDiscriminator::new(&(vs.root() / "disc"), 10);
        assert_eq!(count(&vs), 5_018_002);
        assert_eq!(disc.forward(&Tensor::zeros([3, 10], (Kind::Float, Device::Cpu))).size(), vec![3, 2]);
        // 32 px: the same layers, a 64×2×2 flatten.
        let vs = nn::VarStore::new(Device::Cpu);
        let e = ConvEncoder::new(&(vs.root() / "enc"), 3, 10, 32);
        let d = DeconvDecoder::new(&(vs.root() / "dec"), 3, 10, 32);
        let (m, _) = e.forward(&Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)));
        assert_eq!(d.forward(&m).size(), vec![2, 3, 32, 32]);
    }

    #[test]
    fn weights_are_glorot_uniform_and_biases_zero_and_the_slope_is_0_2() {
        let _rng = crate::device::global_rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = FcDiscriminator::new(&(vs.root() / "disc"), 10);
        let vars = vs.variables();
        let w = &vars["disc.h1.weight"];
        let a = (6.0f64 / 2000.0).sqrt();
        let (lo, hi) = (w.min().double_value(&[]), w.max().double_value(&[]));
        assert!(lo >= -a && hi <= a && hi > 0.99 * a && lo < -0.99 * a, "[{lo}, {hi}] vs ±{a}");
        // Uniform on [−a, a]: variance a²/3.
        let var = w.var(true).double_value(&[]);
        assert!((var / (a * a / 3.0) - 1.0).abs() < 0.01, "{var}");
        assert_eq!(vars["disc.h1.bias"].abs().max().double_value(&[]), 0.0);
        let x = Tensor::from_slice(&[-1.0f32, 2.0]);
        assert_eq!(Vec::<f32>::try_from(x.leaky_relu_with_slope(0.2)).unwrap(), vec![-0.2, 2.0]);
    }
}
