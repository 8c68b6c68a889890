//! `remount`: umount (holder_put), mount (holder_get, get_tree_exit 0), the victim poisons
//! page 8: born again, and delivered to the fresh holder.

use notify_model::{Item, Phase};

use crate::checks::{
    evidence::Evidence,
    mounted::{born_path, victim_killed},
    outcome::Outcome,
    results::{Fact, Results, Victim},
    steps::{Kind, Step, field},
};

/// What the script measured.
struct Facts {
    umount_rc: Fact<i32>,
    mount_rc: Fact<i32>,
    victim: Victim,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            umount_rc: r.fact("umount_rc"),
            mount_rc: r.fact("mount_rc"),
            victim: Victim::read(r),
        }
    }
}

pub fn check(o: &mut Outcome, ev: &Evidence, events: Option<&[&Item]>) {
    let r = Facts::read(&ev.results);
    o.fact_eq("umount succeeded", &r.umount_rc, 0);
    o.fact_eq("mount again succeeded", &r.mount_rc, 0);
    victim_killed(o, &r.victim, &ev.dmesg);
    let Some(items) = events else { return };
    let Some(idx) = born_path(
        o,
        "holder_put -> holder_get -> get_tree_exit(0) -> memory_failure -> notify(born) -> XFS(0)",
        &ev.results,
        items,
        vec![
            Step::new(Kind::HolderPut),
            Step::new(Kind::HolderGet).holder_known(),
            Step::mount(Phase::GetTreeExit).ret(0),
        ],
    ) else {
        return;
    };
    let (get, notify) = (items[idx[1]], items[idx[4]]);
    let (h_get, h_notify) = (field::holder(get), field::holder(notify));
    o.check(
        "the notification went to the fresh holder",
        h_get.is_some() && h_get == h_notify,
        format!("holder_get holder={h_get:x?} notify_enter holder={h_notify:x?}"),
    );
}
