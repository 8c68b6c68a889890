//! `mounted`: XFS on fsdax (rmapbt, reflink), the victim poisons page 0 of its file with
//! MADV_HWPOISON and dies of SIGBUS (BUS_MCEERR_AR); a bystander mapping another file
//! survives; memory_failure -> notify_enter(born) -> xfs_notify_exit(0) -> notify_exit(0).
//! The victim and the born path are shared with `remount`.

use notify_model::{Item, Readiness};

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
        born_path(
            o,
            "memory_failure -> notify_enter(born) -> xfs_notify_exit(0) -> notify_exit(0)",
            &ev.results,
            items,
            Vec::new(),
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
