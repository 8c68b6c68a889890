//! The layout is the data flow (docs/ARCHITECTURE.md): each stage folder may use the stages
//! above it and never one below, and no module of the library imports one that imports it back.
//! Read from the source itself: every `crate::` path of every file (its tests left out), so a new
//! back-arrow fails here with the file and the path that made it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

#[path = "common/source.rs"]
mod source;
use source::{code, crate_paths, rust_files};

/// The stages, in the order data flows through them.
const STAGES: &[&str] = &[
    "kernel", "probe", "stream", "resolve", "enforce", "agent", "export", "session", "cmd",
];

/// Files larger than this are split by job (the redesign's bound).
const MAX_LINES: usize = 800;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a file of this crate's `src` is.
fn module_of(file: &Path) -> Vec<String> {
    source::module_of(&src(), file)
}

struct Graph {
    modules: BTreeSet<Vec<String>>,
    /// module -> (module it uses, the path that says so)
    edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut modules = BTreeSet::new();
    for f in &files {
        modules.insert(module_of(f));
    }
    let mut edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    // A module uses the public children it declares (its `pub mod x;` and the `x::` paths of
    // its body); a child that uses its parent's own items back closes a cycle. A private child
    // (`mod x;`) is a part of its parent (an impl split by duty), not a module of its own.
    let mut private: BTreeSet<Vec<String>> = BTreeSet::new();
    for f in &files {
        let m = module_of(f);
        for line in fs::read_to_string(f).unwrap().lines() {
            if let Some(name) = line
                .trim()
                .strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'))
            {
                let mut child = m.clone();
                child.push(name.to_string());
                private.insert(child);
            }
        }
    }
    for m in &modules {
        if m.len() > 1 && !private.contains(m) {
            let parent = m[..m.len() - 1].to_vec();
            if modules.contains(&parent) {
                edges
                    .entry(parent)
                    .or_default()
                    .insert(m.clone(), format!("mod {}", m[m.len() - 1]));
            }
        }
    }
    for f in &files {
        let m = module_of(f);
        if m.is_empty()
            || m.last()
                .is_some_and(|l| l == "tests" || l == "lib" || l == "main")
        {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        for p in crate_paths(code(&text)) {
            // The longest prefix that is a module.
            let target = (1..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|prefix| modules.contains(prefix));
            // A private part using its parent is the parent using itself.
            let part_of = |a: &Vec<String>, b: &Vec<String>| {
                private.contains(a) && a.starts_with(b) && a.len() == b.len() + 1
            };
            if let Some(t) = target
                && t != m
                && !part_of(&m, &t)
            {
                edges
                    .entry(m.clone())
                    .or_default()
                    .entry(t)
                    .or_insert_with(|| format!("crate::{}", p.join("::")));
            }
        }
    }
    Graph { modules, edges }
}

#[test]
fn stages_only_use_the_stages_above_them() {
    let g = graph();
    let rank = |m: &[String]| STAGES.iter().position(|s| *s == m[0]);
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        for (to, path) in tos {
            match (rank(from), rank(to)) {
                (Some(a), Some(b)) if b > a => wrong.push(format!(
                    "{} ({}) uses {path} ({}, a later stage)",
                    from.join("::"),
                    from[0],
                    to[0]
                )),
                (None, _) | (_, None) => wrong.push(format!(
                    "{} -> {}: a module outside the stages {STAGES:?}",
                    from.join("::"),
                    to.join("::")
                )),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "back-arrows:\n{}", wrong.join("\n"));
    // The test sees the real graph: the agent uses enforcement, the command line uses the agent.
    assert!(
        g.edges[&vec!["agent".to_string()]]
            .keys()
            .any(|t| t[0] == "enforce")
    );
    assert!(g.edges.keys().any(|m| m[0] == "cmd"));
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    // Depth-first search for a cycle, reporting the first one found with its paths.
    fn visit(
        g: &Graph,
        m: &Vec<String>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.clone());
            return Some(cycle);
        }
        if !done.insert(m.clone()) {
            return None;
        }
        stack.push(m.clone());
        for to in g
            .edges
            .get(m)
            .map(|e| e.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(c) = visit(g, to, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in &g.modules {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(&g, m, &mut stack, &mut done) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} uses {}", w[0].join("::"), g.edges[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle:\n{}", steps.join("\n"));
        }
    }
}

#[test]
fn the_use_tree_reader_expands_groups() {
    let p = crate_paths(
        "use crate::{ agent::{Agent, journal::{self, Journal},}, stream::Listener as L, };\n\
         fn f() { crate::probe::open::Probes::open(); }",
    );
    let p: Vec<String> = p.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        p,
        [
            "agent::Agent",
            "agent::journal",
            "agent::journal::Journal",
            "stream::Listener",
            "probe::open::Probes::open"
        ]
    );
}

#[test]
fn no_source_file_is_longer_than_the_bound() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for dir in [
        "notify-model/src",
        "notify-common/src",
        "notify-ebpf/src",
        "xtask/src",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by job (at most {MAX_LINES} lines): {long:?}"
    );
}
