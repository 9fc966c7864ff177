//! Rich display in evcxr notebooks, with plain-text fallbacks everywhere else.
//!
//! evcxr shows a value whose type has an `evcxr_display(&self)` method by reading
//! `EVCXR_BEGIN_CONTENT <mime>` … `EVCXR_END_CONTENT` blocks from its output. It keeps **one payload per MIME
//! type per cell**, so two displays of the same kind in one cell would overwrite each other: dydis therefore
//! renders everything as HTML (tables, PNG images as data URIs, inline SVG) that can be composed with
//! [`Panel`], plus a text/plain version.
//!
//! Types implement [`Show`]; the [`rich_display!`] macro adds the inherent `evcxr_display` method that evcxr
//! looks for. [`show`] prints the rich form inside a notebook and the text form in a terminal.
//!
//! An evcxr quirk: when a cell's final expression contains `?` or moves a variable kept from an earlier cell,
//! evcxr falls back to `Debug` output. End such cells with a plain variable: `let plot = line_plot(..)?; plot`.
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use base64::Engine as _;
use std::path::Path;
use tch::{Kind, Tensor};

/// Something that can show itself as HTML (notebooks) and as plain text (terminals, logs).
pub trait Show {
    fn to_html(&self) -> String;
    fn to_text(&self) -> String;

    /// Print the evcxr MIME blocks for this value (what evcxr calls for a cell's final value).
    fn display_rich(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT\nEVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT",
            self.to_html(),
            self.to_text()
        );
    }
}

/// Whether this code runs inside an evcxr kernel.
pub fn in_notebook() -> bool {
    std::env::var_os("EVCXR_IS_RUNTIME").is_some()
}

/// Show a value: rich output in a notebook, plain text elsewhere. Use it to display several values in one cell
/// only through a [`Panel`] (see the module note on one payload per MIME type).
pub fn show(value: &dyn Show) {
    if in_notebook() {
        value.display_rich();
    } else {
        println!("{}", value.to_text());
    }
}

/// Adds `pub fn evcxr_display(&self)` to a type that implements [`Show`], so that evcxr renders it when it is a
/// cell's value, even without the prelude in scope.
#[macro_export]
macro_rules! rich_display {
    ($($t:ty),+ $(,)?) => {$(
        impl $t {
            /// Called by evcxr to render this value in a notebook.
            pub fn evcxr_display(&self) {
                $crate::display::Show::display_rich(self);
            }
        }
    )+};
}
pub use rich_display;

/// Implements [`Show`] (and `evcxr_display`) for a type by delegating to a method returning a `Show` value.
macro_rules! impl_show_via {
    ($t:ty, $method:ident) => {
        impl $crate::display::Show for $t {
            fn to_html(&self) -> String {
                $crate::display::Show::to_html(&self.$method())
            }
            fn to_text(&self) -> String {
                $crate::display::Show::to_text(&self.$method())
            }
        }
        $crate::display::rich_display!($t);
    };
}
pub(crate) use impl_show_via;

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Tables

/// A titled table of strings; numbers are formatted by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub title: Option<String>,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table { title: None, headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Append a row. Short rows are padded with empty cells; long rows keep their extra cells.
    pub fn row<I, S>(mut self, cells: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        self.push_row(cells);
        self
    }

    /// A Markdown table (the title as a bold line above it; `|` in cells escaped).
    pub fn to_markdown(&self) -> String {
        let cell = |c: &String| c.replace('|', "\\|");
        let line = |cells: &[String]| format!("| {} |\n", cells.iter().map(cell).collect::<Vec<_>>().join(" | "));
        let mut s = self.title.as_ref().map(|t| format!("**{t}**\n\n")).unwrap_or_default();
        s += &line(&self.headers);
        s += &format!("|{}\n", "---|".repeat(self.headers.len()));
        for r in &self.rows {
            s += &line(r);
        }
        s
    }

    /// Rows as JSON objects keyed by the headers (for reports).
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    self.headers.iter().cloned().zip(r.iter().map(|c| serde_json::Value::String(c.clone()))).collect(),
                )
            })
            .collect();
        serde_json::json!({"title": self.title, "rows": rows})
    }

    pub fn push_row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        let mut cells: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        while cells.len() < self.headers.len() {
            cells.push(String::new());
        }
        self.rows.push(cells);
    }

    fn columns(&self) -> usize {
        self.rows.iter().map(Vec::len).chain([self.headers.len()]).max().unwrap_or(0)
    }
}

impl Show for Table {
    fn to_html(&self) -> String {
        let mut h =
            String::from("<table class=\"dydis-table\" style=\"border-collapse:collapse;font-family:monospace\">");
        if let Some(t) = &self.title {
            h.push_str(&format!("<caption style=\"font-weight:bold;text-align:left\">{}</caption>", escape_html(t)));
        }
        h.push_str("<thead><tr>");
        for c in &self.headers {
            h.push_str(&format!("<th style=\"text-align:left;padding:2px 8px\">{}</th>", escape_html(c)));
        }
        h.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            h.push_str("<tr>");
            for c in r {
                h.push_str(&format!("<td style=\"text-align:left;padding:2px 8px\">{}</td>", escape_html(c)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
        h
    }

    fn to_text(&self) -> String {
        let n = self.columns();
        let cell = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..n)
            .map(|i| self.rows.iter().chain([&self.headers]).map(|r| cell(r, i).chars().count()).max().unwrap_or(0))
            .collect();
        let line = |r: &Vec<String>| {
            let parts: Vec<String> = (0..n).map(|i| format!("{:<w$}", cell(r, i), w = widths[i])).collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = Vec::new();
        if let Some(t) = &self.title {
            out.push(t.clone());
        }
        out.push(line(&self.headers));
        out.push(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        out.extend(self.rows.iter().map(line));
        out.join("\n")
    }
}
rich_display!(Table);

// ---------------------------------------------------------------------------------------------------------------
// Raw HTML and composition

/// Literal HTML with a plain-text alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Html {
    pub html: String,
    pub text: String,
}

impl Html {
    pub fn new(html: impl Into<String>, text: impl Into<String>) -> Self {
        Html { html: html.into(), text: text.into() }
    }
    /// A heading or caption line.
    pub fn heading(text: &str) -> Self {
        Html::new(format!("<h4>{}</h4>", escape_html(text)), text)
    }
}

impl Show for Html {
    fn to_html(&self) -> String {
        self.html.clone()
    }
    fn to_text(&self) -> String {
        self.text.clone()
    }
}
rich_display!(Html);

/// Several displays in one cell, stacked vertically or laid out in a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    horizontal: bool,
    parts: Vec<Html>,
}

impl Panel {
    pub fn column() -> Self {
        Panel::default()
    }
    pub fn row() -> Self {
        Panel { horizontal: true, parts: Vec::new() }
    }
    pub fn push(mut self, item: &dyn Show) -> Self {
        self.parts.push(Html::new(item.to_html(), item.to_text()));
        self
    }
}

impl Show for Panel {
    fn to_html(&self) -> String {
        let dir = if self.horizontal { "row" } else { "column" };
        let mut h = format!("<div style=\"display:flex;flex-direction:{dir};gap:12px;align-items:flex-start\">");
        for p in &self.parts {
            h.push_str(&format!("<div>{}</div>", p.html));
        }
        h.push_str("</div>");
        h
    }
    fn to_text(&self) -> String {
        self.parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}
rich_display!(Panel);

// ---------------------------------------------------------------------------------------------------------------
// Images

/// An 8-bit RGB or grey image, encodable as PNG.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Row-major, interleaved channels.
    pub pixels: Vec<u8>,
    pub caption: Option<String>,
}

impl Image {
    /// From a `[C, H, W]` tensor (C = 1 or 3) whose values span `range` (dydis images use `(-1, 1)`).
    pub fn from_tensor(t: &Tensor, range: (f64, f64)) -> Result<Self> {
        let size = t.size();
        if size.len() != 3 || !(size[0] == 1 || size[0] == 3) {
            return Err(Error::Shape { got: size, expected: "[C, H, W] with C = 1 or 3".into() });
        }
        let (lo, hi) = range;
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::config("image range", format!("({lo}, {hi}) is not an increasing interval")));
        }
        let u8s = ((t.to_kind(Kind::Double).to_device(tch::Device::Cpu) - lo) * (255.0 / (hi - lo)))
            .nan_to_num(0.0, None, None)
            .clamp(0.0, 255.0)
            .round()
            .to_kind(Kind::Uint8)
            .permute([1, 2, 0])
            .contiguous();
        let pixels = Vec::<u8>::try_from(u8s.flatten(0, -1))?;
        Ok(Image {
            width: size[2] as usize,
            height: size[1] as usize,
            channels: size[0] as usize,
            pixels,
            caption: None,
        })
    }

    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// Nearest-neighbour enlargement by an integer factor (small images stay crisp in a notebook).
    pub fn upscale(&self, factor: usize) -> Image {
        let f = factor.max(1);
        let (w, h, c) = (self.width * f, self.height * f, self.channels);
        let mut pixels = vec![0u8; w * h * c];
        for y in 0..h {
            for x in 0..w {
                let src = ((y / f) * self.width + x / f) * c;
                pixels[(y * w + x) * c..(y * w + x) * c + c].copy_from_slice(&self.pixels[src..src + c]);
            }
        }
        Image { width: w, height: h, channels: c, pixels, caption: self.caption.clone() }
    }

    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(if self.channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
            enc.set_depth(png::BitDepth::Eight);
            let png_err = |e: png::EncodingError| Error::config("png", e.to_string());
            let mut w = enc.write_header().map_err(png_err)?;
            w.write_image_data(&self.pixels).map_err(png_err)?;
        }
        Ok(out)
    }

    /// Write a PNG file atomically (a temporary file renamed into place).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_png()?)
    }
}

impl Show for Image {
    fn to_html(&self) -> String {
        let data = self.to_png().map(|b| base64::engine::general_purpose::STANDARD.encode(b)).unwrap_or_default();
        let cap = self.caption.as_deref().map(|c| format!("<figcaption>{}</figcaption>", escape_html(c)));
        format!(
            "<figure style=\"margin:0\"><img src=\"data:image/png;base64,{data}\" width=\"{}\" height=\"{}\" style=\"image-rendering:pixelated\"/>{}</figure>",
            self.width,
            self.height,
            cap.unwrap_or_default()
        )
    }
    fn to_text(&self) -> String {
        let kind = if self.channels == 1 { "grey" } else { "RGB" };
        let cap = self.caption.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        format!("[{}x{} {kind} image{cap}]", self.width, self.height)
    }
}
rich_display!(Image);

/// Options for [`image_grid`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridOptions {
    /// Images per row (0 = about square).
    pub ncol: usize,
    /// Pixels between images.
    pub padding: usize,
    /// Value range of the input tensor.
    pub range: (f64, f64),
    /// Nearest-neighbour enlargement of the whole grid.
    pub scale: usize,
    /// Padding colour (0-255, grey).
    pub pad_value: u8,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions { ncol: 0, padding: 2, range: (-1.0, 1.0), scale: 1, pad_value: 255 }
    }
}

/// Tile a batch `[B, C, H, W]` (or one `[C, H, W]` image) into one image, row-major.
pub fn image_grid(batch: &Tensor, opts: GridOptions) -> Result<Image> {
    let batch = match batch.dim() {
        3 => batch.unsqueeze(0),
        4 => batch.shallow_clone(),
        _ => return Err(Error::Shape { got: batch.size(), expected: "[B, C, H, W] or [C, H, W]".into() }),
    };
    let (b, c, h, w) = batch.size4()?;
    if b == 0 {
        return Err(Error::Shape { got: batch.size(), expected: "a non-empty batch".into() });
    }
    let images: Vec<Image> = (0..b).map(|i| Image::from_tensor(&batch.get(i), opts.range)).collect::<Result<_>>()?;
    let ncol = if opts.ncol == 0 { (b as f64).sqrt().ceil() as usize } else { opts.ncol.min(b as usize) };
    let nrow = (b as usize).div_ceil(ncol);
    let (h, w, c, p) = (h as usize, w as usize, c as usize, opts.padding);
    let gw = ncol * w + (ncol + 1) * p;
    let gh = nrow * h + (nrow + 1) * p;
    let mut pixels = vec![opts.pad_value; gw * gh * c];
    for (k, img) in images.iter().enumerate() {
        let (r, col) = (k / ncol, k % ncol);
        let (y0, x0) = (p + r * (h + p), p + col * (w + p));
        for y in 0..h {
            let dst = ((y0 + y) * gw + x0) * c;
            pixels[dst..dst + w * c].copy_from_slice(&img.pixels[y * w * c..(y + 1) * w * c]);
        }
    }
    let grid = Image { width: gw, height: gh, channels: c, pixels, caption: None };
    Ok(if opts.scale > 1 { grid.upscale(opts.scale) } else { grid })
}

// ---------------------------------------------------------------------------------------------------------------
// SVG plots (plotters)

/// An SVG drawing (plotters' SVG backend), shown inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Svg {
    pub svg: String,
    pub text: String,
}

impl Svg {
    /// Draw with plotters on an SVG canvas of `size` pixels. `text` is the plain-text stand-in.
    pub fn draw<F>(size: (u32, u32), text: impl Into<String>, draw: F) -> Result<Svg>
    where
        F: FnOnce(
            plotters::drawing::DrawingArea<plotters::prelude::SVGBackend<'_>, plotters::coord::Shift>,
        ) -> std::result::Result<(), Box<dyn std::error::Error>>,
    {
        use plotters::prelude::IntoDrawingArea;
        let mut svg = String::new();
        {
            let root = plotters::prelude::SVGBackend::with_string(&mut svg, size).into_drawing_area();
            draw(root).map_err(|e| Error::failed("drawing the plot", e.to_string()))?;
        }
        Ok(Svg { svg, text: text.into() })
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), self.svg.as_bytes())
    }
}

impl Show for Svg {
    fn to_html(&self) -> String {
        format!("<div>{}</div>", self.svg)
    }
    fn to_text(&self) -> String {
        self.text.clone()
    }
}
rich_display!(Svg);

/// A named series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        Series { name: name.into(), points: points.into_iter().collect() }
    }
}

const PALETTE: [plotters::style::RGBColor; 8] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
    plotters::style::RGBColor(227, 119, 194),
    plotters::style::RGBColor(127, 127, 127),
];

/// The `i`-th colour of the plots' palette (it repeats after eight).
pub fn palette(i: usize) -> plotters::style::RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A line chart of one or more series. Non-finite points are skipped; the text form lists each series' range.
pub fn line_plot(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Svg> {
    use plotters::prelude::*;
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().filter(finite).copied()).collect();
    if pts.is_empty() {
        return Err(Error::config("plot", format!("'{title}' has no finite points to draw")));
    }
    let span = |v: Vec<f64>| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
        (lo - pad)..(hi + pad)
    };
    let xs = span(pts.iter().map(|p| p.0).collect());
    let ys = span(pts.iter().map(|p| p.1).collect());
    let mut text = format!("{title} ({x_label} vs {y_label})");
    for s in series {
        let last = s.points.iter().rev().find(|p| finite(p));
        let (lo, hi) = s
            .points
            .iter()
            .filter(finite)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.1), a.1.max(p.1)));
        match last {
            Some(l) => text.push_str(&format!(
                "\n  {}: {} points, y in [{lo:.4}, {hi:.4}], last {:.4}",
                s.name,
                s.points.len(),
                l.1
            )),
            None => text.push_str(&format!("\n  {}: no finite points", s.name)),
        }
    }
    Svg::draw((640, 400), text, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys)?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().filter(finite).copied(), color.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if series.len() > 1 || !series[0].name.is_empty() {
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        }
        root.present()?;
        Ok(())
    })
}

/// Grouped bars: one group per category, one bar per series (e.g. accuracy per factor for several training sizes).
/// Values must be finite; the y axis starts at 0 (or below the smallest negative value).
pub fn bar_chart(title: &str, y_label: &str, categories: &[String], series: &[(String, Vec<f64>)]) -> Result<Svg> {
    use plotters::prelude::*;
    if categories.is_empty() || series.is_empty() {
        return Err(Error::config("plot", format!("'{title}' has no bars to draw")));
    }
    if let Some((name, _)) =
        series.iter().find(|(_, v)| v.len() != categories.len() || v.iter().any(|x| !x.is_finite()))
    {
        return Err(Error::config(
            "plot",
            format!("series '{name}' of '{title}' needs one finite value per category ({})", categories.len()),
        ));
    }
    let hi = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::max);
    let lo = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::min);
    let hi = if hi > lo { hi * 1.08 } else { 1.0 };
    let k = series.len() as f64;
    let mut text = format!("{title} ({y_label})");
    for (name, v) in series {
        text.push_str(&format!(
            "\n  {name}: {}",
            categories.iter().zip(v).map(|(c, x)| format!("{c} {x:.3}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let cats = categories.to_vec();
    Svg::draw((720, 400), text, move |root| {
        root.fill(&WHITE)?;
        let n = cats.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, lo..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < cats.len() {
                    cats[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .draw()?;
        for (j, (name, v)) in series.iter().enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            let w = 0.8 / k;
            chart
                .draw_series(v.iter().enumerate().map(|(i, &y)| {
                    let x0 = i as f64 + 0.1 + j as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w * 0.95, y)], color.filled())
                }))?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        if series.len() > 1 {
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        }
        root.present()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn table_renders_text_and_escaped_html() {
        let t = Table::new(["metric", "value"]).with_title("scores").row(["<dci>", "0.5"]).row(["mig"]);
        let text = t.to_text();
        assert_eq!(text.lines().next(), Some("scores"));
        assert!(text.contains("<dci>   0.5"), "{text}");
        let html = t.to_html();
        assert!(html.contains("&lt;dci&gt;") && !html.contains("<dci>"));
        assert_eq!(html.matches("<tr>").count(), 3);
    }

    #[test]
    fn grid_places_images_and_pads() {
        // Two 1x2x2 images: all -1 (black) and all +1 (white); grid in one row with padding 1 of value 7.
        let b = Tensor::cat(
            &[
                Tensor::full([1, 1, 2, 2], -1.0, (Kind::Float, Device::Cpu)),
                Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu)),
            ],
            0,
        );
        let g = image_grid(&b, GridOptions { ncol: 2, padding: 1, pad_value: 7, ..Default::default() }).unwrap();
        assert_eq!((g.width, g.height, g.channels), (7, 4, 1));
        let row1: Vec<u8> = g.pixels[7..14].to_vec();
        assert_eq!(row1, vec![7, 0, 0, 7, 255, 255, 7]);
        let png = g.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(g.to_html().starts_with("<figure"));
        assert_eq!(g.upscale(3).width, 21);
    }

    #[test]
    fn grid_rejects_bad_shapes_and_ranges() {
        let bad = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        assert!(image_grid(&bad, GridOptions::default()).unwrap_err().to_string().contains("[B, C, H, W]"));
        let two_ch = Tensor::zeros([1, 2, 4, 4], (Kind::Float, Device::Cpu));
        assert!(image_grid(&two_ch, GridOptions::default()).is_err());
        let ok = Tensor::zeros([3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(Image::from_tensor(&ok, (1.0, 1.0)).is_err());
        // NaNs become black rather than garbage.
        let nan = Tensor::full([1, 1, 1], f64::NAN, (Kind::Float, Device::Cpu));
        assert_eq!(Image::from_tensor(&nan, (0.0, 1.0)).unwrap().pixels, vec![0]);
    }

    #[test]
    fn line_plot_is_svg_with_a_text_summary() {
        let s = Series::new("loss", (0..10).map(|i| (i as f64, 1.0 / (1.0 + i as f64))));
        let p = line_plot("training", "step", "loss", &[s]).unwrap();
        assert!(p.svg.contains("<svg") && p.svg.contains("</svg>"));
        assert!(p.to_text().contains("loss: 10 points"));
        assert!(line_plot("empty", "x", "y", &[Series::new("nan", [(0.0, f64::NAN)])]).is_err());
    }

    #[test]
    fn panel_composes_html_and_text() {
        let p = Panel::row().push(&Html::heading("a")).push(&Table::new(["x"]).row(["1"]));
        assert!(p.to_html().contains("flex-direction:row") && p.to_html().contains("<table"));
        assert_eq!(p.to_text(), "a\n\nx\n-\n1");
    }
}
