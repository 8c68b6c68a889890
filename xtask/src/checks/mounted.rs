//! `mounted`: XFS on fsdax (rmapbt, reflink), the victim poisons page 0 of its file with
//! MADV_HWPOISON and dies of SIGBUS (BUS_MCEERR_AR); a bystander mapping another file
//! survives; memory_failure -> notify_enter(born) -> xfs_notify_exit(0) -> notify_exit(0).
//! The victim and the born path are shared with `remount`.

use notify_model::{DevFrom, Item, Readiness, Verdict, fserror::FsErrorKind};

use crate::checks::{
    events::{BUS_MCEERR_AR, PAGE, pfn_offset},
    evidence::Evidence,
    outcome::Outcome,
    results::{Fact, Page, Results, Victim},
    steps::{Kind, Step},
};

/// What the script measured.
struct Facts {
    mkfs_rc: Fact<i32>,
    mount_rc: Fact<i32>,
    victim: Victim,
    bystander_exit: Fact<i32>,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            mkfs_rc: r.fact("mkfs_rc"),
            mount_rc: r.fact("mount_rc"),
            victim: Victim::read(r),
            bystander_exit: r.fact("bystander_exit"),
        }
    }
}

pub fn check(o: &mut Outcome, ev: &Evidence, events: Option<&[&Item]>) {
    let r = Facts::read(&ev.results);
    o.fact_eq("mkfs.xfs succeeded", &r.mkfs_rc, 0);
    o.fact_eq("mount -o dax=always succeeded", &r.mount_rc, 0);
    victim_killed(o, &r.victim, &ev.dmesg);
    o.fact_eq("bystander (another file) survived", &r.bystander_exit, 0);
    o.dmesg(&ev.dmesg, "recovery action for dax page: Recovered", true);
    if let Some(items) = events {
        crate::checks::mapper_scans::check(o, ev);
        born_path(
            o,
            "memory_failure -> notify_enter(born) -> xfs_notify_exit(0) -> notify_exit(0)",
            &ev.results,
            items,
            Vec::new(),
        );
        attributed(o, &ev.results, items);
    }
}

/// The agent started after the mount, so only the probe's read of the holder's superblock can
/// name the notification's device; the SIGBUS the kernel sent while handling it is the
/// victim's; on 7.0+ XFS's own data-loss report for the file follows it.
fn attributed(o: &mut Outcome, r: &Results, items: &[&Item]) {
    let off = r.fact::<u64>("physoff").value;
    let n = items.iter().find_map(|i| match i {
        Item::Notification(n) if Some(n.data.offset) == off => Some(n),
        _ => None,
    });
    let Some(n) = n else {
        o.check(
            "a notification for the page",
            false,
            format!("offset {off:?}"),
        );
        return;
    };
    let d = &n.data;
    o.check(
        "the notification names its device, read from the superblock (agent started after mount)",
        d.verdict == Verdict::Delivered
            && d.dev.major() != 0
            && d.dev_from == Some(DevFrom::Superblock),
        format!(
            "verdict {:?} dev {} dev_from {:?}",
            d.verdict, d.dev, d.dev_from
        ),
    );
    let pid = r.fact::<u32>("victim_pid").value;
    o.check(
        "the kernel's kill is the victim's: a BUS_MCEERR_AR SIGBUS tied to the notification",
        d.kills.len() == 1
            && d.kills
                .iter()
                .all(|k| Some(k.target) == pid && k.code == BUS_MCEERR_AR),
        format!("kills {:?}, victim {pid:?}", d.kills),
    );
    let kernel = r.fact::<String>("kernel");
    let Some(major) = kernel
        .value
        .as_deref()
        .and_then(crate::checks::tell::kernel_major)
    else {
        return; // recorded before the script said its kernel
    };
    if major >= 7 {
        let ino = r.fact::<u64>("victim_ino").value;
        let report = items.iter().find_map(|i| match i {
            Item::FsError(e) if e.what == FsErrorKind::DataLost && e.ino == ino => Some(e),
            _ => None,
        });
        o.check(
            "fserror: XFS reported the victim's file lost, tied to the notification",
            report.is_some_and(|e| e.notification_seq == Some(n.at.seq)),
            format!("{report:?}, notification seq {}", n.at.seq),
        );
    }
}

/// The victim died of the SIGBUS the kernel sent for its own page.
pub fn victim_killed(o: &mut Outcome, v: &Victim, dmesg: &str) {
    o.fact_eq("victim died of SIGBUS (exit 135)", &v.exit, 135);
    o.fact_eq(
        "victim's SIGBUS is BUS_MCEERR_AR (si_code 4)",
        &v.sicode,
        BUS_MCEERR_AR,
    );
    o.dmesg(dmesg, "Sending SIGBUS to victim", true);
}

/// The kernel path of a poisoned page that XFS handled, after the steps `first`: the indices
/// of every step.
pub fn born_path(
    o: &mut Outcome,
    what: &str,
    r: &Results,
    items: &[&Item],
    first: Vec<Step>,
) -> Option<Vec<usize>> {
    let page = Page::read(r, "");
    let (Some(pfn), Some(off)) = (page.pfn.value, page.physoff.value) else {
        o.check(
            "victim reported its pfn and physoff",
            false,
            format!("{r:?}"),
        );
        return None;
    };
    o.check(
        "pfn matches the file's physical offset",
        pfn_offset(pfn) == Some(off),
        format!(
            "pfn {pfn:#x} -> offset {:x?}, FIEMAP {off:#x}",
            pfn_offset(pfn)
        ),
    );
    let mut steps = first;
    steps.extend([
        Step::new(Kind::MemoryFailureEnter).pfn(pfn),
        Step::new(Kind::NotifyEnter)
            .offset(off)
            .len(PAGE)
            .readiness(Readiness::Born),
        Step::new(Kind::XfsNotifyExit).offset(off).len(PAGE).ret(0),
        Step::new(Kind::NotifyExit).offset(off).len(PAGE).ret(0),
    ]);
    o.seq(what, items, &steps)
}
