//! The configuration's unit tests: parsing, validation, precedence and reload.

use super::*;

fn parse(t: &str) -> Result<Layer, ConfigError> {
    Layer::from_toml(t, Path::new("/etc/notify/agent.toml"))
}

#[test]
fn a_full_file_parses() {
    let l = parse(
        r#"
format = "json"
attach = "kprobe"
journal = "/var/lib/notify/j"
verbose = true
output = "/var/log/notify/events.jsonl"
rotate_size = "64M"
rotate_keep = 3
badblocks_rescan = 5
ring_size = "256K"
metrics_addr = "0.0.0.0:9100"
policy = "sigbus"
dry_run = true
allow_pids = [1234, 0x10]
allow_comms = ["postgres"]
allow_cgroups = ["/system.slice/db.service"]
"#,
    )
    .unwrap();
    assert_eq!(l.format, Some(Format::Json));
    assert_eq!(l.attach, Some(AttachMode::Kprobe));
    assert_eq!(l.rotate_size, Some(64 << 20));
    assert_eq!(l.rotate_keep, Some(3));
    assert_eq!(l.badblocks_rescan, Some(5));
    assert_eq!(l.ring_size, Some(256 << 10));
    assert!(parse("badblocks_rescan = 100000").is_err());
    assert_eq!(
        Settings::merge(&[&parse("badblocks_rescan = 0").unwrap()]).badblocks_rescan,
        None
    );
    assert_eq!(
        l.metrics_addr,
        Some(MetricsAddr::At("0.0.0.0:9100".parse().unwrap()))
    );
    assert_eq!(l.policy, Some(Policy::Sigbus));
    assert_eq!(l.allow_pids, Some(vec![1234, 16]));
    assert_eq!(
        l.output,
        Some(Some(PathBuf::from("/var/log/notify/events.jsonl")))
    );
    assert_eq!(l.keys().len(), KEYS.len(), "every key is exercised");
}

#[test]
fn empty_file_is_the_defaults() {
    let l = parse("# nothing\n").unwrap();
    assert_eq!(l, Layer::default());
    assert_eq!(Settings::merge(&[&l]), Settings::default());
    let d = Settings::default();
    assert_eq!(d.metrics_addr.to_string(), "127.0.0.1:9464");
    assert_eq!(d.journal, PathBuf::from("/var/lib/notify/journal"));
}

#[test]
fn unknown_key_names_file_line_key_and_suggests() {
    let e = parse("policy = \"sigbus\"\n\npolcy = \"report\"\n").unwrap_err();
    assert_eq!((e.line, e.col), (3, 1));
    assert_eq!(e.key.as_deref(), Some("polcy"));
    let s = e.to_string();
    assert!(
        s.starts_with("/etc/notify/agent.toml:3:1: polcy: unknown key"),
        "{s}"
    );
    assert!(s.contains("did you mean `policy`?"), "{s}");
    let e = parse("[enforce]\npolicy = \"sigbus\"\n").unwrap_err();
    assert!(e.to_string().contains("no sections"), "{e}");
}

#[test]
fn bad_policy_names_the_value_and_the_choices() {
    let e = parse("dry_run = false\npolicy = \"sigterm\"\n").unwrap_err();
    assert_eq!((e.line, e.col), (2, 10), "{e}");
    let s = e.to_string();
    assert!(s.contains("policy: unknown policy \"sigterm\""), "{s}");
    assert!(s.contains("report, sigbus or sigkill"), "{s}");
    let e = parse("policy = 3\n").unwrap_err();
    assert!(
        e.to_string().contains("expected a string, got a integer"),
        "{e}"
    );
}

#[test]
fn bad_address_explains_the_form() {
    for bad in ["localhost:9464", "127.0.0.1", "1.2.3.4:99999", ""] {
        let e = parse(&format!("metrics_addr = \"{bad}\"\n")).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.to_string().contains("IP:PORT such as 127.0.0.1:9464"),
            "{e}"
        );
    }
    assert_eq!(
        parse("metrics_addr = \"off\"").unwrap().metrics_addr,
        Some(MetricsAddr::Off)
    );
    assert!(parse("metrics_addr = \"[::1]:9464\"").is_ok());
}

#[test]
fn list_items_are_checked_one_by_one() {
    let e = parse("allow_comms = [\"ok\", \"a-very-long-process-name\"]\n").unwrap_err();
    assert_eq!((e.line, e.col), (1, 22), "{e}");
    assert!(
        e.to_string().contains("at most") || e.to_string().contains("1 to 15"),
        "{e}"
    );
    let e = parse("allow_pids = [12, \"x\"]").unwrap_err();
    assert!(e.to_string().contains("expected a pid"), "{e}");
    let e = parse("allow_pids = [1]").unwrap_err();
    assert!(e.to_string().contains("never signalled"), "{e}");
    let e = parse("allow_cgroups = [\"system.slice\"]").unwrap_err();
    assert!(e.to_string().contains("not a cgroup path"), "{e}");
}

#[test]
fn the_packaged_example_is_valid_and_documents_every_key() {
    let text = include_str!("../../../../../packaging/agent.toml");
    let l = parse(text).unwrap_or_else(|e| panic!("packaging/agent.toml: {e}"));
    let s = Settings::merge(&[&l]);
    assert_eq!(s.format, Format::Json);
    assert_eq!(s.metrics_addr.to_string(), DEFAULT_METRICS_ADDR);
    // The packaged agent sleeps when nothing happens: no timer of its own (the bad-block
    // lists are waited for, not polled).
    assert_eq!(
        s.badblocks_rescan, None,
        "the packaged example sets a rescan timer"
    );
    for k in KEYS {
        assert!(
            text.contains(&format!("{} =", k.name)),
            "{} not in the example",
            k.name
        );
        let tag = if k.live { "[live]" } else { "[restart]" };
        let line = text
            .lines()
            .position(|l| {
                l.trim_start_matches("# ")
                    .starts_with(&format!("{} =", k.name))
            })
            .unwrap();
        let comment: String = text.lines().take(line).collect::<Vec<_>>().join("\n");
        let last_tag = comment.rfind("[live]").max(comment.rfind("[restart]"));
        assert!(
            last_tag.is_some_and(|i| comment[i..].starts_with(tag)),
            "{}: the example must say {tag}",
            k.name
        );
    }
}

#[test]
fn sizes_and_paths() {
    assert_eq!(parse_size("64M"), Ok(64 << 20));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("512k"), Ok(512 << 10));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert!(parse_size("lots").is_err());
    assert_eq!(parse("rotate_size = 0").unwrap().rotate_size, Some(0));
    assert!(
        parse("rotate_size = 100")
            .unwrap_err()
            .to_string()
            .contains("at least 4K")
    );
    assert!(parse("rotate_keep = 5000").is_err());
    assert_eq!(
        parse("ring_size = 65536").unwrap().ring_size,
        Some(64 << 10)
    );
    assert_eq!(
        Settings::merge(&[&parse("# nothing").unwrap()]).ring_size,
        notify_common::RING_BYTES
    );
    for bad in [
        "ring_size = \"100K\"",
        "ring_size = \"32K\"",
        "ring_size = \"2G\"",
        "ring_size = 0",
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("ring_size") && e.contains("power of two from 64K to 1G"),
            "{bad}: {e}"
        );
    }
    assert!(
        parse("ring_size = \"lots\"")
            .unwrap_err()
            .to_string()
            .contains("not a size")
    );
    assert!(
        parse("journal = \"rel/j\"")
            .unwrap_err()
            .to_string()
            .contains("absolute")
    );
    assert_eq!(parse("output = \"-\"").unwrap().output, Some(None));
}

#[test]
fn syntax_errors_have_a_line() {
    let e = parse("policy = \"sigbus\"\nrotate_keep = = 3\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().contains("not valid TOML"), "{e}");
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let file = parse("policy = \"sigkill\"\nrotate_keep = 2\nallow_comms = [\"db\"]\n").unwrap();
    let flags = Layer {
        policy: Some(Policy::Report),
        allow_comms: Some(vec!["web".into()]),
        ..Layer::default()
    };
    let s = Settings::merge(&[&file, &flags]);
    assert_eq!(s.enforce.policy, Policy::Report);
    assert_eq!(s.enforce.allow.comms, vec!["web".to_string()]);
    assert_eq!(s.rotate_keep, 2);
    assert_eq!(s.rotate_size, DEFAULT_ROTATE_SIZE);
}

#[test]
fn reload_sorts_changes_into_live_restart_and_pinned() {
    let dir = std::env::temp_dir().join(format!("notify-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("agent.toml");
    std::fs::write(
        &f,
        "policy = \"report\"\nattach = \"auto\"\nrotate_keep = 1\n",
    )
    .unwrap();
    let flags = Layer {
        rotate_keep: Some(9),
        ..Layer::default()
    };
    let l = Loaded::load(Some(f.clone()), flags).unwrap();
    assert_eq!(l.settings.rotate_keep, 9);
    std::fs::write(
        &f,
        "policy = \"sigbus\"\nattach = \"kprobe\"\nrotate_keep = 2\nallow_pids = [77]\n",
    )
    .unwrap();
    let (next, r) = l.reload().unwrap();
    assert_eq!(r.live, vec!["policy", "allow_pids"]);
    assert_eq!(r.restart, vec!["attach"]);
    assert_eq!(r.pinned, vec!["rotate_keep"]);
    assert_eq!(next.settings.enforce.policy, Policy::Sigbus);
    assert_eq!(next.settings.rotate_keep, 9);
    let d = r.describe();
    assert!(d.contains("restart the agent to apply): attach"), "{d}");
    assert!(d.contains("rotate_keep (--rotate-keep)"), "{d}");
    // A broken file on reload is an error; the caller keeps the old settings.
    std::fs::write(&f, "policy = \"nope\"\n").unwrap();
    assert!(next.reload().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
