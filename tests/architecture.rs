//! The dependency rules of the workspace, checked on its sources (`cargo test --test architecture`):
//!
//! - the crates depend one way: `models` ← `actors` ← `nats` ← the service ← the load generator (their
//!   `Cargo.toml`s);
//! - inside each crate, no module imports one that imports it back, at any distance (a circle), counting
//!   every `crate::…` path of a file — `use` lines and paths written inline alike — against the modules
//!   the crate's files define; neither between files nor between top-level modules (`auth` for everything
//!   in `src/auth/`);
//! - the service's top-level modules stand in the layers of [`SERVICE_LAYERS`], and every arrow between them
//!   points down: a repository never reaches for the HTTP layer, the HTTP layer is only reached from the
//!   wiring. A new top-level module fails the test until it is given its layer.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Each crate of the workspace and the workspace crates it may depend on.
const CRATES: [(&str, &[&str]); 5] = [
    ("models", &[]),
    ("actors", &["pdscore-models"]),
    ("nats", &["pdscore-models", "pdscore-actors"]),
    (".", &["pdscore-models", "pdscore-actors", "pdscore-nats"]),
    // the load generator: above the service (`pdscore`, which this check does not name)
    ("benches/load", &["pdscore-models", "pdscore-actors", "pdscore-nats"]),
];

/// The service's top-level modules, highest layer first. A module names modules of lower layers only (not
/// of its own).
const SERVICE_LAYERS: &[&[&str]] = &[
    // the command line, and the wiring it starts
    &["cli"],
    &["startup"],
    // the HTTP API: thin handlers, the request state, the extractors
    &["http"],
    // use cases: bulk jobs, dependency checks, accounts, and the pipeline's adapters (its store and directory)
    &["bulk", "health"],
    &["accounts", "pipeline", "outcomes", "validation", "deployment"],
    // the alert stage after the commit: publisher, outbox, the live feed for SSE
    &["alerts"],
    // the repositories
    &["db"],
    // identities, roles, scopes, tokens and sessions (no database); what the instances share
    &["auth", "fleet"],
    // clients of Redis and NATS
    &["cache", "messaging"],
    // values and events every layer uses
    &["domain", "telemetry"],
    &["configuration"],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module path of every `.rs` file below `src` (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; the crate
/// root is ``).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the source directory reads") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).expect("below src").with_extension("");
                let mut parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                // Binaries are crates of their own.
                if parts.first().is_some_and(|p| p == "bin") {
                    continue;
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The text without comments, string literals and `#[cfg(test)]` modules (a test may reach anywhere).
fn code(text: &str) -> String {
    let without_tests = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(without_tests.len());
    for line in without_tests.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut in_string = false;
        let mut previous = ' ';
        for c in line.chars() {
            if c == '"' && previous != '\\' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
            previous = c;
        }
        out.push('\n');
    }
    out
}

/// Every path of the crate the code of `module` names, from the crate's root: inline paths and use trees
/// (`crate::{a, b::{c}}`), below `crate::`, `super::` (repeated or not) and `self::`.
fn crate_paths(code: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    fn ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }
    /// Expands a use tree (`a::{b, c::{d}}`) below `prefix`.
    fn expand(prefix: &[String], tree: &str, out: &mut BTreeSet<Vec<String>>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        match tree.find('{') {
            Some(open) => {
                let head: Vec<String> = tree[..open]
                    .split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
                let prefix: Vec<String> = prefix.iter().cloned().chain(head).collect();
                for item in split_top(inner) {
                    expand(&prefix, item, out);
                }
            }
            None => {
                let name = tree.split(" as ").next().unwrap_or(tree);
                let path: Vec<String> = prefix
                    .iter()
                    .cloned()
                    .chain(
                        name.split("::")
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    )
                    .collect();
                out.insert(path);
            }
        }
    }
    /// Splits a use tree's list at its top-level commas.
    fn split_top(list: &str) -> Vec<&str> {
        let (mut depth, mut start, mut items) = (0, 0, Vec::new());
        for (i, c) in list.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&list[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&list[start..]);
        items
    }

    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = ["crate::", "super::", "self::"]
        .iter()
        .filter_map(|keyword| rest.find(keyword))
        .min()
    {
        let before = rest[..at].chars().next_back();
        rest = &rest[at..];
        if before.is_some_and(|c| ident(c) || c == ':') {
            rest = &rest[rest.find("::").map_or(rest.len(), |i| i + 2)..];
            continue;
        }
        let base: Vec<String> = if let Some(after) = rest.strip_prefix("crate::") {
            rest = after;
            Vec::new()
        } else if let Some(after) = rest.strip_prefix("self::") {
            rest = after;
            module.to_vec()
        } else {
            let mut up = 0;
            while let Some(after) = rest.strip_prefix("super::") {
                rest = after;
                up += 1;
            }
            module[..module.len().saturating_sub(up)].to_vec()
        };
        if rest.starts_with('{') {
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i + 1);
            expand(&base, &rest[..end], &mut out);
            rest = &rest[end..];
        } else {
            let end = rest.find(|c: char| !(ident(c) || c == ':')).unwrap_or(rest.len());
            let path: Vec<String> = base
                .iter()
                .cloned()
                .chain(rest[..end].split("::").filter(|s| !s.is_empty()).map(String::from))
                .collect();
            out.insert(path);
            rest = &rest[end..];
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`: each module and the modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("a source file reads");
        let mut targets = BTreeSet::new();
        let path_of_module: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        for path in crate_paths(&code(&text), &path_of_module) {
            // The longest prefix that is a module of the crate (an item's module, or the module itself).
            let target = (1..=path.len())
                .rev()
                .map(|k| path[..k].join("::"))
                .find(|candidate| modules.contains_key(candidate));
            if let Some(target) = target
                && target != *module
                && !module.starts_with(&format!("{target}::"))
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// `graph` between top-level modules: an arrow between two of their modules is an arrow between them.
fn top_level(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_owned();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph {
        let entry = out.entry(top(from)).or_default();
        entry.extend(
            targets
                .iter()
                .map(|t| top(t))
                .filter(|t| *t != top(from) && !t.is_empty()),
        );
    }
    out.retain(|m, _| !m.is_empty());
    out
}

/// The circles of `graph`: its strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(v, &mut state);
        }
    }
    state.found.sort();
    state.found
}

#[test]
fn the_crates_depend_one_way() {
    for (dir, allowed) in CRATES {
        let manifest = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).expect("a manifest reads");
        let used: BTreeSet<&str> = manifest
            .lines()
            .filter_map(|l| l.split_once(['.', ' ', '=']).map(|(name, _)| name.trim()))
            .filter(|name| name.starts_with("pdscore-"))
            .collect();
        for name in &used {
            assert!(allowed.contains(name), "{dir} depends on {name}");
        }
    }
}

#[test]
fn no_crate_has_an_import_circle() {
    for (dir, _) in CRATES {
        let graph = graph(&root().join(dir).join("src"));
        let (files, tops) = (circles(&graph), circles(&top_level(&graph)));
        assert!(
            files.is_empty() && tops.is_empty(),
            "{dir}: import circles between files {files:?}, between top-level modules {tops:?}"
        );
    }
}

#[test]
fn every_arrow_of_the_service_points_down() {
    let layer_of = |module: &str| SERVICE_LAYERS.iter().position(|layer| layer.contains(&module));
    let tops = top_level(&graph(&root().join("src")));
    let mut wrong = Vec::new();
    for (from, targets) in &tops {
        let from_layer = layer_of(from).unwrap_or_else(|| panic!("src/{from} has no layer in SERVICE_LAYERS"));
        for to in targets {
            let to_layer = layer_of(to).unwrap_or_else(|| panic!("src/{to} has no layer in SERVICE_LAYERS"));
            if to_layer <= from_layer {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows that do not point down: {wrong:?}");
    for module in SERVICE_LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            tops.contains_key(*module),
            "SERVICE_LAYERS names {module}, which src/ does not have"
        );
    }
}

/// The checker sees a circle where there is one: written inline, through a use tree, at any distance.
#[test]
fn the_checker_finds_circles() {
    let dir = std::env::temp_dir().join(format!("pdscore-architecture-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::{b::{x::Y, z}, c};\n").unwrap();
    std::fs::write(dir.join("b/mod.rs"), "pub mod x;\n").unwrap();
    std::fs::write(dir.join("b/x.rs"), "use super::super::c::T;\nfn f() -> T { todo!() }\n").unwrap();
    std::fs::write(dir.join("c.rs"), "// crate::a is only a comment\nuse crate::a::Q;\n").unwrap();
    let found = circles(&graph(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, vec![vec!["a".to_owned(), "b::x".to_owned(), "c".to_owned()]]);
}
