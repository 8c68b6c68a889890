//! `no_holder`: nothing mounted on pmem0, a page poisoned with `corrupt-pfn`: the write fails
//! (EBUSY), memory_failure -> notify_enter(no_holder) -> notify_exit(-EOPNOTSUPP), XFS never
//! called.

use notify_model::{Item, Readiness, Verdict};

use crate::checks::{
    events::{EOPNOTSUPP, PAGE, pfn_offset, verdict},
    evidence::Evidence,
    outcome::Outcome,
    results::{Fact, Inject},
    steps::{Kind, Step},
};

/// What the script measured.
struct Facts {
    /// The poisoned pfn.
    pfn: Fact<u64>,
    inject: Inject,
}

impl Facts {
    fn read(ev: &Evidence) -> Facts {
        Facts {
            pfn: ev.results.fact("pfn"),
            inject: Inject::read(&ev.results, "inject"),
        }
    }
}

pub fn check(o: &mut Outcome, ev: &Evidence, events: Option<&[&Item]>) {
    let r = Facts::read(ev);
    o.check(
        "corrupt-pfn write failed (no holder: EBUSY)",
        r.inject.failed(),
        format!(
            "inject_rc={} err={}",
            r.inject.rc.raw_or("?"),
            r.inject.err.raw_or("?")
        ),
    );
    o.dmesg(&ev.dmesg, "recovery action for dax page: Failed", true);
    let (Some(ev), Some(pfn)) = (events, r.pfn.value) else {
        return;
    };
    let Some(off) = pfn_offset(pfn) else {
        o.check(
            "the poisoned pfn is on pmem0",
            false,
            format!("pfn {pfn:#x}"),
        );
        return;
    };
    o.seq(
        "memory_failure -> notify_enter(no_holder) -> notify_exit(-EOPNOTSUPP)",
        ev,
        &[
            Step::new(Kind::MemoryFailureEnter).pfn(pfn),
            Step::new(Kind::NotifyEnter)
                .offset(off)
                .len(PAGE)
                .readiness(Readiness::NoHolder),
            Step::new(Kind::NotifyExit).offset(off).ret(EOPNOTSUPP),
        ],
    );
    verdict(o, ev, off, Verdict::NoHolder);
    let xfs = ev.iter().filter(|e| Kind::XfsNotifyExit.of(e)).count();
    o.check(
        "XFS was not called",
        xfs == 0,
        format!("{xfs} xfs_notify_exit events"),
    );
}
