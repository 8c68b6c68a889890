use super::*;

/// notify's agent (`all`) against `none`.
fn stats(rows: &[Row], mode: &str, what: &str) -> Option<Stats> {
    stats_arm(rows, mode, what, "all")
}

#[test]
fn an_arm_table_has_the_goal_column_for_notify_only() {
    let rows = parse_cycles(
        "mode=clean probes=none block=0 mount_ns=100 umount_ns=10\nmode=clean probes=all block=0 mount_ns=101 umount_ns=10\nmode=clean probes=bpftrace block=0 mount_ns=105 umount_ns=10",
    );
    let fmt = |ns: f64| format!("{ns:.0}");
    let mut b = String::new();
    let d = arm_table(&mut b, &rows, "all", Some(1.01), &fmt).unwrap();
    let lines: Vec<&str> = b.lines().collect();
    assert!(lines[0].starts_with("| mode | what | cycles none / all | median none | median all |"));
    assert!(
        lines[0].ends_with("| goal <= 1.01 (met only if q3 <= 1.01) |"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "|---|---|---:|---:|---:|---:|---:|---:|---|");
    let total = lines
        .iter()
        .find(|l| l.starts_with("| clean | total |"))
        .unwrap();
    assert!(total.ends_with("| met |"), "{total}");
    let mount = lines
        .iter()
        .find(|l| l.starts_with("| clean | mount |"))
        .unwrap();
    assert!(mount.ends_with("|  |"), "{mount}");
    assert_eq!(d, [("clean", "total", 1.0)]);
    let mut b = String::new();
    let d = arm_table(&mut b, &rows, "bpftrace", None, &fmt).unwrap();
    assert!(b.lines().next().unwrap().ends_with("| min .. max |"));
    assert_eq!(
        b.lines().nth(1).unwrap(),
        "|---|---|---:|---:|---:|---:|---:|---:|"
    );
    assert_eq!(d, [("clean", "total", 5.0)]);
}

fn cycles() -> String {
    // Two block pairs; pair 0: all/none = 110/100, pair 1: 105/100 (medians per block).
    let mut s = String::new();
    for (b, all) in [(0, [110, 111, 109]), (1, [105, 104, 106])] {
        for (c, a) in all.iter().enumerate() {
            writeln!(
                s,
                "mode=clean probes=none block={b} cycle={c} mount_ns=90 umount_ns=10"
            )
            .unwrap();
            writeln!(
                s,
                "mode=clean probes=all block={b} cycle={c} mount_ns={} umount_ns=10",
                a - 10
            )
            .unwrap();
        }
    }
    s.push('\n');
    s
}

#[test]
fn pair_ratios_and_medians() {
    let rows = parse_cycles(&cycles());
    assert_eq!(rows.len(), 12);
    let s = stats(&rows, "clean", "total").unwrap();
    assert_eq!((s.n_none, s.n_all), (6, 6));
    assert_eq!(s.med_none, 100.0);
    assert_eq!(s.pairs, vec![1.05, 1.1]);
    assert!((s.ratio - 1.075).abs() < 1e-12);
    assert_eq!(s.quantile(0.0), 1.05);
    assert_eq!(s.quantile(1.0), 1.1);
    assert!(
        stats(&rows, "clean", "total_cpu").is_none(),
        "no cpu figures"
    );
    let cpu = parse_cycles(
        "mode=clean probes=none block=0 mount_ns=9 umount_ns=1 mount_cpu_ns=4 umount_cpu_ns=1\nmode=clean probes=all block=0 mount_ns=9 umount_ns=1 mount_cpu_ns=5 umount_cpu_ns=1\n",
    );
    assert_eq!(stats(&cpu, "clean", "total_cpu").unwrap().ratio, 1.2);
    assert_eq!(stats(&cpu, "clean", "total").unwrap().ratio, 1.0);
    let m = stats(&rows, "clean", "umount_ns").unwrap();
    assert_eq!(m.ratio, 1.0);
    assert!(stats(&rows, "recover", "total").is_none());
}

#[test]
fn bpftrace_arm_against_the_same_rounds_none() {
    // Round 0: none 100, all 110, bpftrace 120; round 1: none 100, all 104, bpftrace 112.
    let mut s = cycles();
    for (b, t) in [(0, 120), (1, 112)] {
        writeln!(
            s,
            "mode=clean probes=bpftrace block={b} cycle=0 mount_ns={} umount_ns=10",
            t - 10
        )
        .unwrap();
    }
    let rows = parse_cycles(&s);
    // notify's rows do not move with a third arm in the rounds.
    let n = stats(&rows, "clean", "total").unwrap();
    assert_eq!(n.pairs, vec![1.05, 1.1]);
    let t = stats_arm(&rows, "clean", "total", "bpftrace").unwrap();
    assert_eq!((t.n_none, t.n_all), (6, 2));
    assert_eq!(t.pairs, vec![1.12, 1.2]);
    // Per round: (110 - 100) / (120 - 100) = 0.5, (105 - 100) / (112 - 100).
    let r = extra_ratios(&rows, "clean", "total");
    assert_eq!(r.len(), 2);
    assert!((r[0] - 5.0 / 12.0).abs() < 1e-12 && (r[1] - 0.5).abs() < 1e-12);
    assert!(extra_ratios(&rows, "recover", "total").is_empty());
    // A round whose bpftrace block is not above its none block gives no ratio.
    let rows = parse_cycles(
        "mode=clean probes=none block=0 mount_ns=9 umount_ns=1\nmode=clean probes=all block=0 mount_ns=10 umount_ns=1\nmode=clean probes=bpftrace block=0 mount_ns=9 umount_ns=1\n",
    );
    assert!(extra_ratios(&rows, "clean", "total").is_empty());
}

#[test]
fn a_side_without_cycles_gives_no_row() {
    let rows = parse_cycles("mode=clean probes=none block=0 mount_ns=5 umount_ns=1\n");
    assert!(stats(&rows, "clean", "total").is_none());
    // A cut-off line (timeout mid-write) is not a number and is left out, not a NaN row.
    let rows = parse_cycles(
        "mode=clean probes=none block=0 mount_ns=5 umount_ns=1\nmode=clean probes=all block=0 mount_ns=6 umount_ns=1\nmode=clean probes=all block=0 mount_ns=",
    );
    assert_eq!(stats(&rows, "clean", "total").unwrap().ratio, 7.0 / 6.0);
}

#[test]
fn verdicts() {
    assert_eq!(verdict(0.99, 1.005, 1.01), "met");
    assert_eq!(verdict(1.0302, 1.04, 1.01), "**MISSED** by 2.0% (q1)");
    assert!(verdict(0.9, 1.05, 1.01).starts_with("**not shown**"));
    // 6.12's mounting thread at 02:09: 0.87 .. 0.96 with the probes.
    assert!(verdict(0.8704, 0.9638, 1.01).starts_with("**not shown**: below 1"));
    assert_eq!(verdict(0.985, 0.995, 1.01), "met");
}

#[test]
fn sections_and_shift() {
    assert_eq!(section_name(None, "6.12", "kprobe", None), "mount-overhead");
    assert_eq!(
        section_name(Some(0), "7.3", "fentry", Some(2)),
        "mount-overhead-icount-7.3-fentry"
    );
    assert_eq!(
        section_name(Some(0), "6.12", "kprobe", Some(1)),
        "mount-overhead-icount-6.12-kprobe-1vcpu"
    );
    assert!(check_shift(10).is_ok());
    let e = check_shift(11).unwrap_err().to_string();
    assert!(e.contains("0..10"), "{e}");
    assert_eq!(icount_args(0)[1], "shift=0,sleep=off");
}

#[test]
fn hits_lines() {
    let h = parse_hits(
        "mode=clean prog=get_tree_exit run_cnt=8 run_time_ns=4000\nmode=clean prog=storm run_cnt=0 run_time_ns=0\nmode=clean prog=xfs_tp run_cnt=900 run_time_ns=90000\nmode=clean prog=cut run_cnt=\n",
    );
    assert_eq!(
        h.iter()
            .map(|h| (h.prog.as_str(), h.runs))
            .collect::<Vec<_>>(),
        [("xfs_tp", 900), ("get_tree_exit", 8)]
    );
}

#[test]
fn kinds_lines() {
    let k = parse_kinds(
        "mode=clean count=16 kind=get_tree_exit\nmode=recover count=3 kind=log_recover\nnoise\n",
    );
    assert_eq!(
        k,
        vec![
            ("clean".into(), "get_tree_exit".into(), 16),
            ("recover".into(), "log_recover".into(), 3)
        ]
    );
}
