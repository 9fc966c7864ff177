//! Networks: the VQ first stage, the latent-unit extractor and the conditional U-Net (docs/architecture.md).
//!
//! Each part is a `Config` (serde, validated) plus a type built with `new(path, &config)`; parameter paths are named
//! (`unet.input.3.0.in_conv.weight`), so checkpoints are readable and stable.
pub mod attention;
pub mod autoencoder;
pub mod diffae;
pub mod extractor;
pub mod multibeta;
pub mod optim;
pub mod resblock;
pub mod unet;
pub mod vae;

pub use attention::{AttentionRecord, SpatialTransformer};
pub use autoencoder::{Discriminator, FirstStage, FirstStageConfig, VqAutoencoder, VqConfig};
pub use extractor::{Extractor, ExtractorConfig};
pub use unet::{SkipDropout, SkipLevels, UNet, UNetConfig};

use tch::{nn, Tensor};

/// Number of scalar parameters under a var-store path prefix (`""` for all), trainable or not.
pub fn param_count(vs: &nn::VarStore, prefix: &str) -> i64 {
    vs.variables()
        .iter()
        .filter(|(name, _)| prefix.is_empty() || name.starts_with(prefix))
        .filter(|(name, _)| {
            !name.ends_with("running_mean") && !name.ends_with("running_var") && !name.ends_with("num_batches_tracked")
        })
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// GroupNorm with a fixed group count, validated at construction.
pub(crate) fn group_norm(p: nn::Path, groups: i64, channels: i64, eps: f64) -> nn::GroupNorm {
    nn::group_norm(p, groups, channels, nn::GroupNormConfig { eps, ..Default::default() })
}

pub(crate) fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64) -> nn::Conv2D {
    nn::conv2d(p, cin, cout, k, nn::ConvConfig { stride, padding: pad, ..Default::default() })
}

/// A convolution whose weights and bias start at zero (the U-Net's output convolutions).
pub(crate) fn zero_conv(p: nn::Path, cin: i64, cout: i64, k: i64, pad: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin,
        cout,
        k,
        nn::ConvConfig {
            padding: pad,
            ws_init: nn::Init::Const(0.),
            bs_init: nn::Init::Const(0.),
            ..Default::default()
        },
    )
}

pub(crate) fn linear(p: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    nn::linear(p, i, o, nn::LinearConfig { bias, ..Default::default() })
}

/// Swish / SiLU.
pub(crate) fn silu(x: &Tensor) -> Tensor {
    x.silu()
}

/// Check that every listed channel count divides into `groups` GroupNorm groups.
pub(crate) fn check_groups(field: &str, groups: i64, channels: &[i64]) -> crate::Result<()> {
    for &c in channels {
        if groups <= 0 || c % groups != 0 {
            return Err(crate::Error::config(
                field,
                format!("{c} channels do not divide into {groups} GroupNorm groups"),
            ));
        }
    }
    Ok(())
}
