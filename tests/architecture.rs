//! The house's shape, checked from the source: dydis-core's imports point down its layers (docs/architecture.md
//! shows the same import graph, kept current by this test), and no CLI command module imports another.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// dydis-core's layers, bottom (0) to top. A module may import only modules of a lower layer, or its own top-level
/// module. The run layer is split: its files (`config`, `checkpoint`, `dir`) sit low, `Run::open` at the top.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("fs", 1),
    ("paths", 1),
    ("display", 2),
    ("device", 3),
    ("data", 3),
    ("nn", 3),
    ("diffusion", 3),
    ("flow", 3),
    ("dyga", 4),
    ("vae", 4),
    ("multibeta", 4),
    ("cldis", 4),
    ("run::config", 5),
    ("run::checkpoint", 6),
    ("run::dir", 7),
    ("model", 8),
    ("train", 9),
    ("generate", 9),
    ("method", 10),
    ("eval", 11),
    ("viz", 12),
    ("run", 13),
    ("bench", 13),
    ("study", 14),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `run/config.rs` → `run::config`; `run/mod.rs` → `run`; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its `#[cfg(test)]` module (tests may import anything).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Expand a use tree (`a::{b, c::{d, e}}`) into full paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .flat_map(expand)
        .map(|s| if s == "self" { prefix.to_string() } else { format!("{prefix}::{s}") })
        .collect()
}

/// Every `crate::…` and `super::…` path a file's code names, resolved to a path from the crate root.
fn imports(module: &str, code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` statements (which may span lines and nest braces).
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let stmt_end = rest[i..].find(';').map(|j| i + j).unwrap_or(rest.len());
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            paths.extend(expand(&rest[i + 4..stmt_end]));
        }
        rest = &rest[stmt_end.min(rest.len() - 1) + 1..];
    }
    // Paths written inline (`crate::fs::write_atomic(…)`).
    for prefix in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(prefix) {
            let start = at + i;
            let end = code[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map(|j| start + j)
                .unwrap_or(code.len());
            paths.push(code[start..end].trim_end_matches(':').to_string());
            at = end;
        }
    }
    let parent = module.rsplit_once("::").map(|p| p.0).unwrap_or("");
    paths
        .into_iter()
        .filter_map(|p| {
            if let Some(r) = p.strip_prefix("crate::") {
                return Some(r.to_string());
            }
            p.strip_prefix("super::").map(|r| if parent.is_empty() { r.to_string() } else { format!("{parent}::{r}") })
        })
        .collect()
}

/// The layer entry a module path falls under (longest matching prefix), if any.
fn layer_of(path: &str) -> Option<(&'static str, u32)> {
    LAYERS
        .iter()
        .filter(|(name, _)| path == *name || path.starts_with(&format!("{name}::")))
        .max_by_key(|(name, _)| name.len())
        .copied()
}

fn top(path: &str) -> &str {
    path.split("::").next().unwrap()
}

/// Module → the other top-level modules (or run-layer parts) it imports.
fn core_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("dydis-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = BTreeMap::new();
    for f in files {
        let module = module_of(&src, &f);
        if module.is_empty() {
            continue; // lib.rs: module list and prelude
        }
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        let targets: BTreeSet<String> = imports(&module, &code)
            .iter()
            // Every module may use the error type; the graph leaves it out.
            .filter(|p| !matches!(p.as_str(), "Error" | "Result") && !p.starts_with("Error::"))
            .filter_map(|p| layer_of(p).map(|(n, _)| n.to_string()))
            .filter(|n| n != "error")
            .collect();
        graph.insert(module, targets);
    }
    graph
}

#[test]
fn library_imports_point_down_the_layers() {
    let graph = core_graph();
    let mut violations = Vec::new();
    for (module, targets) in &graph {
        let (own, rank) = layer_of(module).unwrap_or_else(|| panic!("module {module} has no layer in LAYERS"));
        for t in targets {
            let (_, trank) = layer_of(t).unwrap();
            let same_module = top(t) == top(own) && trank <= rank;
            if t != own && !same_module && trank >= rank {
                violations.push(format!("{module} (layer {rank}) imports {t} (layer {trank})"));
            }
        }
    }
    assert!(violations.is_empty(), "imports pointing up or sideways:\n{}", violations.join("\n"));
    // The ones that were wrong once, named.
    let imports_of = |m: &str| graph.iter().filter(|(k, _)| top(k) == m).flat_map(|(_, v)| v.clone()).collect();
    let model: BTreeSet<String> = imports_of("model");
    assert!(!model.contains("train"), "model imports train");
    let train: BTreeSet<String> = imports_of("train");
    assert!(!train.contains("viz"), "train imports viz");
    let data: BTreeSet<String> = imports_of("data");
    assert!(!data.iter().any(|t| t.starts_with("run") || t == "model"), "data imports upward: {data:?}");
}

#[test]
fn the_import_graph_in_the_docs_is_current() {
    let mut by_top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, targets) in core_graph() {
        let node = layer_of(&module).unwrap().0.to_string();
        let entry = by_top.entry(node.clone()).or_default();
        entry.extend(targets.into_iter().filter(|t| *t != node));
    }
    let mut rows: Vec<(u32, String)> = by_top
        .iter()
        .map(|(m, ts)| {
            let list: Vec<&str> = ts.iter().map(String::as_str).collect();
            (layer_of(m).unwrap().1, format!("{:>2}  {m:<16} -> {}", layer_of(m).unwrap().1, list.join(", ")))
        })
        .collect();
    rows.sort();
    let block = rows.into_iter().map(|r| r.1.trim_end().to_string()).collect::<Vec<_>>().join("\n");
    let docs = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = docs.find("<!-- import-graph -->").expect("docs/architecture.md has an import-graph block");
    let end = docs.find("<!-- /import-graph -->").unwrap();
    let shown =
        docs[start..end].lines().filter(|l| !l.starts_with("<!--") && !l.starts_with("```")).collect::<Vec<_>>();
    assert_eq!(
        shown.join("\n").trim_matches('\n'),
        block,
        "docs/architecture.md's import graph is stale; it should read:\n{block}"
    );
}

#[test]
fn no_command_module_imports_another() {
    let dir = root().join("src/commands");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let names: Vec<String> = files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.len() >= 8, "command modules: {names:?}");
    for f in &files {
        let module = format!("commands::{}", f.file_stem().unwrap().to_string_lossy());
        if module == "commands::mod" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        for p in imports(&module, &code) {
            assert!(!p.starts_with("commands"), "{} imports {p}", f.display());
        }
    }
}

#[test]
fn the_use_tree_parser_expands_nested_groups() {
    let got = imports("run::dir", "use super::{checkpoint, config::RunConfig};\nuse crate::{fs::write_atomic, Error};");
    assert_eq!(got, ["run::checkpoint", "run::config::RunConfig", "fs::write_atomic", "Error"]);
    assert_eq!(layer_of("run::config::RunConfig"), Some(("run::config", 5)));
    assert_eq!(layer_of("run::Run"), Some(("run", 13)));
}
