//! `replay`: the enforcing agent end to end (lab/scenarios.sh `sc_replay`). Three agent runs:
//! the first journals a no-holder and a premature notification and replays both at the ready
//! edge, journals a third and is killed with kill -9; the restart replays that one at start and
//! SIGBUSes the victim only, then journals and replays a reflinked block and an AG header; the
//! last replays nothing.

use notify_model::{
    Item, Phase, Readiness,
    decision::{Act, Policy},
    fserror::FsErrorKind,
    journal::{Reason, Status},
    record::{AgentRecord, IdentifiedBy},
};

use crate::checks::{
    events::{EIO, EOPNOTSUPP, PAGE, pfn_offset},
    evidence::Evidence,
    outcome::Outcome,
    replay_records::{
        check_file_owners, check_journal, enforcements, file_owners, later_run, owners_brief,
        replayed, replayed_at,
    },
    results::{Fact, Inject, Results},
    steps::{Kind, Step, brief, field},
};

/// The files the script created, each with one poisoned page.
const FILES: [&str; 6] = ["a", "b", "c", "d", "r1", "r2"];

/// What the script measured about one of its files: `<f>_ino`, `<f>_page` (the poisoned page
/// of the file), `<f>_physoff` (its FIEMAP offset) and `<f>_pfn`.
struct FileFacts {
    name: &'static str,
    ino: Fact<u64>,
    page: Fact<u64>,
    physoff: Fact<u64>,
    pfn: Fact<u64>,
}

/// A file whose facts are all there.
#[derive(Clone, Copy)]
struct File {
    ino: u64,
    page: u64,
    physoff: u64,
    pfn: u64,
}

impl FileFacts {
    fn read(r: &Results, name: &'static str) -> FileFacts {
        FileFacts {
            name,
            ino: r.fact(format!("{name}_ino")),
            page: r.fact(format!("{name}_page")),
            physoff: r.fact(format!("{name}_physoff")),
            pfn: r.fact(format!("{name}_pfn")),
        }
    }

    fn get(&self) -> Option<File> {
        Some(File {
            ino: self.ino.value?,
            page: self.page.value?,
            physoff: self.physoff.value?,
            pfn: self.pfn.value?,
        })
    }

    /// The keys that are missing or not numbers.
    fn missing(&self) -> Vec<&str> {
        [&self.ino, &self.page, &self.physoff, &self.pfn]
            .into_iter()
            .filter(|f| f.value.is_none())
            .map(|f| f.key.as_str())
            .collect()
    }
}

/// The files the agent checks need, complete.
struct Files {
    a: File,
    b: File,
    c: File,
    r1: File,
    r2: File,
    /// The dax offset of the AG 0 header page (`meta_pfn`).
    meta: u64,
}

/// What the script measured.
struct Facts {
    files: Vec<FileFacts>,
    meta_pfn: Fact<u64>,
    mounted_before_inject: bool,
    victim_pid: Fact<i32>,
    bystander_pid: Fact<i32>,
    victim_exit: Fact<i32>,
    bystander_alive_after_replay: Fact<bool>,
    bystander_exit: Fact<i32>,
    sentinel_alive_after_restart: Fact<bool>,
    sentinel_exit: Fact<i32>,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            files: FILES.iter().map(|f| FileFacts::read(r, f)).collect(),
            meta_pfn: r.fact("meta_pfn"),
            mounted_before_inject: r.has("mounted_before_inject"),
            victim_pid: r.fact("victim_pid"),
            bystander_pid: r.fact("bystander_pid"),
            victim_exit: r.fact("victim_exit"),
            bystander_alive_after_replay: r.fact("bystander_alive_after_replay"),
            bystander_exit: r.fact("bystander_exit"),
            sentinel_alive_after_restart: r.fact("sentinel_alive_after_restart"),
            sentinel_exit: r.fact("sentinel_exit"),
        }
    }

    fn file(&self, name: &str) -> Option<File> {
        self.files.iter().find(|f| f.name == name)?.get()
    }

    /// Every fact the agent checks use, or a failed check naming what is missing.
    fn complete(&self, o: &mut Outcome, r: &Results) -> Option<Files> {
        let files = (|| {
            Some(Files {
                a: self.file("a")?,
                b: self.file("b")?,
                c: self.file("c")?,
                r1: self.file("r1")?,
                r2: self.file("r2")?,
                meta: pfn_offset(self.meta_pfn.value?)?,
            })
        })();
        if files.is_none() {
            let mut missing: Vec<&str> = self
                .files
                .iter()
                .filter(|f| f.name != "d")
                .flat_map(FileFacts::missing)
                .collect();
            if self.meta_pfn.value.is_none() {
                missing.push("meta_pfn");
            }
            o.check(
                "script reported every file's offset",
                false,
                format!("missing {missing:?}: {r:?}"),
            );
        }
        files
    }
}

pub fn check(o: &mut Outcome, ev: &Evidence, agent: bool) {
    let r = &ev.results;
    let facts = Facts::read(r);
    script_side(o, r, &facts, &ev.dmesg);
    if !agent {
        return;
    }
    let Some(files) = facts.complete(o, r) else {
        return;
    };
    let Some(ids) = first_run(o, ev, &files) else {
        return;
    };
    restart(o, ev, &facts, &files, ids);
    again(o, ev, &facts);
}

/// What the script saw itself, agent or not.
fn script_side(o: &mut Outcome, r: &Results, f: &Facts, dmesg: &str) {
    for (what, key) in [
        ("mkfs.xfs with an external log succeeded", "mkfs_rc"),
        ("first mount succeeded", "mount_rc"),
        ("xfs_io reflink succeeded", "reflink_rc"),
        ("umount before poisoning succeeded", "umount_rc"),
        (
            "the slow mount (log behind dm-delay) succeeded",
            "slow_mount_rc",
        ),
        ("the fast mount after kill -9 succeeded", "mount2_rc"),
        (
            "the mount after the reflink and AG header hits succeeded",
            "mount3_rc",
        ),
    ] {
        o.fact_eq(what, &r.fact::<i32>(key), 0);
    }
    for file in &f.files {
        let (pfn, off) = (file.pfn.value, file.physoff.value);
        let name = file.name;
        o.check(
            format!("/mnt/{name}: FIEMAP offset and pfn agree"),
            matches!((pfn, off), (Some(p), Some(x)) if pfn_offset(p) == Some(x) && x > 0),
            format!("{name}_pfn={pfn:x?} {name}_physoff={off:x?}"),
        );
    }
    let physoff = |name: &str| f.files.iter().find(|x| x.name == name).map(|x| &x.physoff);
    if let (Some(r1), Some(r2)) = (physoff("r1"), physoff("r2")) {
        o.check(
            "r2 shares r1's block (reflink)",
            r1.value.is_some() && r1.value == r2.value,
            format!("{} {}", r1.shown(), r2.shown()),
        );
    }
    for (key, what, errno) in [
        (
            "inject_a",
            "1. /mnt/a poisoned unmounted: EBUSY (no holder)",
            "busy",
        ),
        (
            "inject_b",
            "2. /mnt/b poisoned while mounting: EIO (not ready)",
            "input/output",
        ),
        ("inject_c", "4. /mnt/c poisoned unmounted: EBUSY", "busy"),
        (
            "inject_r",
            "5. reflinked /mnt/r1 poisoned unmounted: EBUSY",
            "busy",
        ),
        (
            "inject_meta",
            "6. AG 0 header poisoned unmounted: EBUSY",
            "busy",
        ),
    ] {
        let inject = Inject::read(r, key);
        let says = inject
            .err
            .value
            .as_ref()
            .is_some_and(|e| e.to_lowercase().contains(errno));
        o.check(what, inject.failed() && says, inject.shown());
    }
    o.check(
        "2. the slow mount was still in progress at injection",
        !f.mounted_before_inject,
        format!("{r:?}"),
    );
    o.dmesg(dmesg, "filesystem is not ready for notify_failure()!", true);
    o.dmesg(dmesg, "recovery action for dax page: Failed", true);
}

/// Journal ids of the records of /mnt/a, /mnt/b and /mnt/c.
#[derive(Clone, Copy)]
struct Ids {
    a: u64,
    b: u64,
    c: u64,
}

/// Run 1: journaled, replayed at the ready edge, then the /mnt/c hit journaled before kill -9.
fn first_run(o: &mut Outcome, ev: &Evidence, f: &Files) -> Option<Ids> {
    let run1: Vec<&Item> = ev.events("events.jsonl")?.in_order();
    let (a, b, c) = (f.a.physoff, f.b.physoff, f.c.physoff);
    let i1 = o.seq(
        "1. nothing mounted: memory_failure(a) -> notify(no_holder) -> -EOPNOTSUPP -> journaled no_holder pmem0 (namespace0.0, region0) via the pfn",
        &run1,
        &[
            Step::new(Kind::MemoryFailureEnter).pfn(f.a.pfn),
            Step::new(Kind::NotifyEnter)
                .offset(a)
                .len(PAGE)
                .readiness(Readiness::NoHolder),
            Step::new(Kind::NotifyExit).offset(a).ret(EOPNOTSUPP),
            Step::new(Kind::Journaled)
                .dax_offset(a)
                .len(PAGE)
                .reason(Reason::NoHolder)
                .disk("pmem0")
                // memmap= pmem: nd_e820's namespace, as `ndctl list -N` names it.
                .ndctl("namespace0.0", "region0")
                .identified_by(IdentifiedBy::MemoryFailurePfn),
        ],
    )?;
    let i2 = o.seq(
        "2. mounting: memory_failure(b) -> notify(not_born) -> XFS -EIO -> journaled premature pmem0 -> get_tree_exit(0)",
        &run1,
        &[
            Step::new(Kind::HolderGet).dax_dev_known(),
            Step::new(Kind::MemoryFailureEnter).pfn(f.b.pfn),
            Step::new(Kind::NotifyEnter)
                .offset(b)
                .len(PAGE)
                .readiness(Readiness::NotBorn),
            Step::new(Kind::XfsNotifyExit).offset(b).ret(EIO),
            Step::new(Kind::Journaled)
                .dax_offset(b)
                .len(PAGE)
                .reason(Reason::Premature)
                .disk("pmem0"),
            Step::mount(Phase::GetTreeExit).ret(0),
        ],
    )?;
    let (id_a, id_b) = (field::id(run1[i1[3]]), field::id(run1[i2[4]]));
    // Both replayed after the ready edge, in journal order.
    let after = &run1[i2[5]..];
    if let Some(ix) = o.seq(
        "3. after get_tree_exit(0): replayed(a) then replayed(b) on /mnt",
        after,
        &[
            Step::new(Kind::Replayed)
                .dax_offset(a)
                .mount_point("/mnt")
                .disk("pmem0"),
            Step::new(Kind::Replayed)
                .dax_offset(b)
                .mount_point("/mnt")
                .disk("pmem0"),
        ],
    ) {
        ready_edge(o, f, (after[ix[0]], after[ix[1]]), (id_a, id_b));
    }
    let enf1 = enforcements(&run1);
    o.check(
        "run 1 signalled nobody",
        enf1.is_empty(),
        enf1.iter()
            .map(|(_, _, i)| brief(i))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let i4 = o.seq(
        "4. unmounted again: memory_failure(c) -> notify(no_holder) -> journaled no_holder (before kill -9)",
        after,
        &[
            Step::new(Kind::Replayed).dax_offset(b),
            Step::new(Kind::MemoryFailureEnter).pfn(f.c.pfn),
            Step::new(Kind::NotifyEnter)
                .offset(c)
                .readiness(Readiness::NoHolder),
            Step::new(Kind::Journaled)
                .dax_offset(c)
                .len(PAGE)
                .reason(Reason::NoHolder)
                .disk("pmem0"),
        ],
    )?;
    let ids = Ids {
        a: id_a?,
        b: id_b?,
        c: field::id(after[i4[3]])?,
    };
    check_journal(
        o,
        &ev.results,
        ev,
        "journal_killed",
        &[
            (ids.a, Status::Replayed),
            (ids.b, Status::Replayed),
            (ids.c, Status::Pending),
        ],
    );
    Some(ids)
}

/// Step 3: the replays of a and b at the ready edge.
fn ready_edge(
    o: &mut Outcome,
    f: &Files,
    (ra, rb): (&Item, &Item),
    (id_a, id_b): (Option<u64>, Option<u64>),
) {
    let (got_a, got_b) = (field::id(ra), field::id(rb));
    o.check(
        "3. the replayed records are the journaled ones (same ids)",
        id_a.is_some() && got_a == id_a && got_b == id_b && id_a != id_b,
        format!(
            "journaled {id_a:?} {id_b:?}; replayed {} / {}",
            brief(ra),
            brief(rb)
        ),
    );
    check_file_owners(
        o,
        "3. replay of a names /mnt/a and its damaged file range",
        ra,
        &[f.a.ino],
        f.a.page,
    );
    check_file_owners(
        o,
        "3. replay of b names /mnt/b and its damaged file range",
        rb,
        &[f.b.ino],
        f.b.page,
    );
    let no_decisions = |i: &Item| replayed(i).is_some_and(|(_, r)| r.decisions.is_empty());
    o.check(
        "3. at the ready edge nothing maps the new mount yet: owners, but no process decisions",
        no_decisions(ra) && no_decisions(rb),
        format!("{}\n{}", owners_brief(ra), owners_brief(rb)),
    );
}

/// Run 2: the restart replays /mnt/c at once and SIGBUSes the victim only; then 5 and 6.
fn restart(o: &mut Outcome, ev: &Evidence, facts: &Facts, f: &Files, ids: Ids) {
    let Some(run2) = later_run(o, ev, "agent_restart", "events_restart.jsonl") else {
        return;
    };
    let victim = facts.victim_pid.value;
    let bystander = facts.bystander_pid.value;
    if let Some((pos, rc)) =
        replayed_at(o, "events_restart.jsonl", &run2, f.c.physoff, "4. restart")
    {
        let first_kernel = run2.iter().position(|i| i.seq().is_some());
        o.check(
            "4. the restarted agent replayed the pending record at start (before any kernel event)",
            field::id(rc) == Some(ids.c) && first_kernel.is_none_or(|k| pos < k),
            format!("journaled id {:?}; {}", Some(ids.c), brief(rc)),
        );
        check_file_owners(
            o,
            "4. replay of c names /mnt/c and its damaged file range",
            rc,
            &[f.c.ino],
            f.c.page,
        );
        let d = replayed(rc).map_or(&[][..], |(_, r)| r.decisions.as_slice());
        o.check(
            "4. replay decided on exactly the victim: signalled",
            d.len() == 1 && Some(d[0].pid) == victim && d[0].action == Act::Signalled,
            format!("victim pid {victim:?}; {}", owners_brief(rc)),
        );
    }
    let enf2 = enforcements(&run2);
    let enf2_brief = enf2
        .iter()
        .map(|(_, _, i)| brief(i))
        .collect::<Vec<_>>()
        .join("\n");
    o.check(
        "4. one enforcement record: the victim's pid, signalled SIGBUS under policy sigbus",
        matches!(enf2.as_slice(), [(id, d, _)] if Some(d.pid) == victim
            && *id == ids.c
            && d.action == Act::Signalled
            && d.signal.as_deref() == Some("SIGBUS")
            && d.policy == Policy::Sigbus),
        format!(
            "victim pid {victim:?}, record id {:?}; enforcement records:\n{enf2_brief}",
            Some(ids.c)
        ),
    );
    o.check(
        "4. no enforcement record names the bystander",
        bystander.is_some() && !enf2.iter().any(|(_, d, _)| Some(d.pid) == bystander),
        format!("bystander pid {bystander:?}; {enf2_brief}"),
    );
    o.fact_eq(
        "4. the victim died of SIGBUS (wait status 135)",
        &facts.victim_exit,
        135,
    );
    o.fact_eq(
        "4. the bystander was still alive after the replay",
        &facts.bystander_alive_after_replay,
        true,
    );
    o.fact_eq(
        "4. the bystander (another file) ended by our SIGTERM (143), not SIGBUS",
        &facts.bystander_exit,
        143,
    );
    reflink_and_header(o, ev, f, ids, &run2);
}

/// 5 and 6, journaled by the restarted agent and replayed at the next ready edge.
fn reflink_and_header(o: &mut Outcome, ev: &Evidence, f: &Files, ids: Ids, run2: &[&Item]) {
    let (rf, meta) = (f.r1.physoff, f.meta);
    let Some(ix) = o.seq(
        "5+6. unmounted: reflinked r1 and AG 0 header journaled no_holder -> get_tree_exit(0) -> both replayed",
        run2,
        &[
            Step::new(Kind::Journaled)
                .dax_offset(rf)
                .reason(Reason::NoHolder)
                .disk("pmem0"),
            Step::new(Kind::Journaled)
                .dax_offset(meta)
                .reason(Reason::NoHolder)
                .disk("pmem0"),
            Step::mount(Phase::GetTreeExit).ret(0),
            Step::new(Kind::Replayed).dax_offset(rf).mount_point("/mnt"),
            Step::new(Kind::Replayed).dax_offset(meta).mount_point("/mnt"),
        ],
    ) else {
        return;
    };
    let (jr, jm, rr, rm) = (run2[ix[0]], run2[ix[1]], run2[ix[3]], run2[ix[4]]);
    let (id_r, id_m) = (field::id(rr), field::id(rm));
    o.check(
        "5+6. replayed ids are the journaled ones",
        field::id(jr).is_some() && id_r == field::id(jr) && id_m == field::id(jm),
        format!(
            "{} / {} -> {} / {}",
            brief(jr),
            brief(jm),
            brief(rr),
            brief(rm)
        ),
    );
    check_file_owners(
        o,
        "5. replay of the reflinked block names both files (r1, r2) with the same range",
        rr,
        &[f.r1.ino, f.r2.ino],
        f.r1.page,
    );
    let shared = replayed(rr)
        .map(|(_, r)| file_owners(r))
        .unwrap_or_default();
    o.check(
        "5. both owners are marked shared",
        shared.iter().all(|w| w.shared) && shared.len() == 2,
        owners_brief(rr),
    );
    let meta_only = replayed(rm).is_some_and(|(_, r)| {
        !r.owners.is_empty() && r.owners.iter().all(|w| w.metadata) && r.error.is_none()
    });
    o.check(
        "6. replay of the AG 0 header reports metadata owners only, no error",
        meta_only,
        owners_brief(rm),
    );
    // Metadata damage is never a surprise shutdown: by default the record carries the repair
    // advice and the filesystem stays up (no shutdown of ours, none reported by XFS).
    let advised = replayed(rm).is_some_and(|(_, r)| {
        r.advice
            .iter()
            .any(|a| a.contains("metadata is damaged") && a.contains("xfs_repair"))
    });
    let shut = run2.iter().any(|i| {
        matches!(i, Item::Record(AgentRecord::MetadataShutdown { .. }))
            || matches!(i, Item::FsError(e) if e.what == FsErrorKind::Shutdown)
    });
    o.check(
        "6. the AG 0 header's record advises unmount and xfs_repair; the filesystem stays up",
        advised && !shut,
        format!(
            "advice: {:?}; a shutdown in the stream: {shut}",
            replayed(rm).map(|(_, r)| &r.advice)
        ),
    );
    let no_decisions = |i: &Item| replayed(i).is_some_and(|(_, r)| r.decisions.is_empty());
    let enf2 = enforcements(run2);
    o.check(
        "5+6. nobody maps them: no decisions, no enforcement record",
        no_decisions(rr)
            && no_decisions(rm)
            && !enf2
                .iter()
                .any(|(id, _, _)| Some(*id) == id_r || Some(*id) == id_m),
        format!("{}\n{}", owners_brief(rr), owners_brief(rm)),
    );
    if let (Some(ir), Some(im)) = (id_r, id_m) {
        // Run 3 must not change anything: checked on the listing after it.
        check_journal(
            o,
            &ev.results,
            ev,
            "journal_end",
            &[
                (ids.a, Status::Replayed),
                (ids.b, Status::Replayed),
                (ids.c, Status::Replayed),
                (ir, Status::Replayed),
                (im, Status::Replayed),
            ],
        );
    }
}

/// Run 3: nothing pending, nothing replayed, nobody signalled.
fn again(o: &mut Outcome, ev: &Evidence, facts: &Facts) {
    let Some(run3) = later_run(o, ev, "agent_again", "events_again.jsonl") else {
        return;
    };
    let acted: Vec<String> = run3
        .iter()
        .filter(|i| {
            [Kind::Replayed, Kind::Enforcement, Kind::Journaled]
                .iter()
                .any(|k| k.of(i))
        })
        .map(|i| brief(i))
        .collect();
    o.check(
        "a second restart replays nothing (no double kill)",
        acted.is_empty(),
        acted.join("\n"),
    );
    o.fact_eq(
        "a process mapping the replayed page survives the second restart",
        &facts.sentinel_alive_after_restart,
        true,
    );
    o.fact_eq(
        "the sentinel ended by our SIGTERM (143), not SIGBUS",
        &facts.sentinel_exit,
        143,
    );
}
