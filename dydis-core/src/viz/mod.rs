//! Visual tools for trained models (docs/architecture.md; paper Fig. 1, 3, 4, 6, 11): DAAM-style attention maps
//! per latent unit, conditional generation from one anchor's region, 2-D projections of the latent units coloured by
//! the factor each unit is most associated with, and DyGA anchor plots over refits. Each tool returns a value that
//! shows itself in a notebook and can be saved (PNG / SVG / JSON); the CLI calls the same functions with the same
//! defaults, so a notebook and `dydis attention|anchor-samples|project|anchors` draw the same figure from the same
//! checkpoint and seed.

pub use anchor_plots::{anchor_plots, AnchorPlots};
pub use anchor_samples::{anchor_samples, AnchorSamples, AnchorSamplesOptions};
pub use attention::{attention_maps, AttentionMaps, AttentionOptions};
pub use projection::{project_units, Projections, UnitProjection};

use tch::{Kind, Tensor};

/// `Show` for a result type with `figure() -> Result<impl Show>` and `table() -> Table`: figure above table in a
/// notebook, the table as text.
macro_rules! show_figure_and_table {
    ($t:ty) => {
        impl $crate::display::Show for $t {
            fn to_html(&self) -> String {
                match self.figure() {
                    Ok(f) => $crate::display::Panel::column().push(&f).push(&self.table()).to_html(),
                    Err(e) => $crate::display::escape_html(&e.to_string()),
                }
            }
            fn to_text(&self) -> String {
                self.table().to_text()
            }
        }
        $crate::display::rich_display!($t);
    };
}
pub(crate) use show_figure_and_table;

pub mod anchor_plots;
pub mod anchor_samples;
pub mod attention;
pub mod cldis;
pub mod multibeta;
pub mod projection;

/// Tile a batch of figure panels `[B, 3, S, S]` (in [-1, 1]) `ncol` per row, enlarged to about 96 px per panel.
pub(crate) fn tile(panels: &Tensor, ncol: usize, caption: String) -> crate::Result<crate::display::Image> {
    let s = panels.size().last().copied().unwrap_or(1);
    let scale = (96 / s.max(1)).clamp(1, 4) as usize;
    Ok(crate::display::image_grid(panels, crate::display::GridOptions { ncol, scale, ..Default::default() })?
        .with_caption(caption))
}

/// Stops of the viridis colour map (matplotlib's, at 0, 0.25, 0.5, 0.75, 1), RGB in [0, 1].
const VIRIDIS: [[f64; 3]; 5] =
    [[0.267, 0.005, 0.329], [0.230, 0.322, 0.546], [0.128, 0.567, 0.551], [0.369, 0.789, 0.383], [0.993, 0.906, 0.144]];

/// Viridis colour of `v` in [0, 1] (clamped; NaN is drawn as 0), RGB in [0, 1].
pub fn viridis(v: f64) -> [f64; 3] {
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let x = v * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}

/// Colour a batch of maps `[B, H, W]` with values in [0, 1] by viridis: `[B, 3, H, W]` in [0, 1].
pub fn colourise(maps: &Tensor) -> Tensor {
    let m = maps.to_kind(Kind::Float).clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = m.floor().clamp(0.0, (VIRIDIS.len() - 2) as f64);
    let f = &m - &i;
    let stops = Tensor::from_slice(&VIRIDIS.concat()).to_kind(Kind::Float).to_device(maps.device()).view([-1, 3]);
    let idx = i.to_kind(Kind::Int64);
    let a = stops.index_select(0, &idx.flatten(0, -1)).view([maps.size()[0], maps.size()[1], maps.size()[2], 3]);
    let b = stops.index_select(0, &(idx + 1).flatten(0, -1)).view([maps.size()[0], maps.size()[1], maps.size()[2], 3]);
    (&a + (b - &a) * f.unsqueeze(-1)).permute([0, 3, 1, 2])
}

/// Heat maps over images: `images` `[B, 3, H, W]` in [-1, 1], `maps` `[B, H, W]` in [0, 1] → `[B, 3, H, W]` in
/// [-1, 1], the map's colour blended over the image's grey levels (`alpha` = weight of the colour).
pub fn overlay(images: &Tensor, maps: &Tensor, alpha: f64) -> Tensor {
    let grey = ((images.to_kind(Kind::Float) + 1.0) * 0.5).mean_dim(1, true, Kind::Float).clamp(0.0, 1.0);
    let colour = colourise(maps);
    (grey * (1.0 - alpha) + colour * alpha) * 2.0 - 1.0
}

/// Min-max normalise each map of `[B, H, W]` to [0, 1] (a constant map becomes zeros).
pub fn normalise_maps(maps: &Tensor) -> Tensor {
    let flat = maps.flatten(1, -1);
    let lo = flat.min_dim(1, true).0;
    let hi = flat.max_dim(1, true).0;
    let span = (&hi - &lo).clamp_min(1e-12);
    ((flat - lo) / span).view_as(maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_tensor_form_agree() {
        assert_eq!(viridis(0.0), VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[4]);
        assert_eq!(viridis(f64::NAN), VIRIDIS[0]);
        let m = Tensor::from_slice(&[0.0f32, 0.3, 0.5, 1.0]).view([1, 2, 2]);
        let c = colourise(&m);
        assert_eq!(c.size(), vec![1, 3, 2, 2]);
        for (k, v) in [0.0, 0.3, 0.5, 1.0].iter().enumerate() {
            let want = viridis(*v);
            for ch in 0..3 {
                let got = c.double_value(&[0, ch, (k / 2) as i64, (k % 2) as i64]);
                assert!((got - want[ch as usize]).abs() < 1e-5, "{v}: {got} vs {:?}", want);
            }
        }
    }

    #[test]
    fn normalised_maps_span_zero_to_one() {
        let m = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 5.0, 7.0, 7.0, 7.0, 7.0]).view([2, 2, 2]);
        let n = normalise_maps(&m);
        assert_eq!(n.double_value(&[0, 0, 0]), 0.0);
        assert_eq!(n.double_value(&[0, 1, 1]), 1.0);
        assert!((n.double_value(&[0, 0, 1]) - 0.25).abs() < 1e-6);
        assert_eq!(n.get(1).abs().sum(Kind::Float).double_value(&[]), 0.0, "a constant map becomes zeros");
    }
}
