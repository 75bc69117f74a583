//! The dependency rule of `src/lib.rs`, checked: top-level modules import
//! only from lower layers, and no two modules import each other, directly or
//! through others.
//!
//! Every file under `src/` is a module. Each `crate::`, `super::` and `self::`
//! path in its code (tests and comments left out) is an edge to the module it
//! names. Edges between siblings (children of one parent) form a graph per
//! parent, and that graph must have no cycle. A module may use its own
//! children and its ancestors' items (`super::Error`) freely: that is
//! nesting, not a cycle between layers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules, lowest first, as `src/lib.rs` states the
/// rule: a module imports only from layers below its own.
const LAYERS: &[&[&str]] = &[
    &[
        "contract",
        "checkpoint",
        "failpoint",
        "aws",
        "retry",
        "blocking",
    ],
    &["event", "catalog"],
    &["table"],
    &["telemetry"],
    &["supervise", "config"],
    &["source"],
    &["pipeline"],
    &["report", "generate"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!(
                "src/{module}: a new top-level module needs a place in LAYERS (and in src/lib.rs)"
            )
        })
}

/// A module path, e.g. `["table", "schema"]`; the crate root is `[]`.
type Module = Vec<String>;

#[test]
fn no_module_imports_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<Module> = modules.iter().map(|(m, _)| m.clone()).collect();
    // parent -> (child -> children it depends on), with the places that say so.
    let mut graphs: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = without_tests_and_comments(&std::fs::read_to_string(file).unwrap());
        for target in paths_used(&code, module) {
            let target = longest_known(&target, &known);
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if shared == module.len() || shared == target.len() {
                continue; // an ancestor or a descendant
            }
            let parent = module[..shared].to_vec();
            graphs
                .entry(parent)
                .or_default()
                .entry(module[shared].clone())
                .or_default()
                .entry(target[shared].clone())
                .or_insert_with(|| {
                    format!(
                        "src/{} uses {}",
                        file.strip_prefix(&src).unwrap().display(),
                        target.join("::")
                    )
                });
        }
    }
    let mut upward = Vec::new();
    for (from, edges) in graphs.get(&Vec::new()).into_iter().flatten() {
        for (to, why) in edges {
            if layer(from) <= layer(to) {
                upward.push(format!(
                    "{from} (layer {}) -> {to} (layer {}): {why}",
                    layer(from),
                    layer(to)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point to a lower layer (see LAYERS):\n{}",
        upward.join("\n")
    );
    let mut cycles = Vec::new();
    for (parent, graph) in &graphs {
        for cycle in find_cycles(graph) {
            let prefix = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let mut why = Vec::new();
            for pair in cycle.windows(2) {
                why.push(format!("    {}", graph[&pair[0]][&pair[1]]));
            }
            cycles.push(format!(
                "{prefix}: {}\n{}",
                cycle.join(" -> "),
                why.join("\n")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "module import cycles:\n{}",
        cycles.join("\n")
    );
}

/// The crate docs' Layout section (in `src/lib.rs`) names every module of
/// the library, so a reader finds each one there.
#[test]
fn the_layout_section_names_every_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .skip_while(|l| l.trim() != "# Layout")
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<String> = modules(&src)
        .into_iter()
        .map(|(m, _)| m.join("::"))
        .filter(|m| !m.is_empty() && m != "cli" && !m.starts_with("cli::"))
        .filter(|m| !docs.contains(&format!("`{m}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules the Layout section of src/lib.rs does not name: {missing:?}"
    );
}

/// The check itself can fail: two siblings using each other are a cycle.
#[test]
fn a_cycle_between_siblings_is_found() {
    let mut graph = BTreeMap::new();
    let edge = |to: &str| BTreeMap::from([(to.to_string(), String::new())]);
    graph.insert("a".to_string(), edge("b"));
    graph.insert("b".to_string(), edge("c"));
    graph.insert("c".to_string(), edge("a"));
    assert_eq!(find_cycles(&graph), vec![vec!["a", "b", "c", "a"]]);
    graph.insert("c".to_string(), BTreeMap::new());
    assert!(find_cycles(&graph).is_empty());
    let code = "use crate::{event::{Row, decode}, table::schema::ids};\nuse super::super::x;";
    let mut used = paths_used(code, &["table".into(), "probe".into()]);
    used.sort();
    assert_eq!(
        used,
        [
            vec!["event", "Row"],
            vec!["event", "decode"],
            vec!["table", "schema", "ids"],
            vec!["x"]
        ]
    );
}

/// Every `.rs` file under `src/` with its module path (`mod.rs` and
/// `lib.rs`/`main.rs` name their folder). `tests.rs` files are test code.
fn modules(src: &Path) -> Vec<(Module, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("tests") => continue,
                Some("mod") => drop(module.pop()),
                Some("lib" | "main") if module.len() == 1 => module.clear(),
                _ => {}
            }
            out.push((module, path));
        }
    }
    out.sort();
    out
}

/// The code without `#[cfg(test)]` items and comments.
fn without_tests_and_comments(code: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in code.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        if skip_depth.is_none() && trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if pending_test {
            pending_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            }
            depth = depth + opens - closes.min(depth + opens);
            continue;
        }
        depth = (depth + opens).saturating_sub(closes);
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Absolute module paths named by `crate::…`, `super::…` and `self::…` in
/// `code`, which belongs to `module`. Brace groups expand to each item.
fn paths_used(code: &str, module: &[String]) -> Vec<Module> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        let rest = &bytes[i..];
        let mut base: Option<Module> = None;
        let mut len = 0;
        if at_word && rest.starts_with(b"crate::") {
            base = Some(Vec::new());
            len = "crate::".len();
        } else if at_word && rest.starts_with(b"self::") {
            base = Some(module.to_vec());
            len = "self::".len();
        } else if at_word && rest.starts_with(b"super::") {
            let mut m = module.to_vec();
            while bytes[i + len..].starts_with(b"super::") {
                m.pop();
                len += "super::".len();
            }
            base = Some(m);
        }
        match base {
            Some(base) => {
                let (paths, used) = parse_tree(&code[i + len..], base);
                out.extend(paths);
                i += len + used;
            }
            None => i += 1,
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` after a prefix; returns full paths and the bytes read.
fn parse_tree(code: &str, prefix: Module) -> (Vec<Module>, usize) {
    let mut path = prefix;
    let mut i = 0;
    let bytes = code.as_bytes();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            path.push(code[start..i].to_string());
        }
        let group = if code[i..].starts_with("::{") {
            Some(3)
        } else if i == start && code[i..].starts_with('{') {
            Some(1)
        } else {
            None
        };
        if let Some(skip) = group {
            i += skip;
            let mut out = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (out, i + 1);
                }
                let (paths, used) = parse_tree(&code[i..], path.clone());
                out.extend(paths);
                i += used.max(1);
                while i < bytes.len() && !matches!(bytes[i], b',' | b'}') {
                    i += 1;
                }
            }
        }
        if code[i..].starts_with("::") {
            i += 2;
            continue;
        }
        return (vec![path], i);
    }
}

/// The longest prefix of `path` that is a module (the rest names items).
fn longest_known(path: &[String], known: &BTreeSet<Module>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))
        .unwrap_or_default()
}

/// Each elementary cycle found by a depth-first search, once, as a list of
/// nodes that starts and ends with its smallest node.
fn find_cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    fn walk(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = path[at..].to_vec();
            let min = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| n.as_str())
                .map(|(i, _)| i)
                .unwrap();
            cycle.rotate_left(min);
            cycle.push(cycle[0].clone());
            found.insert(cycle);
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            walk(next, graph, path, found);
        }
        path.pop();
    }
    let mut found = BTreeSet::new();
    for node in graph.keys() {
        walk(node, graph, &mut Vec::new(), &mut found);
    }
    found.into_iter().collect()
}
