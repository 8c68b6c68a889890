//! `tell`: damage the kernel dropped (a page poisoned while nothing was mounted) and damage it
//! never reported (sectors only listed in /sys/block/pmem0/badblocks, before the mount and
//! while mounted) are journaled by the agent and, once XFS is mounted, told to XFS itself
//! (Linux 7.0+: XFS_IOC_VERIFY_MEDIA with its report flag), which reports every owner through
//! FAN_FS_ERROR, a file nobody opened included. Before 7.0 XFS cannot be told, and every
//! replayed record says so. Either way the pmem driver refuses a new mapper's fault of a listed
//! page (the kernel's SIGBUS, seen by the sigbus probe) and a read of one (EIO), and a mapper
//! of a clean page lives.

use notify_model::{
    AgentRecord, EventData, Item,
    fserror::FsErrorKind,
    journal::{Reason, Status},
};

use crate::checks::{
    events::PAGE,
    evidence::Evidence,
    outcome::Outcome,
    replay_records::check_journal,
    results::{Fact, Inject, Results},
};

/// SIGBUS si_code of a DAX fault on a listed sector: BUS_ADRERR on 6.1, BUS_MCEERR_AR later.
const BUS_ADRERR: i32 = 2;
const BUS_MCEERR_AR: i32 = 4;

/// One file page of the scenario: `<k>_ino`, `<k>_physoff` (its byte offset on pmem0).
struct FilePage {
    ino: Fact<u64>,
    physoff: Fact<u64>,
}

impl FilePage {
    fn read(r: &Results, key: &'static str) -> FilePage {
        FilePage {
            ino: r.fact(format!("{key}_ino")),
            physoff: r.fact(format!("{key}_physoff")),
        }
    }
}

/// The kernel's major version from `uname -r` ("7.3.4+deb13-amd64" -> 7).
pub fn kernel_major(release: &str) -> Option<u32> {
    release.split('.').next()?.parse().ok()
}

/// Whether the guest's XFS can be told (XFS_IOC_VERIFY_MEDIA is Linux 7.0 and later).
pub fn xfs_can_be_told(r: &Results) -> Option<bool> {
    let k: Fact<String> = r.fact("kernel");
    Some(kernel_major(k.value.as_deref()?)? >= 7)
}

fn records<'a>(items: &'a [&'a Item]) -> impl Iterator<Item = &'a AgentRecord> {
    items.iter().filter_map(|i| match i {
        Item::Record(r) => Some(r),
        _ => None,
    })
}

/// The journal id of the record journaled for the page at `off` (a page) with `reason`.
fn journaled(items: &[&Item], off: u64, reason: Reason) -> Option<u64> {
    records(items).find_map(|r| match r {
        AgentRecord::Journaled {
            id,
            reason: why,
            dax_offset,
            len,
            ..
        } if *why == reason && *dax_offset == off && *len == PAGE => Some(*id),
        _ => None,
    })
}

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    script(o, r);
    let Some(told) = xfs_can_be_told(r) else {
        o.check(
            "the script said which kernel ran",
            false,
            r.fact::<String>("kernel").shown(),
        );
        return;
    };
    let want_code = if r.fact::<String>("kernel").raw_or("").starts_with("6.1.") {
        BUS_ADRERR
    } else {
        BUS_MCEERR_AR
    };
    o.fact_eq(
        "a new mapper of a listed page died of SIGBUS (exit 135)",
        &r.fact::<i32>("mapper_exit"),
        135,
    );
    o.fact_eq(
        "its SIGBUS is the pmem driver's refusal of the fault",
        &r.fact::<i32>("mapper_sicode"),
        want_code,
    );
    o.fact_nonzero(
        "a read of a listed page of a never-opened file failed",
        &r.fact::<i64>("read_u_rc"),
    );
    o.fact_eq(
        "the mapper of a clean page lived (exit 0)",
        &r.fact::<i32>("bystander_exit"),
        0,
    );
    let Some(items) = items else { return };
    let pages = ["s", "t", "u", "v"].map(|k| FilePage::read(r, k));
    let (Some(s), Some(t), Some(u), Some(v)) = (
        pages[0].physoff.value,
        pages[1].physoff.value,
        pages[2].physoff.value,
        pages[3].physoff.value,
    ) else {
        o.check(
            "script reported every file's offset",
            false,
            pages
                .iter()
                .map(|p| p.physoff.shown())
                .collect::<Vec<_>>()
                .join(" "),
        );
        return;
    };
    let ids = [
        (
            "s (dropped: no holder)",
            journaled(items, s, Reason::NoHolder),
        ),
        (
            "t (dropped: premature)",
            journaled(items, t, Reason::Premature),
        ),
        (
            "u (only listed, unmounted)",
            journaled(items, u, Reason::Badblocks),
        ),
        (
            "v (listed while mounted)",
            journaled(items, v, Reason::Badblocks),
        ),
    ];
    for (what, id) in &ids {
        o.check(format!("journaled {what}"), id.is_some(), format!("{id:?}"));
    }
    let mapper_pid = r.fact::<u32>("mapper_pid").value;
    let sigbus = items.iter().find_map(|i| match &i.kernel()?.data {
        EventData::Sigbus { target, code, .. } if Some(*target) == mapper_pid => Some(*code),
        _ => None,
    });
    o.check(
        "the sigbus probe saw the kernel's SIGBUS to the mapper",
        sigbus == Some(want_code),
        format!("mapper {mapper_pid:?}: si_code {sigbus:?}, want {want_code}"),
    );
    for ((what, id), page) in ids.iter().zip(&pages) {
        let Some(id) = id else { continue };
        replayed(o, items, *id, what, page, told);
    }
    if told {
        xfs_reports(o, r, items, &pages);
    }
    let want: Vec<(u64, Status)> = ids
        .iter()
        .filter_map(|(_, id)| *id)
        .map(|id| (id, Status::Replayed))
        .collect();
    check_journal(o, r, ev, "journal_end", &want);
}

/// Record `id` (page `page`) was replayed; told to XFS on 7.0+ (its failed read, XFS's report
/// of the owner, the owner's fs_error), on older kernels with the advice that XFS could not be.
fn replayed(o: &mut Outcome, items: &[&Item], id: u64, what: &str, page: &FilePage, told: bool) {
    let rep = records(items).find_map(|r| match r {
        AgentRecord::Replayed { id: i, report, .. } if *i == id => Some(report),
        _ => None,
    });
    let Some(rep) = rep else {
        o.check(
            format!("replayed {what}"),
            false,
            format!("no replayed {id}"),
        );
        return;
    };
    let ino = page.ino.value;
    let owners: Vec<Option<u64>> = rep.owners.iter().map(|w| w.ino).collect();
    o.check(
        format!("replayed {what}: its owner is the file"),
        ino.is_some() && owners.contains(&ino),
        format!("owners {owners:?}, want {}", page.ino.shown()),
    );
    let cannot = rep.advice.iter().any(|a| a.contains("could not be told"));
    if !told {
        o.check(
            format!("replayed {what}: says XFS could not be told on this kernel"),
            !rep.xfs_told && cannot,
            format!("xfs_told {} advice {:?}", rep.xfs_told, rep.advice),
        );
        return;
    }
    o.check(
        format!("replayed {what}: XFS was told"),
        rep.xfs_told && !cannot,
        format!("xfs_told {} advice {:?}", rep.xfs_told, rep.advice),
    );
    let sector = page.physoff.value.map(|p| p / 512);
    let told_rec = records(items).find_map(|r| match r {
        AgentRecord::XfsTold {
            id: i, bad, error, ..
        } if *i == id => Some((bad.clone(), error.clone())),
        _ => None,
    });
    o.check(
        format!("told {what}: XFS's read of its sectors failed"),
        told_rec.as_ref().is_some_and(|(bad, err)| {
            err.is_none()
                && bad
                    .iter()
                    .any(|&(s, n)| sector.is_some_and(|x| x >= s && x < s + n))
        }),
        format!("{told_rec:?}, want a failed read at sector {sector:?}"),
    );
    let reported = records(items).find_map(|r| match r {
        AgentRecord::XfsReported {
            id: i,
            reported,
            missing,
            ..
        } if *i == id => Some((reported.clone(), missing.clone())),
        _ => None,
    });
    o.check(
        format!("told {what}: XFS reported the owner itself, none missing"),
        reported
            .as_ref()
            .is_some_and(|(rep, miss)| ino.is_some_and(|x| rep.contains(&x)) && miss.is_empty()),
        format!("{reported:?}, want {}", page.ino.shown()),
    );
}

/// What the guest script itself did: mounts, listings, drops, the driver's clearing.
fn script(o: &mut Outcome, r: &Results) {
    for key in ["mount_rc", "mount2_rc", "umount_rc"] {
        o.fact_eq(&format!("{key} is 0"), &r.fact::<i32>(key), 0);
    }
    for k in ["s", "t", "u", "v"] {
        o.fact_eq(
            &format!("listing page {k}'s sectors in /sys/block/pmem0/badblocks succeeded"),
            &r.fact::<i32>(format!("{k}_bad_rc")),
            0,
        );
    }
    for (key, what) in [
        (
            "inject_s",
            "corrupt-pfn of s with nothing mounted failed (no holder)",
        ),
        (
            "inject_t",
            "corrupt-pfn of t while mounting failed (XFS not ready)",
        ),
    ] {
        let inject = Inject::read(r, key);
        o.check(what, inject.failed(), inject.shown());
    }
    o.check(
        "the slow mount was still under way at the poison",
        !r.has("mounted_before_inject"),
        r.fact::<String>("mounted_before_inject").shown(),
    );
    let listed: Fact<String> = r.fact("badblocks_listed");
    let end: Fact<String> = r.fact("badblocks_end");
    o.check(
        "pmem0 listed the sectors, and a write through the driver cleared them",
        listed.value.as_deref().is_some_and(|l| !l.is_empty()) && end.is(&String::new()),
        format!("{} {}", listed.shown(), end.shown()),
    );
}

/// XFS's own reports in the stream (7.0+): every damaged file named or counted, the shutdown.
fn xfs_reports(o: &mut Outcome, r: &Results, items: &[&Item], pages: &[FilePage]) {
    // The stream's own group: fanotify folds a burst's unread reports into one event
    // (error_count), so a file is either named or counted there.
    let inos: Vec<u64> = pages.iter().filter_map(|p| p.ino.value).collect();
    let (mut named, mut folded) = (0usize, 0u32);
    for i in items {
        if let Item::FsError(e) = i
            && e.what == FsErrorKind::DataLost
        {
            named += usize::from(e.ino.is_some_and(|x| inos.contains(&x)));
            folded += e.error_count.saturating_sub(1);
        }
    }
    o.check(
        "the stream's fs_error data_lost reports name or count every damaged file",
        named + folded as usize >= inos.len() && named > 0,
        format!("{named} named, {folded} folded, {} files", inos.len()),
    );
    let shut = items.iter().any(|i| match i {
        Item::FsError(e) => e.what == FsErrorKind::Shutdown,
        _ => false,
    });
    o.check(
        "XFS reported its shutdown (fs_error shutdown)",
        shut,
        r.fact::<i32>("shutdown_rc").shown(),
    );
}
