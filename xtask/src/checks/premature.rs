//! `premature`: an external log behind dm-delay makes the mount slow; a data page poisoned
//! during it: the write fails (EIO), XFS says "not ready", and the events show holder_get ->
//! mountfs_enter -> memory_failure -> notify_enter(not_born) -> xfs_notify_exit(-EIO) ->
//! notify_exit(-EIO) -> get_tree_exit(0).

use notify_model::{Item, Phase, Readiness, Verdict};

use crate::checks::{
    events::{EIO, PAGE, verdict},
    evidence::Evidence,
    outcome::Outcome,
    results::{Fact, Inject, Page, Results},
    steps::{Kind, Step},
};

/// What the script measured.
struct Facts {
    mkfs_rc: Fact<i32>,
    mount_rc: Fact<i32>,
    /// Written only when /mnt was already mounted when the page was poisoned.
    mounted_before_inject: bool,
    mount_secs: Fact<String>,
    inject: Inject,
    page: Page,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            mkfs_rc: r.fact("mkfs_rc"),
            mount_rc: r.fact("mount_rc"),
            mounted_before_inject: r.has("mounted_before_inject"),
            mount_secs: r.fact("mount_secs"),
            inject: Inject::read(r, "inject"),
            page: Page::read(r, ""),
        }
    }
}

pub fn check(o: &mut Outcome, ev: &Evidence, events: Option<&[&Item]>) {
    let r = Facts::read(&ev.results);
    o.fact_eq("mkfs.xfs with an external log succeeded", &r.mkfs_rc, 0);
    o.fact_eq("the slow mount succeeded", &r.mount_rc, 0);
    o.check(
        "the mount was still in progress at injection",
        !r.mounted_before_inject,
        format!("mount took {} s", r.mount_secs.raw_or("?")),
    );
    o.check(
        "corrupt-pfn write failed (XFS not ready: EIO)",
        r.inject.failed(),
        format!(
            "inject_rc={} err={}",
            r.inject.rc.raw_or("?"),
            r.inject.err.raw_or("?")
        ),
    );
    o.dmesg(
        &ev.dmesg,
        "filesystem is not ready for notify_failure()!",
        true,
    );
    o.dmesg(&ev.dmesg, "recovery action for dax page: Failed", true);
    let Some(items) = events else { return };
    let (Some(pfn), Some(off)) = (r.page.pfn.value, r.page.physoff.value) else {
        o.check(
            "script reported the data page's pfn",
            false,
            format!("{:?}", ev.results),
        );
        return;
    };
    o.seq(
        "mountfs_enter -> memory_failure -> notify_enter(not_born) -> xfs(-EIO) -> notify_exit(-EIO) -> get_tree_exit(0)",
        items,
        &[
            Step::new(Kind::HolderGet).dax_dev_known(),
            Step::mount(Phase::MountfsEnter),
            Step::new(Kind::MemoryFailureEnter).pfn(pfn),
            Step::new(Kind::NotifyEnter)
                .offset(off)
                .len(PAGE)
                .readiness(Readiness::NotBorn),
            Step::new(Kind::XfsNotifyExit).offset(off).ret(EIO),
            Step::new(Kind::NotifyExit).offset(off).ret(EIO),
            Step::mount(Phase::GetTreeExit).ret(0),
        ],
    );
    verdict(o, items, off, Verdict::Premature);
}
