//! `redrive`: the opt-in kernel re-drive (`notify agent --redrive`). Two pages dropped while
//! nothing was mounted; after the mount (agent down) a victim maps page a with early kill and
//! a is listed bad. The restarted agent writes a's page to hard_offline_page: memory_failure()
//! runs into the ready XFS, which kills the victim (BUS_MCEERR_AO), the kill seen by the sigbus
//! probe and tied to the notification; b, never listed, is refused; on a third start, on the
//! same mount, a is refused too.

use notify_model::{AgentRecord, Item, Verdict, decision::Act};

use crate::checks::{evidence::Evidence, outcome::Outcome, replay_records::later_run};

/// si_code of an action-optional memory error: the kernel's early kill.
const BUS_MCEERR_AO: i32 = 5;

fn refused(items: &[&Item]) -> Vec<(u64, String)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Record(AgentRecord::RedriveRefused { id, why, .. }) => Some((*id, why.clone())),
            _ => None,
        })
        .collect()
}

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    o.fact_eq("mount succeeded", &r.fact::<i32>("mount_rc"), 0);
    o.fact_eq("the second mount succeeded", &r.fact::<i32>("mount2_rc"), 0);
    o.fact_eq("listing a's page succeeded", &r.fact::<i32>("a_bad_rc"), 0);
    o.fact_eq(
        "the early-kill victim died of SIGBUS (exit 135)",
        &r.fact::<i32>("victim_exit"),
        135,
    );
    o.fact_eq(
        "its SIGBUS is XFS's early kill (BUS_MCEERR_AO)",
        &r.fact::<i32>("victim_sicode"),
        BUS_MCEERR_AO,
    );
    o.check(
        "a write through the driver cleared the listed sectors",
        r.fact::<String>("badblocks_end").is(&String::new()),
        r.fact::<String>("badblocks_end").shown(),
    );
    if items.is_none() {
        return;
    }
    let (Some(first), Some(again)) = (
        later_run(o, ev, "agent_redrive", "events_redrive.jsonl"),
        later_run(o, ev, "agent_again", "events_again.jsonl"),
    ) else {
        return;
    };
    let ids: Vec<(u64, u64)> = items
        .into_iter()
        .flatten()
        .filter_map(|i| match i {
            Item::Record(AgentRecord::Journaled { id, dax_offset, .. }) => Some((*id, *dax_offset)),
            _ => None,
        })
        .collect();
    let id_of = |key: &str| {
        let off = r.fact::<u64>(format!("{key}_physoff")).value?;
        ids.iter().find(|(_, o)| *o == off).map(|(id, _)| *id)
    };
    let (Some(a), Some(b)) = (id_of("a"), id_of("b")) else {
        o.check("journaled a and b", false, format!("{ids:?}"));
        return;
    };
    let redriven = first.iter().find_map(|i| match i {
        Item::Record(AgentRecord::Redriven {
            id, phys, error, ..
        }) if *id == a => Some((phys.clone(), error.clone())),
        _ => None,
    });
    let pfn = r.fact::<u64>("a_pfn").value;
    o.check(
        "a re-driven: its page's physical address written to hard_offline_page",
        redriven.as_ref().is_some_and(|(phys, err)| {
            err.is_none() && pfn.is_some_and(|p| phys == &vec![p * 4096])
        }),
        format!("{redriven:?}, pfn {pfn:?}"),
    );
    let pid = r.fact::<u32>("victim_pid").value;
    let kill = first.iter().find_map(|i| match i {
        Item::Notification(n) if n.data.pfn == pfn && n.data.verdict == Verdict::Delivered => {
            Some(n.data.kills.clone())
        }
        _ => None,
    });
    o.check(
        "XFS handled the re-driven notification and its kill is the victim's (BUS_MCEERR_AO)",
        kill.as_ref().is_some_and(|k| {
            k.iter()
                .any(|k| Some(k.target) == pid && k.code == BUS_MCEERR_AO)
        }),
        format!("{kill:?}, victim {pid:?}"),
    );
    let no_policy_signal = first.iter().all(|i| {
        !matches!(i, Item::Record(AgentRecord::Enforcement { decision, .. })
            if decision.action == Act::Signalled)
    });
    o.check(
        "the policy signalled no one (a re-driven record's mappers are XFS's to kill)",
        no_policy_signal,
        "",
    );
    let r1 = refused(&first);
    o.check(
        "b refused: not in the bad-block list",
        r1.iter()
            .any(|(id, why)| *id == b && why.contains("bad-block list"))
            && r1.len() == 1,
        format!("{r1:?}"),
    );
    let r2 = refused(&again);
    o.check(
        "the next start, same mount: a refused as already re-driven",
        r2.iter()
            .any(|(id, why)| *id == a && why.contains("already re-driven")),
        format!("{r2:?}"),
    );
    let again_redriven = again
        .iter()
        .any(|i| matches!(i, Item::Record(AgentRecord::Redriven { .. })));
    o.check("nothing re-driven twice", !again_redriven, "");
}
