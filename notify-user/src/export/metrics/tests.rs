//! Unit tests of the metrics and the endpoint.

use super::{registry::*, *};
use crate::{
    enforce,
    probe::{Method, Outcome},
};
use http::{OPENMETRICS, Request, head_end, parse_request, respond};
use notify_model::{
    Derived, Dev, Item, Notification, Verdict,
    decision::{Act, Decision, Policy, Why},
    journal::{Reason, Recovery},
    record::{AgentRecord, IdentifiedBy, OwnerReport, ReplayReport},
};

fn outcome(hook: &'static str, method: Option<Method>, required: bool) -> Outcome {
    Outcome {
        hook,
        target: hook.into(),
        method,
        notes: vec![],
        required,
    }
}

#[test]
fn request_line_parsing() {
    assert_eq!(
        parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a"),
        Some(Request {
            method: "GET".into(),
            path: "/metrics".into()
        })
    );
    assert!(parse_request(b"GET /metrics").is_none());
    assert!(parse_request(b"\xff\xfe").is_none());
}

#[test]
fn head_ends_at_the_first_blank_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(23));
    // A lax client's LF LF, and a CRLF CRLF winning over a later LF LF.
    assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n\n\n"), Some(14));
    // Not arrived yet.
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    assert_eq!(head_end(b""), None);
}

#[test]
fn healthz_is_503_naming_missing_required_probes() {
    let m = Metrics::new();
    m.set_session(
        &[
            outcome("notify", None, true),
            outcome("memory_failure", None, false),
            outcome("sys_exit_mount", Some(Method::Tracepoint), false),
        ],
        "6.1.0-test",
    );
    let get = |p: &str| {
        respond(
            &m,
            &Request {
                method: "GET".into(),
                path: p.into(),
            },
        )
    };
    let (code, _, body) = get("/healthz");
    assert_eq!(code, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["missing_required"], serde_json::json!(["notify"]));
    assert_eq!(v["attached"]["sys_exit_mount"], "tracepoint");
    let (code, ctype, text) = get("/metrics");
    assert_eq!((code, ctype), (200, OPENMETRICS));
    assert!(
        text.contains("notify_probes_attached{method=\"tracepoint\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("notify_kernel_info{release=\"6.1.0-test\"} 1"),
        "{text}"
    );
    assert!(text.contains("notify_build_info{version="), "{text}");
    assert!(text.contains("notify_probes_required_missing 1"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(get("/nope").0, 404);

    let ok = Metrics::new();
    ok.set_session(&[outcome("notify", Some(Method::Kprobe), true)], "x");
    assert!(ok.health().ok());
}

/// Every metric the agent exports is in docs/AGENT.md's table, and every one there exists.
/// A registry with a first sample in every family (families with labels appear only then).
fn every_family_sampled() -> Metrics {
    let m = Metrics::new();
    m.set_session(&[outcome("notify", None, true)], "6.1");
    let n = Notification {
        dax_dev: 1,
        holder: 2,
        dev: Dev(1),
        dev_from: None,
        pfn: None,
        start_off: 0,
        offset: 0,
        len: 4096,
        mf_flags: 0,
        ret: -5,
        xfs_ret: None,
        readiness: None,
        state: None,
        verdict: Verdict::Premature,
        enter_seq: None,
        exit_seq: 1,
        kills: vec![notify_model::Kill {
            target: 9,
            comm: "victim".into(),
            code: 4,
            seq: 1,
        }],
    };
    m.on_item(&Item::Kernel(notify_model::TraceEvent {
        seq: 2,
        ktime_ns: 0,
        cpu: 0,
        pid: 9,
        tid: 9,
        comm: "victim".into(),
        data: notify_model::EventData::Sigbus {
            target: 9,
            target_comm: "victim".into(),
            code: 4,
            result: 0,
        },
    }));
    m.on_item(&Item::Notification(Derived {
        at: Default::default(),
        data: n,
    }));
    m.on_item(&Item::Record(AgentRecord::Journaled {
        id: 1,
        reason: Reason::Premature,
        disk: "pmem0".into(),
        ndctl: Default::default(),
        dax_offset: 0,
        len: 4096,
        identified_by: IdentifiedBy::HolderRegistration,
    }));
    m.on_item(&Item::Record(AgentRecord::Replayed {
        id: 1,
        disk: "pmem0".into(),
        ndctl: Default::default(),
        report: ReplayReport {
            mount_point: "/mnt".into(),
            dax_offset: 0,
            len: 4096,
            fs_range: None,
            owners: vec![OwnerReport {
                kind: "file".into(),
                ino: Some(1),
                paths: vec![],
                ranges: vec![],
                physical: 0,
                length: 4096,
                shared: false,
                metadata: false,
            }],
            decisions: vec![],
            error: None,
            xfs_told: false,
            advice: vec![],
        },
    }));
    m.on_item(&Item::Record(AgentRecord::Enforcement {
        id: 1,
        decision: Decision {
            pid: 5,
            comm: "c".into(),
            action: Act::Signalled,
            class: Why::Sent,
            reason: "maps the damaged range".into(),
            policy: Policy::Sigbus,
            signal: Some("SIGBUS".into()),
            si_code: Some(0),
            dry_run: false,
            addr: None,
            exited: None,
        },
    }));
    m.on_item(&Item::Record(AgentRecord::JournalRecovered {
        recovery: Recovery::default(),
    }));
    m.on_item(&Item::Record(AgentRecord::XfsTold {
        id: 1,
        disk: "pmem0".into(),
        mount_point: "/mnt".into(),
        mount: "b/1".into(),
        start: 0,
        end: 8,
        bad: vec![(0, 8)],
        error: None,
    }));
    m.on_item(&Item::Record(AgentRecord::XfsReported {
        id: 1,
        disk: "pmem0".into(),
        reported: vec![131],
        owners: vec![131],
        missing: vec![],
        merged: 0,
    }));
    m.on_item(&Item::FsError(notify_model::fserror::FsError {
        ktime_ns: 1,
        dev: Dev(1),
        mount_point: "/mnt".into(),
        what: notify_model::fserror::FsErrorKind::DataLost,
        error: 5,
        error_count: 1,
        ino: Some(131),
        generation: Some(1),
        path: None,
        notification_seq: None,
    }));
    m.on_item(&Item::Health(notify_model::health::Health {
        daddr: Some(8),
        sectors: Some(8),
        ..notify_model::health::Health::new(
            1,
            1,
            Dev(1),
            "/mnt".into(),
            "datadev".into(),
            "media_error".into(),
        )
    }));
    m.on_item(&Item::Record(AgentRecord::JournalWriteFailed {
        op: "append".into(),
        id: None,
        disk: "pmem0".into(),
        dax_offset: 0,
        len: 4096,
        error: "No space left on device".into(),
        action: "retried".into(),
    }));
    m.on_item(&Item::Record(AgentRecord::RedriveRefused {
        id: 1,
        disk: "pmem0".into(),
        why: "metadata".into(),
    }));
    m.on_reload(true);
    m
}

#[test]
fn docs_list_exactly_the_exported_metrics() {
    let text = every_family_sampled().render();
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let doc = include_str!("../../../../docs/AGENT.md");
    let documented: std::collections::BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `notify_"))
        .map(|l| &l[..l.find('`').unwrap()])
        .collect();
    let exported: std::collections::BTreeSet<&str> = exported
        .iter()
        .map(|n| n.strip_prefix("notify_").unwrap())
        .collect();
    assert_eq!(
        exported, documented,
        "docs/AGENT.md's metric table vs /metrics"
    );
}

#[test]
fn decisions_are_counted_by_action_and_reason_class() {
    let allow = enforce::Allowlist {
        pids: vec![42],
        comms: vec!["db".into()],
        cgroup_prefixes: vec!["/system.slice/db.service".into()],
    };
    // The classes follow enforce::refusal's real reasons.
    let cases = [
        (enforce::refusal(1, "init", &[], 99, &allow), "pid1"),
        (enforce::refusal(99, "notify", &[], 99, &allow), "self"),
        (enforce::refusal(42, "x", &[], 99, &allow), "allow_pid"),
        (enforce::refusal(43, "db", &[], 99, &allow), "allow_comm"),
        (
            enforce::refusal(44, "y", &["/system.slice/db.service/x".into()], 99, &allow),
            "allow_cgroup",
        ),
        (enforce::refusal(0, "y", &[], 99, &allow), "invalid_pid"),
    ];
    let m = Metrics::new();
    for (reason, class) in cases {
        let r = reason.expect("refused");
        let d = Decision {
            pid: 5,
            comm: "c".into(),
            action: Act::Refused,
            class: r.class(),
            reason: r.to_string(),
            policy: Policy::Sigbus,
            signal: None,
            si_code: None,
            dry_run: false,
            addr: None,
            exited: None,
        };
        assert_eq!(d.class.name(), class, "{}", d.reason);
        m.on_item(&Item::Record(AgentRecord::Enforcement {
            id: 1,
            decision: d,
        }));
    }
    let text = m.render();
    assert!(
        text.contains(
            "notify_enforcement_decisions_total{action=\"refused\",reason_class=\"pid1\",signal=\"none\"} 1"
        ),
        "{text}"
    );
}

/// The device labels mean one thing each (docs/AGENT.md, "Metrics"): `dev` is the block device
/// the kernel names, "major:minor"; `disk` is the pmem disk the journal keys records by, its
/// name. The premature count is `notify_notifications_total{verdict="premature"}` only.
#[test]
fn device_labels_are_dev_major_minor_or_disk_name() {
    let text = every_family_sampled().render();
    let mut seen = (0, 0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) else {
            continue;
        };
        for pair in labels.0.split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = v.trim_matches('"');
            match k {
                "dev" => {
                    seen.0 += 1;
                    assert!(
                        Dev::parse(v).is_some(),
                        "dev={v:?} is not major:minor: {line}"
                    );
                }
                "disk" => {
                    seen.1 += 1;
                    assert!(
                        v.starts_with("pmem") && !v.contains(':'),
                        "disk={v:?}: {line}"
                    );
                }
                "device" | "bdev" | "devname" => panic!("a third name for a device: {line}"),
                _ => {}
            }
        }
    }
    assert!(
        seen.0 >= 4 && seen.1 >= 3,
        "dev/disk samples seen: {seen:?}\n{text}"
    );
    assert!(!text.contains("notifications_premature"), "{text}");
    assert!(text.contains("notify_journaled_total{disk=\"pmem0\",reason=\"premature\"} 1"));
}

/// `families::FAMILIES` (what packaging/ is checked against) is exactly what the registry
/// renders once every family has a sample: names, types, label names.
#[test]
fn families_list_is_what_the_registry_renders() {
    let text = every_family_sampled().render();
    let mut rendered = std::collections::BTreeMap::new();
    let mut kind = std::collections::BTreeMap::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            let (fam, k) = t.split_once(' ').unwrap();
            kind.insert(fam.to_string(), k.to_string());
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let sel = l.rsplit_once(' ').unwrap().0;
        let (name, labels) = sel.split_once('{').unwrap_or((sel, ""));
        let keys: std::collections::BTreeSet<String> = labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap().0.to_string())
            .collect();
        let fam = name
            .strip_suffix("_total")
            .filter(|f| kind.get(*f).is_some_and(|k| k == "counter"));
        let k = kind[fam.unwrap_or(name)].clone();
        rendered.insert(name.to_string(), (k, keys));
    }
    let listed: std::collections::BTreeMap<String, (String, std::collections::BTreeSet<String>)> =
        families::FAMILIES
            .iter()
            .map(|f| {
                (
                    f.sample.to_string(),
                    (
                        f.kind.to_string(),
                        f.labels.iter().map(|l| l.to_string()).collect(),
                    ),
                )
            })
            .collect();
    assert_eq!(listed, rendered);
}
