//! docs/EVENTS.md's "Fields by kind" table, parsed, and a validator for output lines: the doc
//! is the schema, so doc and tests cannot drift apart.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;

pub const EVENTS_MD: &str = include_str!("../../../docs/EVENTS.md");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: String,
    pub nullable: bool,
    pub optional: bool,
}

#[derive(Clone, Debug)]
pub struct Kind {
    /// Has the event header (seq, ktime_ns, cpu, pid, tid, comm).
    pub header: bool,
    pub fields: Vec<Field>,
}

pub const HEADER: &[(&str, &str)] = &[
    ("seq", "u64"),
    ("ktime_ns", "u64"),
    ("cpu", "u32"),
    ("pid", "u32"),
    ("tid", "u32"),
    ("comm", "string"),
];

/// On every line, event or record: the wall-clock time (RFC 3339, UTC, nanoseconds) and the
/// host name.
pub const STAMP: &[(&str, &str)] = &[("time", "time"), ("host", "string")];

const TYPES: &[&str] = &[
    "u32", "u64", "i32", "i64", "string", "bool", "hex", "dev", "object", "array",
];

fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// kind -> schema, from the table under "## Fields by kind".
pub fn parse(md: &str) -> BTreeMap<String, Kind> {
    let section = md
        .split("\n## Fields by kind\n")
        .nth(1)
        .expect("docs/EVENTS.md has a \"## Fields by kind\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "bad row in Fields by kind: {line}");
        let kind = ticked(cells[0]).pop().expect("kind in backticks");
        let header = match cells[1] {
            "event" => true,
            "record" => false,
            o => panic!("{kind}: header must be event or record, not {o:?}"),
        };
        let mut fields = Vec::new();
        for tok in ticked(cells[2]) {
            let (name, ty) = tok
                .split_once(':')
                .unwrap_or_else(|| panic!("{kind}: field {tok:?} is not name:type"));
            let (name, optional) = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
                Some(n) => (n, true),
                None => (name, false),
            };
            let (ty, nullable) = match ty.strip_suffix('?') {
                Some(t) => (t, true),
                None => (ty, false),
            };
            assert!(TYPES.contains(&ty), "{kind}.{name}: unknown type {ty:?}");
            fields.push(Field {
                name: name.into(),
                ty: ty.into(),
                nullable,
                optional,
            });
        }
        assert!(
            out.insert(kind.clone(), Kind { header, fields }).is_none(),
            "{kind} listed twice"
        );
    }
    assert!(
        out.len() > 20,
        "Fields by kind table looks truncated: {}",
        out.len()
    );
    out
}

fn type_ok(v: &Value, ty: &str) -> bool {
    match ty {
        "u32" => v.as_u64().is_some_and(|n| n <= u32::MAX as u64),
        "u64" => v.as_u64().is_some(),
        "i32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "i64" => v.as_i64().is_some(),
        "string" => v.is_string(),
        "bool" => v.is_boolean(),
        "hex" => v.as_str().is_some_and(|s| {
            s.strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        }),
        "dev" => v.as_str().is_some_and(|s| {
            s.split_once(':')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        }),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "time" => v.as_str().is_some_and(is_rfc3339_ns),
        _ => false,
    }
}

/// "2026-12-01T15:54:50.123456789Z": what notify writes (UTC, nine digits of fraction).
pub fn is_rfc3339_ns(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 30
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..29)
        && b[29] == b'Z'
}

/// Checks one output line against the schema; Err says what is wrong.
pub fn validate(schema: &BTreeMap<String, Kind>, line: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("not an object: {line}"))?;
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string `kind`: {line}"))?;
    let k = schema
        .get(kind)
        .ok_or_else(|| format!("kind {kind:?} is not in docs/EVENTS.md: {line}"))?;
    let mut allowed: Vec<&str> = vec!["kind"];
    for (name, ty) in STAMP {
        let f = obj
            .get(*name)
            .ok_or_else(|| format!("{kind}: `{name}` missing: {line}"))?;
        if !type_ok(f, ty) {
            return Err(format!("{kind}: `{name}` is not {ty}: {line}"));
        }
        allowed.push(name);
    }
    if k.header {
        for (name, ty) in HEADER {
            let f = obj
                .get(*name)
                .ok_or_else(|| format!("{kind}: header field `{name}` missing: {line}"))?;
            if !type_ok(f, ty) {
                return Err(format!("{kind}: header `{name}` is not {ty}: {line}"));
            }
            allowed.push(name);
        }
    }
    for f in &k.fields {
        allowed.push(&f.name);
        match obj.get(&f.name) {
            None if f.optional => {}
            None => return Err(format!("{kind}: field `{}` missing: {line}", f.name)),
            Some(Value::Null) if f.nullable => {}
            Some(x) if type_ok(x, &f.ty) => {}
            Some(x) => {
                return Err(format!(
                    "{kind}: field `{}` = {x} is not {}{}: {line}",
                    f.name,
                    f.ty,
                    if f.nullable { " or null" } else { "" }
                ));
            }
        }
    }
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{kind}: field `{extra}` is not documented: {line}"));
    }
    Ok(kind.to_string())
}

/// The JSON Schema (draft 2020-12) of every line, generated from the same table: the file
/// docs/events.schema.json must equal this (a test compares them), so the published schema is
/// the one the tests check.
pub fn json_schema(schema: &BTreeMap<String, Kind>) -> Value {
    use serde_json::{Map, json};
    fn ty(t: &str, nullable: bool) -> Value {
        let mut v = match t {
            "u32" => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
            "u64" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
            "i32" => json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
            "i64" => json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
            "string" => json!({"type": "string"}),
            "bool" => json!({"type": "boolean"}),
            "hex" => json!({"type": "string", "pattern": "^0x[0-9a-fA-F]+$"}),
            "dev" => json!({"type": "string", "pattern": "^[0-9]+:[0-9]+$"}),
            "object" => json!({"type": "object"}),
            "array" => json!({"type": "array"}),
            "time" => json!({
                "type": "string",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z$"
            }),
            other => panic!("no JSON Schema type for {other}"),
        };
        if nullable {
            let base = v["type"].clone();
            v["type"] = json!([base, "null"]);
        }
        v
    }
    let mut defs = Map::new();
    let mut all_of = Vec::new();
    for (kind, k) in schema {
        let mut props = Map::new();
        let mut required = vec![json!("kind")];
        props.insert("kind".into(), json!({"const": kind}));
        let mut fixed: Vec<(&str, &str)> = STAMP.to_vec();
        if k.header {
            fixed.extend_from_slice(HEADER);
        }
        for (name, t) in fixed {
            props.insert(name.into(), ty(t, false));
            required.push(json!(name));
        }
        for f in &k.fields {
            props.insert(f.name.clone(), ty(&f.ty, f.nullable));
            if !f.optional {
                required.push(json!(f.name));
            }
        }
        defs.insert(
            kind.clone(),
            json!({
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": false,
            }),
        );
        all_of.push(json!({
            "if": {"properties": {"kind": {"const": kind}}},
            "then": {"$ref": format!("#/$defs/{kind}")},
        }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "notify JSON lines (notify trace -o json, notify agent -o json)",
        "description": "Generated from docs/EVENTS.md's \"Fields by kind\" table by \
                        notify-user/tests/common/schema.rs; do not edit by hand.",
        "type": "object",
        "required": ["time", "host", "kind"],
        "properties": {"kind": {"enum": schema.keys().collect::<Vec<_>>()}},
        "allOf": all_of,
        "$defs": defs,
    })
}
