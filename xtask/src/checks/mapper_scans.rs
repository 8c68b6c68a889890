//! Part of `mounted`: the two mapper scans agree. In the guest, on the real XFS, two processes
//! map page 2 of a file and a third maps only pages 0-1 of it; `notify resolve --scan kernel`
//! (the kernel's task_vma BPF iterator) and `--scan proc` (/proc/PID/maps of every process)
//! must name exactly the two, with the same damaged addresses, and the kernel run must say it
//! used the iterator (it fails where there is none, never falls back in that mode). It runs in
//! the kprobe flavour's VM only: the other flavours record that they skipped it.

use std::collections::BTreeSet;

use notify_model::record::ReplayReport;

use crate::checks::{evidence::Evidence, outcome::Outcome, results::Fact};

/// (pid, first damaged address) of each decision of a `notify resolve -o json` report.
fn mappers(o: &mut Outcome, ev: &Evidence, scan: &str) -> Option<BTreeSet<(i32, Option<u64>)>> {
    let name = format!("scan_{scan}.json");
    let parsed = ev
        .text(&name)
        .map(serde_json::from_str::<ReplayReport>)
        .transpose();
    match parsed {
        Ok(Some(r)) if r.error.is_none() => {
            Some(r.decisions.iter().map(|d| (d.pid, d.addr)).collect())
        }
        Ok(Some(r)) => {
            o.check(format!("{name}: no error"), false, format!("{:?}", r.error));
            None
        }
        Ok(None) => {
            o.check(format!("{name} came back"), false, "missing");
            None
        }
        Err(e) => {
            o.check(format!("{name} parses"), false, e.to_string());
            None
        }
    }
}

fn pids(f: &Fact<String>) -> BTreeSet<i32> {
    f.value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

pub fn check(o: &mut Outcome, ev: &Evidence) {
    let r = &ev.results;
    // The scans do not depend on how the probes attach: the guest runs them in the kprobe
    // flavour only and says so.
    let skipped = r.fact::<String>("scan_skipped");
    if let Some(why) = skipped.value.as_deref() {
        o.check(
            "mapper scans: not in this flavour (they run in the kprobe one)",
            why != "attach=kprobe",
            why,
        );
        return;
    }
    o.fact_eq(
        "notify resolve --scan kernel succeeded",
        &r.fact("scan_kernel_rc"),
        0,
    );
    o.fact_eq(
        "notify resolve --scan proc succeeded",
        &r.fact("scan_proc_rc"),
        0,
    );
    let log = ev.text("scan_kernel.log").unwrap_or("");
    o.check(
        "the kernel scan used the task_vma iterator",
        log.contains("mapper scan: the kernel's task_vma iterator"),
        log.lines()
            .find(|l| l.contains("mapper scan"))
            .unwrap_or("no 'mapper scan' line"),
    );
    let want = pids(&r.fact("scan_mappers"));
    let partial = pids(&r.fact("scan_partial"));
    let (Some(kernel), Some(procfs)) = (mappers(o, ev, "kernel"), mappers(o, ev, "proc")) else {
        return;
    };
    let kpids: BTreeSet<i32> = kernel.iter().map(|m| m.0).collect();
    o.check(
        "the iterator and /proc name the same mappers, with the same damaged addresses",
        kernel == procfs && !kernel.is_empty(),
        format!("kernel {kernel:?}, proc {procfs:?}"),
    );
    o.check(
        "the mappers are the two processes mapping page 2, not the one mapping pages 0-1",
        want.len() == 2 && kpids == want && partial.is_disjoint(&kpids),
        format!("found {kpids:?}, want {want:?}, partial {partial:?}"),
    );
    o.check(
        "each mapper's damaged address is known",
        kernel.iter().all(|m| m.1.is_some()),
        format!("{kernel:?}"),
    );
}
