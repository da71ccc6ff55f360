//! Guard: the import graph of `crate/core/src` has no circles, and nothing below the
//! converter (`convert/`, the application layer) imports from it.
//!
//! The graph is built from the source text, one node per file (`a/b.rs` is `a/b`, `a/mod.rs`
//! is `a`, `lib.rs` is the crate root): every `use` tree and every inline `crate::`/`super::`
//! path is resolved to the deepest module file it names (`crate::container::detect::load` ->
//! `container/detect`); a name the crate root re-exports (`crate::Error`) goes to the module
//! it comes from; macros (`crate::bail!`) and other crates are ignored. Two kinds of edges are
//! left out on purpose: those inside `#[cfg(test)]` modules (tests may use anything), and
//! those from a module to its own submodules (a `mod.rs` declaring, re-exporting and
//! dispatching to its children is structure, not a dependency between peers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles tolerated, each as the set of files in it: none. A new entry needs a reason here;
/// the last one (`pickle/vm` <-> `pickle/interpret`) ended when `kind_name`/`value_kind`
/// moved to pickle/kinds.rs.
const ALLOWED_CYCLES: &[&[&str]] = &[];

type Graph = BTreeMap<String, BTreeSet<String>>;

// ----- source text -> tokens of interest ------------------------------------------------

/// `src` without comments, string/char literals and `#[cfg(test)]` modules.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && !ident_byte(b, i)
        {
            // Raw string r"..." / r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                // Multi-byte char literal or lifetime: find the next quote on this token.
                let rest = &src[i + 1..];
                let ch_len = rest.chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += 2 + ch_len;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            // Copy one UTF-8 char.
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    remove_test_modules(&out)
}

fn ident_byte(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

fn remove_test_modules(s: &str) -> String {
    let mut out = s.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = &out[at + "#[cfg(test)]".len()..];
        // Only a module is cut; a cfg(test) item of another kind just loses its attribute.
        let is_mod = {
            let t = after.trim_start();
            let t = t
                .strip_prefix("#[allow(")
                .map_or(t, |r| r.find(")]").map_or(r, |e| r[e + 2..].trim_start()));
            t.starts_with("mod ")
        };
        let end = if is_mod {
            match after.find('{') {
                Some(open) => {
                    let mut depth = 0usize;
                    let mut close = after.len();
                    for (k, ch) in after[open..].char_indices() {
                        match ch {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    close = open + k + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    at + "#[cfg(test)]".len() + close
                }
                None => at + "#[cfg(test)]".len(),
            }
        } else {
            at + "#[cfg(test)]".len()
        };
        out.replace_range(at..end, " ");
    }
    out
}

/// Full paths (segments) named by a `use` tree such as `super::{a, b::{c, d as e}, *}`.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    fn split_top(s: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in s.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
    fn go(prefix: &[String], s: &str, out: &mut Vec<Vec<String>>) {
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        if let Some(open) = s.find('{') {
            let head = s[..open].trim().trim_end_matches("::");
            let mut p = prefix.to_vec();
            p.extend(segments(head));
            let inner = &s[open + 1..s.rfind('}').unwrap_or(s.len())];
            for part in split_top(inner) {
                go(&p, part, out);
            }
        } else {
            let s = s.split(" as ").next().unwrap_or(s);
            let mut p = prefix.to_vec();
            p.extend(segments(s));
            if p.last().map(String::as_str) == Some("self") {
                p.pop();
            }
            out.push(p);
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

fn segments(s: &str) -> Vec<String> {
    s.split("::")
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty() && x != "*")
        .collect()
}

/// Paths a stripped source names: `use` trees, then inline `crate::`/`super::`/`self::`.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code.to_string();
    // `use` trees (removed from the text once read).
    let mut i = 0;
    while let Some(at) = rest[i..].find("use ").map(|k| k + i) {
        let before_ok = at == 0
            || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        let Some(end) = rest[at..].find(';').map(|k| k + at) else {
            break;
        };
        if before_ok {
            out.extend(expand_use_tree(&rest[at + 4..end]));
            rest.replace_range(at..end, " ");
            i = at + 1;
        } else {
            i = at + 4;
        }
    }
    // Inline paths.
    let b = rest.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut k = 0;
        while let Some(at) = rest[k..].find(start).map(|x| x + k) {
            k = at + start.len();
            if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
                continue;
            }
            let mut end = at;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b':')
            {
                end += 1;
            }
            let mut segs = segments(&rest[at..end]);
            // `crate::bail!`: a macro, not a path to a module.
            if b.get(end) == Some(&b'!') {
                segs.pop();
            }
            out.push(segs);
        }
    }
    out
}

// ----- the graph ------------------------------------------------------------------------

/// Module path of a file: `container/detect.rs` -> ["container", "detect"].
fn module_of(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(segs.last().map(String::as_str), Some("mod") | Some("lib")) {
        segs.pop();
    }
    segs
}

fn node_name(m: &[String]) -> String {
    if m.is_empty() {
        "lib".to_string()
    } else {
        m.join("/")
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Sources by module path.
fn sources(root: &Path) -> BTreeMap<Vec<String>, String> {
    let mut files = Vec::new();
    rs_files(root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (module_of(&rel), text)
        })
        .collect()
}

/// The import graph of the modules in `srcs` (see the module docs for the rules).
fn import_graph(srcs: &BTreeMap<Vec<String>, String>) -> Graph {
    let modules: BTreeSet<Vec<String>> = srcs.keys().cloned().collect();
    // Names the crate root re-exports: `pub use error::{Error, ...}` -> "Error" -> error.
    let mut root_exports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(lib) = srcs.get(&Vec::new()) {
        for p in named_paths(&strip(lib)) {
            if let Some(name) = p.last() {
                if let Some(m) = deepest_module(&modules, &p) {
                    if !m.is_empty() {
                        root_exports.insert(name.clone(), m);
                    }
                }
            }
        }
    }
    let mut g = Graph::new();
    for (m, text) in srcs {
        let from = node_name(m);
        let targets = g.entry(from.clone()).or_default();
        for p in named_paths(&strip(text)) {
            let Some(first) = p.first() else { continue };
            let abs: Vec<String> = match first.as_str() {
                "crate" => p[1..].to_vec(),
                "super" => {
                    let mut base = m.clone();
                    let mut rest = &p[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    base
                }
                "self" => m.iter().chain(&p[1..]).cloned().collect(),
                // 2018 paths relative to this module: `use detect::x` where `detect` is a
                // child of this module; anything else is another crate.
                other => {
                    let mut child = m.clone();
                    child.push(other.to_string());
                    if !modules.contains(&child) {
                        continue;
                    }
                    m.iter().chain(&p).cloned().collect()
                }
            };
            let Some(mut to) = deepest_module(&modules, &abs) else {
                continue;
            };
            if to.is_empty() {
                match abs.first().and_then(|n| root_exports.get(n)) {
                    Some(t) => to = t.clone(),
                    None => continue,
                }
            }
            // A module and its own submodules: structure, not a peer dependency.
            if to.starts_with(m) {
                continue;
            }
            targets.insert(node_name(&to));
        }
    }
    g
}

fn deepest_module(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Strongly connected components with more than one node (Tarjan), each sorted.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on_stack: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let g = s.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

fn core_graph() -> Graph {
    import_graph(&sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")))
}

fn describe(g: &Graph, comp: &[String]) -> String {
    let mut lines = Vec::new();
    for a in comp {
        for b in g.get(a).into_iter().flatten().filter(|b| comp.contains(b)) {
            lines.push(format!("  {a} -> {b}"));
        }
    }
    lines.join("\n")
}

// ----- the guards -----------------------------------------------------------------------

#[test]
fn no_import_circles() {
    let g = core_graph();
    let allowed: Vec<Vec<String>> = ALLOWED_CYCLES
        .iter()
        .map(|c| {
            let mut v: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        })
        .collect();
    let bad: Vec<String> = cycles(&g)
        .into_iter()
        .filter(|c| !allowed.contains(c))
        .map(|c| format!("{}:\n{}", c.join(" <-> "), describe(&g, &c)))
        .collect();
    assert!(
        bad.is_empty(),
        "import circles in crate/core/src (a shared helper belongs in a module of its own):\n{}",
        bad.join("\n")
    );
}

#[test]
fn nothing_outside_convert_imports_it() {
    let g = core_graph();
    let bad: Vec<String> = g
        .iter()
        .filter(|(from, _)| *from != "convert" && !from.starts_with("convert/"))
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| *t == "convert" || t.starts_with("convert/"))
                .map(move |t| format!("{from} -> {t}"))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "convert/ is the application layer; these import it: {bad:?}"
    );
}

/// The graph really is the crate's: the edges this guard relies on are seen.
#[test]
fn the_graph_sees_real_imports() {
    let g = core_graph();
    let has = |a: &str, b: &str| g.get(a).is_some_and(|t| t.contains(b));
    assert!(g.len() > 30, "only {} modules found", g.len());
    assert!(
        has("container/detect", "container/legacy"),
        "super::{{legacy, ..}}"
    );
    assert!(
        has("container/detect", "tensor"),
        "inline crate::tensor::validate_graph"
    );
    assert!(has("safetensors", "graph"), "crate::graph::mapping_items");
    assert!(
        has("convert/write", "safetensors"),
        "use crate::safetensors as st"
    );
    assert!(has("convert/write", "error"), "use crate::error::{{..}}");
    assert!(
        has("convert/job", "convert/write"),
        "use super::write::{{..}}"
    );
    assert!(
        !has("container", "container/detect"),
        "parent -> child edges are structure"
    );
}

/// The detector on hand-made graphs and sources: it finds what it must, and only that.
#[test]
fn the_detector_finds_circles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    assert_eq!(
        cycles(&graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("d", "a"),
            ("d", "e"),
            ("e", "d")
        ])),
        vec![vec!["a", "b", "c"], vec!["d", "e"]]
    );

    // From source text: a sibling circle through `super::`, one through an inline
    // `crate::` path, a root re-export, and the edges that do not count.
    let src = |files: &[(&str, &str)]| -> BTreeMap<Vec<String>, String> {
        files
            .iter()
            .map(|(p, t)| (module_of(Path::new(p)), t.to_string()))
            .collect()
    };
    let g = import_graph(&src(&[
        ("lib.rs", "pub mod c; pub mod e; pub mod v;\npub use e::{Error, Result};"),
        ("c/mod.rs", "pub mod d; pub mod l;\nuse crate::Error;\npub struct Info;\nfn f() { d::load() }"),
        ("c/d.rs", "use super::{l, Info};\nfn g() -> crate::Result<()> { crate::bail!(X, \"crate::v::x\") }"),
        ("c/l.rs", "// use crate::v;\nfn h() { let _ = crate::c::d::helper(); }\n#[cfg(test)]\nmod tests { use crate::v::Value; }"),
        ("e.rs", "macro_rules! bail { () => { $crate::e::Error } }"),
        ("v.rs", "pub struct Value;"),
    ]));
    let edges = |n: &str| {
        g.get(n)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        edges("c"),
        vec!["e"],
        "parent -> child left out; crate::Error -> e"
    );
    assert_eq!(
        edges("c/d"),
        vec!["c", "c/l", "e"],
        "no edge from a string or a macro"
    );
    assert_eq!(
        edges("c/l"),
        vec!["c/d"],
        "no edge from a comment or a test module"
    );
    assert_eq!(cycles(&g), vec![vec!["c/d", "c/l"]]);
}
