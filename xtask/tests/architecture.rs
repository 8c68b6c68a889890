//! xtask's layout: no module imports one that imports it back (a parent uses the children it
//! declares, so a child using its parent's items closes a cycle), no file over 800 lines, and
//! no function of the VM lab's checks over 150 lines. Read from the source itself: every
//! `crate::` path of every file (its tests left out), so a new back-arrow fails here with the
//! file and the path that made it. (The source reader is notify-user/tests/common/source.rs.)

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

#[path = "../../notify-user/tests/common/source.rs"]
mod source;
use source::{code, crate_paths, rust_files};

const MAX_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a file of this crate's `src` is.
fn module_of(file: &Path) -> Vec<String> {
    source::module_of(&src(), file)
}

/// module -> (module it uses, the path that says so)
type Edges = BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>;

/// Modules that are tests themselves: declared `#[cfg(test)] mod x;`.
fn test_modules(files: &[PathBuf]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for w in lines.windows(2) {
            if w[0] == "#[cfg(test)]"
                && let Some(name) = w[1].strip_prefix("mod ").and_then(|r| r.strip_suffix(';'))
            {
                let mut m = module_of(f);
                if m == ["main"] {
                    m.clear();
                }
                m.push(name.to_string());
                out.insert(m);
            }
        }
    }
    out
}

fn graph() -> (BTreeSet<Vec<String>>, Edges) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_modules(&files);
    files.retain(|f| !tests.contains(&module_of(f)));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges = Edges::new();
    for m in &modules {
        if m.len() > 1 && modules.contains(&m[..m.len() - 1]) {
            edges
                .entry(m[..m.len() - 1].to_vec())
                .or_default()
                .insert(m.clone(), format!("mod {}", m[m.len() - 1]));
        }
    }
    for f in &files {
        let m = module_of(f);
        if m == ["main"] {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        for p in crate_paths(code(&text)) {
            // The longest prefix that is a module.
            let target = (1..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|prefix| modules.contains(prefix));
            if let Some(t) = target
                && t != m
            {
                edges
                    .entry(m.clone())
                    .or_default()
                    .entry(t)
                    .or_insert_with(|| format!("crate::{}", p.join("::")));
            }
        }
    }
    (modules, edges)
}

fn cycle(
    edges: &Edges,
    m: &Vec<String>,
    stack: &mut Vec<Vec<String>>,
    done: &mut BTreeSet<Vec<String>>,
) -> Option<Vec<Vec<String>>> {
    if let Some(i) = stack.iter().position(|s| s == m) {
        let mut c = stack[i..].to_vec();
        c.push(m.clone());
        return Some(c);
    }
    if !done.insert(m.clone()) {
        return None;
    }
    stack.push(m.clone());
    for to in edges
        .get(m)
        .map(|e| e.keys().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if let Some(c) = cycle(edges, to, stack, done) {
            return Some(c);
        }
    }
    stack.pop();
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let (modules, edges) = graph();
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(c) = cycle(&edges, m, &mut Vec::new(), &mut done) {
            let steps: Vec<String> = c
                .windows(2)
                .map(|w| format!("{} uses {}", w[0].join("::"), edges[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle:\n{}", steps.join("\n"));
        }
    }
    // The test sees the real graph: the lab uses the checks, a scenario uses the shared pieces.
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    assert!(edges[&m("lab")].contains_key(&m("checks")));
    assert!(edges[&m("checks::replay")].contains_key(&m("checks::outcome")));
}

#[test]
fn the_use_tree_reader_expands_groups() {
    let p = crate_paths(
        "use crate::{ checks::{Evidence, steps::{self, Step},}, vm::Boot as B, };\n\
         // crate::not::this\n\
         fn f() { crate::host_report::with_host_report(); }",
    );
    let p: Vec<String> = p.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        p,
        [
            "checks::Evidence",
            "checks::steps",
            "checks::steps::Step",
            "vm::Boot",
            "host_report::with_host_report"
        ]
    );
}

#[test]
fn no_source_file_is_longer_than_the_bound() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
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

/// (name, lines) of every `fn` of a file: from its line to the closing brace at its indent.
fn functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let t = t.strip_prefix("pub ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| l.trim_end() == close) {
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn no_check_function_is_longer_than_the_bound() {
    let mut files = Vec::new();
    rust_files(&src().join("checks"), &mut files);
    files.push(src().join("host_report.rs"));
    let mut long = Vec::new();
    for f in &files {
        for (name, n) in functions(&fs::read_to_string(f).unwrap()) {
            if n > MAX_FN_LINES {
                long.push(format!("{}: fn {name} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these (at most {MAX_FN_LINES} lines): {long:?}"
    );
    assert!(functions("fn a() {\n    x;\n}\n") == [("a".to_string(), 3)]);
}
