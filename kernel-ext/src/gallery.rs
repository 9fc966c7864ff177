//! Executed notebooks as static HTML pages, and a gallery of them with an index, so that a researcher can read the
//! walkthroughs with their figures before installing anything. A page is self-contained: images are inline data
//! URIs, SVG plots inline markup, the style sheet in the page; nothing is fetched from anywhere when it is opened
//! ([`external_references`] checks that).
use crate::{Error, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:13px}\
pre.source{border-left:3px solid #4a7ebb}pre.error{background:#fde8e8;color:#8b0000}\
.output{margin:.3em 0 1.2em 0}.output img{max-width:100%;image-rendering:pixelated}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A notebook field that may be a string or a list of strings (nbformat's multi-line strings), joined.
fn joined(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn markdown(text: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(text, Options::ENABLE_TABLES));
    out
}

/// One output of a code cell, richest form first: PNG, SVG, HTML, then plain text; streams and errors as text.
fn output_html(o: &Value) -> String {
    match o["output_type"].as_str() {
        Some("stream") => format!("<pre>{}</pre>", escape(&joined(&o["text"]))),
        Some("error") => {
            let trace = joined(&o["traceback"]);
            let text =
                if trace.is_empty() { format!("{}: {}", joined(&o["ename"]), joined(&o["evalue"])) } else { trace };
            format!("<pre class=\"error\">{}</pre>", escape(&text))
        }
        _ => {
            let d = &o["data"];
            if let Some(png) = d.get("image/png") {
                format!("<img alt=\"figure\" src=\"data:image/png;base64,{}\">", joined(png).trim())
            } else if let Some(svg) = d.get("image/svg+xml") {
                joined(svg)
            } else if let Some(html) = d.get("text/html") {
                joined(html)
            } else {
                format!("<pre>{}</pre>", escape(&joined(&d["text/plain"])))
            }
        }
    }
}

/// The page of an executed notebook (`nb` as nbformat JSON) titled `title`.
pub fn notebook_html(nb: &Value, title: &str) -> Result<String> {
    let cells = nb["cells"]
        .as_array()
        .ok_or_else(|| Error::BadNotebook { path: PathBuf::from(title), message: "it has no list of cells".into() })?;
    let mut body = String::new();
    for c in cells {
        let source = joined(&c["source"]);
        match c["cell_type"].as_str() {
            Some("markdown") => body.push_str(&markdown(&source)),
            Some("code") => {
                let _ = write!(body, "<pre class=\"source\"><code>{}</code></pre>", escape(&source));
                let outputs = c["outputs"].as_array().map(Vec::as_slice).unwrap_or_default();
                body.push_str("<div class=\"output\">");
                for o in outputs {
                    body.push_str(&output_html(o));
                }
                body.push_str("</div>");
            }
            _ => {}
        }
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\
         <body><p><a href=\"index.html\">all notebooks</a></p>{body}</body></html>\n",
        escape(title)
    ))
}

/// What references a page would load from elsewhere when opened: `src`, a style sheet's `href` or a CSS `url(…)`
/// that is not a data URI (anchors' `href`s are links a reader may follow, not fetches).
pub fn external_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pat in ["src=\"", "src='", "url(", "<link"] {
        for (i, _) in html.match_indices(pat) {
            let rest = &html[i + pat.len()..];
            let target: String = rest.chars().take_while(|c| !matches!(c, '"' | '\'' | ')' | '>')).collect();
            let target = if pat == "<link" { rest.chars().take(80).collect() } else { target };
            if pat == "<link" || !(target.starts_with("data:") || target.starts_with('#') || target.is_empty()) {
                found.push(format!("{pat}{target}"));
            }
        }
    }
    found
}

/// A notebook of the gallery: its executed copy and whether it ran cleanly.
#[derive(Debug, Clone)]
pub struct GalleryEntry {
    pub executed: PathBuf,
    pub ok: bool,
}

/// Write a page per executed notebook into `dir` (`<name>.html`) and `index.html` listing them; returns the index.
pub fn write_gallery(dir: &Path, entries: &[GalleryEntry]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut items = String::new();
    for e in entries {
        let stem = e.executed.file_stem().and_then(|s| s.to_str()).unwrap_or("notebook").to_string();
        let nb = crate::notebook::read_notebook(&e.executed)?;
        let page = dir.join(format!("{stem}.html"));
        write(&page, &notebook_html(&nb, &stem)?)?;
        let first = nb["cells"].as_array().and_then(|c| c.first()).map(|c| joined(&c["source"])).unwrap_or_default();
        let heading = first.lines().next().unwrap_or("").trim_start_matches('#').trim().to_string();
        let status = if e.ok { "" } else { " (did not run cleanly)" };
        let _ = write!(items, "<li><a href=\"{stem}.html\">{}</a>{status}</li>", escape(&heading));
    }
    let index = dir.join("index.html");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dydis notebooks</title><style>{STYLE}</style>\
         </head><body><h1>dydis notebooks, executed</h1><ul>{items}</ul></body></html>\n"
    );
    write(&index, &html)?;
    Ok(index)
}

fn write(path: &Path, text: &str) -> Result<()> {
    dydis_core::fs::write_atomic(path, text.as_bytes())
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"cells": [
            {"cell_type": "markdown", "source": ["# 99 · A title\n", "\n", "| a | b |\n|---|---|\n| 1 | 2 |\n"]},
            {"cell_type": "code", "source": "let x = a < b;", "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["1 < 2\n"]},
                {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "[image]"}},
                {"output_type": "execute_result", "data": {"image/svg+xml": ["<svg width=\"4\"></svg>"]}},
                {"output_type": "execute_result", "data": {"text/html": "<table><tr><td>t</td></tr></table>"}},
                {"output_type": "error", "ename": "Error", "evalue": "boom", "traceback": []}
            ]}
        ]})
    }

    #[test]
    fn a_page_holds_every_output_inline() {
        let html = notebook_html(&sample(), "99-sample").unwrap();
        assert!(html.contains("<h1>99 · A title</h1>") && html.contains("<td>1</td>"), "markdown with a table");
        assert!(html.contains("let x = a &lt; b;") && html.contains("1 &lt; 2"), "source and streams escaped");
        assert!(html.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""));
        assert!(html.contains("<svg width=\"4\"></svg>") && html.contains("<td>t</td>"));
        assert!(html.contains("class=\"error\">Error: boom"));
        assert!(external_references(&html).is_empty(), "{:?}", external_references(&html));
        assert!(notebook_html(&json!({"cells": 3}), "bad").is_err());
    }

    #[test]
    fn external_references_are_found() {
        let page = "<img src=\"https://x.org/a.png\"><a href=\"https://ok.org\">link</a><style>b{background:url(//c/d)}</style>";
        assert_eq!(external_references(page), vec!["src=\"https://x.org/a.png", "url(//c/d"]);
        assert_eq!(external_references("<link rel=stylesheet href=\"s.css\">").len(), 1);
    }

    #[test]
    fn a_gallery_has_a_page_per_notebook_and_an_index() {
        let dir = std::env::temp_dir().join(format!("dydis-gallery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let nb = dir.join("99-sample.ipynb");
        std::fs::write(&nb, sample().to_string()).unwrap();
        let out = dir.join("gallery");
        let index = write_gallery(&out, &[GalleryEntry { executed: nb, ok: false }]).unwrap();
        let text = std::fs::read_to_string(index).unwrap();
        assert!(text.contains("<a href=\"99-sample.html\">99 · A title</a> (did not run cleanly)"), "{text}");
        assert!(out.join("99-sample.html").is_file());
        let _ = std::fs::remove_dir_all(dir);
    }
}
