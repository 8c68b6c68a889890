//! Reading a crate's own source, for the architecture tests of notify-user and of xtask (which
//! includes this file by path): its files, the module each one is, its code without its unit
//! tests, and every `crate::` path that code uses.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Every `.rs` file under `dir`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file of `src` is: `cmd/agent/fleet.rs` -> ["cmd", "agent", "fleet"];
/// `probe/mod.rs` -> ["probe"].
pub fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The file's code without its unit tests (everything from the first `#[cfg(test)]`; files
/// that are test modules themselves are skipped by the callers).
pub fn code(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Every path a `use crate::…;` tree names, expanded ("a::{b, c::d}" -> a::b, a::c::d).
pub fn use_paths(tree: &str) -> Vec<Vec<String>> {
    fn parse(s: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        let mut ident = String::new();
        while *i < s.len() {
            let c = s[*i];
            match c {
                '{' => {
                    *i += 1;
                    if !ident.is_empty() {
                        path.push(std::mem::take(&mut ident));
                    }
                    loop {
                        parse(s, i, &path, out);
                        if *i >= s.len() || s[*i] == '}' {
                            *i += 1;
                            break;
                        }
                        *i += 1; // ','
                    }
                    return;
                }
                ':' => {
                    if !ident.is_empty() {
                        path.push(std::mem::take(&mut ident));
                    }
                    *i += 1;
                }
                ',' | '}' => break,
                c if c.is_alphanumeric() || c == '_' => {
                    ident.push(c);
                    *i += 1;
                }
                ' ' if ident == "as" || path.last().is_some_and(|_| ident.is_empty()) => {
                    *i += 1;
                }
                _ => {
                    // " as Alias": the rest of this leaf is a rename.
                    if c == ' ' && !ident.is_empty() {
                        path.push(std::mem::take(&mut ident));
                        while *i < s.len() && s[*i] != ',' && s[*i] != '}' {
                            *i += 1;
                        }
                        out.push(path);
                        return;
                    }
                    *i += 1;
                }
            }
        }
        // `self` names the module itself; an empty leaf (a trailing comma) names nothing.
        let is_self = ident == "self";
        if !ident.is_empty() && !is_self {
            path.push(ident);
        }
        if path.len() > prefix.len() || is_self {
            out.push(path);
        }
    }
    let chars: Vec<char> = tree
        .chars()
        .filter(|c| !c.is_whitespace() || *c == ' ')
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    parse(&chars, &mut i, &[], &mut out);
    out
}

/// The `crate::` paths a file's code uses: `use` trees and inline paths (doc comments left out).
pub fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if rest[..i].trim_end().ends_with("use") {
            let end = after.find(';').unwrap_or(after.len());
            out.extend(use_paths(&after[..end]));
            rest = &after[end..];
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            out.push(
                after[..end]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
            rest = &after[end..];
        }
    }
    out
}
