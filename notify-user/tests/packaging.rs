//! What `packaging/` ships for monitoring, checked against the agent itself:
//!
//! - every query of the Grafana dashboard (packaging/grafana/notify.json) and every expression
//!   and test series of the alert rules (packaging/prometheus/) names a family the agent
//!   exports, with labels that family has (`notify::export::metrics::families::FAMILIES`,
//!   which the metrics unit tests hold to what the registry renders);
//! - `promtool check rules` and `promtool test rules` pass (Debian's `prometheus` package,
//!   installed by `cargo xtask setup`);
//! - on a real scrape of the agent on this host: `promtool check metrics`, and the rules
//!   evaluated by `promtool test rules` on the scraped series fire exactly as the scraped
//!   values say (this host has no kprobes: required probes are missing here for real).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::TempDir;
use notify::export::metrics::families::FAMILIES;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// Sample names the agent exports -> their label names (the registry's family list, held to
/// what the registry renders by the metrics unit tests).
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = FAMILIES
        .iter()
        .map(|f| {
            let labels = f.labels.iter().map(|l| l.to_string()).collect();
            (f.sample.to_string(), labels)
        })
        .collect();
    // Prometheus's own, per target.
    out.insert("up".into(), BTreeSet::new());
    out
}

/// Every sample of a real scrape is of a listed family, with listed labels only.
fn scrape_is_of_listed_families(scrape: &str) {
    let ex = exported();
    for l in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sel = l.rsplit_once(' ').unwrap().0;
        let (name, labels) = sel.split_once('{').unwrap_or((sel, ""));
        let listed = ex
            .get(name)
            .unwrap_or_else(|| panic!("{name} is scraped but not in FAMILIES: {l}"));
        for p in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let k = p.split_once('=').unwrap().0;
            assert!(listed.contains(k), "label {k} of {name} is not listed: {l}");
        }
    }
}

/// Checks one PromQL expression: every metric name is exported, every label it matches on or
/// groups by belongs to one of its metrics (or is `job`/`instance`, added by the scrape).
fn check_expr(expr: &str, exported: &BTreeMap<String, BTreeSet<String>>) -> Result<(), String> {
    let mut names = Vec::new();
    let mut label_keys = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut last_word = String::new();
    while i < b.len() {
        let c = b[i] as char;
        if c == '"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1 + usize::from(b[i] == b'\\');
            }
            i += 1;
        } else if c == '{' || (c == '(' && matches!(last_word.as_str(), "by" | "without")) {
            let close = if c == '{' { '}' } else { ')' };
            let end = i + expr[i..]
                .find(close)
                .ok_or(format!("unclosed {c}: {expr}"))?;
            for m in expr[i + 1..end].split(',') {
                let key = m.split(['=', '!']).next().unwrap().trim();
                if !key.is_empty() {
                    label_keys.push(key.to_string());
                }
            }
            i = end + 1;
            last_word.clear();
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b"_:$".contains(&b[i]))
            {
                i += 1;
            }
            last_word = expr[start..i].to_string();
            if last_word.starts_with("notify_") || last_word == "up" {
                names.push(last_word.clone());
            }
        } else if c == '[' {
            // A range: `[5m]`, `[$__rate_interval]`.
            i += expr[i..].find(']').ok_or(format!("unclosed [: {expr}"))? + 1;
        } else {
            if !c.is_whitespace() {
                last_word.clear();
            }
            i += 1;
        }
    }
    // label_values(METRIC, LABEL): the label is the second argument.
    if let Some(args) = expr.strip_prefix("label_values(") {
        let l = args
            .trim_end_matches(')')
            .rsplit(',')
            .next()
            .unwrap()
            .trim();
        label_keys.push(l.to_string());
    }
    if names.is_empty() {
        return Err(format!("names no metric of the agent: {expr}"));
    }
    let mut allowed: BTreeSet<String> = ["job", "instance"].map(String::from).into();
    for n in &names {
        let ls = exported
            .get(n)
            .ok_or(format!("{n} is not a metric the agent exports: {expr}"))?;
        allowed.extend(ls.iter().cloned());
    }
    for k in &label_keys {
        if !allowed.contains(k) {
            return Err(format!(
                "label {k:?} is not a label of {names:?} (docs/AGENT.md): {expr}"
            ));
        }
    }
    Ok(())
}

/// Every `expr` (panel targets) and `query` (template variables) of a dashboard.
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query", serde_json::Value::String(s)) if s != "prometheus" => {
                        out.push(s.clone())
                    }
                    _ => dashboard_queries(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| dashboard_queries(x, out)),
        _ => {}
    }
}

/// The alert rules' expressions and their test file's series selectors.
fn rules_exprs() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["notify.rules.yml", "notify.rules.test.yml"] {
        let text = fs::read_to_string(repo("packaging/prometheus").join(f)).unwrap();
        for l in text.lines().map(str::trim) {
            if let Some(e) = l.strip_prefix("expr: ") {
                out.push(e.to_string());
            } else if let Some(s) = l.strip_prefix("- series: ") {
                out.push(s.trim_matches('\'').to_string());
            }
        }
    }
    out
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let path = repo("packaging/grafana/notify.json");
    let dash: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let mut qs = Vec::new();
    dashboard_queries(&dash, &mut qs);
    assert!(qs.len() >= 20, "only {} queries found: {qs:?}", qs.len());
    let ex = exported();
    let bad: Vec<String> = qs.iter().filter_map(|q| check_expr(q, &ex).err()).collect();
    assert!(bad.is_empty(), "{}:\n{}", path.display(), bad.join("\n"));
}

#[test]
fn alert_rules_name_exported_metrics() {
    let exprs = rules_exprs();
    assert!(exprs.len() >= 15, "{exprs:?}");
    let ex = exported();
    let bad: Vec<String> = exprs
        .iter()
        .filter_map(|q| check_expr(q, &ex).err())
        .collect();
    assert!(bad.is_empty(), "packaging/prometheus:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_refuses_a_missing_metric_or_label() {
    let ex = exported();
    for (q, says) in [
        (
            "increase(notify_notifications_premature_total[1h]) > 0",
            "not a metric",
        ),
        ("notify_replayed_total{dev=\"259:0\"}", "label \"dev\""),
        (
            "sum by (disk) (notify_notifications_total)",
            "label \"disk\"",
        ),
        ("vector(1)", "names no metric"),
    ] {
        let e = check_expr(q, &ex).expect_err(q);
        assert!(e.contains(says), "{q}: {e}");
    }
    check_expr(
        "sum by (instance, dev, verdict) (increase(notify_notifications_total{verdict=~\"p.*\"}[5m]))",
        &ex,
    )
    .unwrap();
}

fn promtool(args: &[&str], dir: &Path, stdin: Option<&str>) -> (i32, String) {
    let mut c = Command::new("promtool");
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| {
        panic!(
            "promtool: {e}: it comes with Debian's prometheus package (cargo xtask setup \
             installs it)"
        )
    });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = repo("packaging/prometheus");
    let (rc, out) = promtool(&["check", "rules", "notify.rules.yml"], &dir, None);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let (rc, out) = promtool(&["test", "rules", "notify.rules.test.yml"], &dir, None);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// A real scrape of the agent (root)
// ---------------------------------------------------------------------------------------------

/// `notify agent` on this host with a journal holding one pending record (a pmem disk this host
/// does not have, so it stays pending); stderr is read until the agent is ready.
struct Agent {
    child: std::process::Child,
    addr: String,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let journal = dir.join("journal");
        common::seed_journal(&journal, false);
        let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
            .args(["agent", "-o", "json", "--metrics-addr", "127.0.0.1:0"])
            .arg("--journal")
            .arg(&journal)
            .arg("--output")
            .arg(dir.join("events.jsonl"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn notify agent");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut addr, mut seen) = (None, String::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready once the journal line is out (after attach, metrics, journal open).
        while let Some(Ok(l)) = lines.next() {
            if let Some(a) = l.split("metrics on http://").nth(1) {
                addr = a.split('/').next().map(String::from);
            }
            seen.push_str(&l);
            seen.push('\n');
            if l.contains("notify: journal ") || Instant::now() > deadline {
                break;
            }
        }
        // Keep draining stderr so the agent never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr =
            addr.unwrap_or_else(|| panic!("the agent never said where metrics are:\n{seen}"));
        Agent { child, addr }
    }

    fn scrape(&self) -> String {
        let (code, body) = common::http_get(&self.addr, "/metrics");
        assert_eq!(code, 200, "GET /metrics");
        body
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an unlabelled sample.
fn value(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in the scrape:\n{scrape}"))
}

/// Each alert of the rules file with its `summary` and `description` templates.
fn alerts() -> Vec<(String, BTreeMap<String, String>)> {
    let text = fs::read_to_string(repo("packaging/prometheus/notify.rules.yml")).unwrap();
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for l in text.lines().map(str::trim) {
        if let Some(a) = l.strip_prefix("- alert: ") {
            out.push((a.to_string(), BTreeMap::new()));
        } else if let Some((k @ ("summary" | "description"), v)) = l.split_once(": ") {
            let (_, ann) = out.last_mut().unwrap();
            ann.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    out
}

/// One `alert_rule_test` entry: the alert, firing with these template values or not at all.
fn rule_test(
    name: &str,
    ann: &BTreeMap<String, String>,
    fire: Option<(&str, &str, f64)>,
) -> String {
    let mut s = format!("      - eval_time: 90m\n        alertname: {name}\n");
    let Some((severity, instance, v)) = fire else {
        return s + "        exp_alerts: []\n";
    };
    s += &format!(
        "        exp_alerts:\n          - exp_labels:\n              severity: {severity}\n              \
         job: notify\n              instance: \"{instance}\"\n            exp_annotations:\n"
    );
    for (k, t) in ann {
        let r = t
            .replace("{{ $labels.instance }}", instance)
            .replace("{{ $value }}", &v.to_string());
        s += &format!("              {k}: {r:?}\n");
    }
    s
}

#[test]
#[ignore = "needs root (BPF): run as root with --include-ignored"]
fn rules_fire_on_a_real_scrape_of_the_agent() {
    common::require_root("rules_fire_on_a_real_scrape_of_the_agent");
    let tmp = TempDir::new("packaging-scrape");
    let agent = Agent::start(tmp.path());
    let scrape = agent.scrape();
    drop(agent);

    // promtool 2.42 lints the classic text format, where a counter's HELP names the sample
    // (`X_total`); OpenMetrics names the family (`X`). That, and only that, is reported here.
    let (rc, out) = promtool(&["check", "metrics"], tmp.path(), Some(&scrape));
    assert!(
        rc == 0 || rc == 3,
        "promtool could not parse the scrape ({rc}):\n{out}"
    );
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        let family = l
            .strip_suffix(" no help text")
            .and_then(|s| s.strip_suffix("_total"))
            .unwrap_or_else(|| panic!("promtool check metrics: {l}\n{out}"));
        assert!(
            scrape.contains(&format!("# HELP {family} "))
                && scrape.contains(&format!("# TYPE {family} counter")),
            "promtool: {l}: and the scrape has no HELP for the family {family}"
        );
    }

    // The live binary exports only listed families (the list the dashboard and rules are
    // checked against), and the unlabelled ones all show.
    scrape_is_of_listed_families(&scrape);
    for f in FAMILIES.iter().filter(|f| f.labels.is_empty()) {
        value(&scrape, f.sample);
    }

    // The scraped series, held for two hours as Prometheus would store them (with the
    // job/instance labels its scrape adds), and the rules evaluated on them.
    let inst = "127.0.0.1:9464";
    let mut series = format!(
        "      - series: 'up{{job=\"notify\",instance=\"{inst}\"}}'\n        values: '1x120'\n"
    );
    for l in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (sel, v) = l.rsplit_once(' ').unwrap();
        let (name, labels) = match sel.split_once('{') {
            Some((n, rest)) => (n, format!(",{}", rest.trim_end_matches('}'))),
            None => (sel, String::new()),
        };
        series += &format!(
            "      - series: '{name}{{job=\"notify\",instance=\"{inst}\"{labels}}}'\n        values: '{v}x120'\n"
        );
    }
    let missing = value(&scrape, "notify_probes_required_missing");
    let pending = value(&scrape, "notify_journal_pending");
    assert_eq!(pending, 1.0, "the seeded record is pending:\n{scrape}");
    let mut tests = String::new();
    let mut firing = Vec::new();
    for (name, ann) in alerts() {
        let fire = match name.as_str() {
            "NotifyRequiredProbesMissing" if missing > 0.0 => Some(("critical", inst, missing)),
            "NotifyJournalPending" => Some(("warning", inst, pending)),
            // Counters held still increase by nothing; the agent answered.
            _ => None,
        };
        if fire.is_some() {
            firing.push(name.clone());
        }
        tests += &rule_test(&name, &ann, fire);
    }
    assert_eq!(alerts().len(), 7);
    fs::copy(
        repo("packaging/prometheus/notify.rules.yml"),
        tmp.path().join("notify.rules.yml"),
    )
    .unwrap();
    let test = format!(
        "rule_files:\n  - notify.rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    \
         input_series:\n{series}    alert_rule_test:\n{tests}"
    );
    fs::write(tmp.path().join("scrape.test.yml"), &test).unwrap();
    let (rc, out) = promtool(&["test", "rules", "scrape.test.yml"], tmp.path(), None);
    assert_eq!(rc, 0, "firing expected: {firing:?}\n{out}\n{test}");
    eprintln!("rules on the live scrape: firing {firing:?} (required probes missing: {missing})");
}
