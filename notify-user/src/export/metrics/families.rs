//! The list of every family the registry exports, with its type and label names: what the
//! dashboard and alert rules in packaging/ are checked against (a family with labels has no
//! line in /metrics until its first sample, so a scrape alone cannot tell). The unit test
//! `families_list_is_what_the_registry_renders` holds this list to the registry.

/// A family: its sample name as scraped (`_total` for counters), type, label names.
pub struct FamilyInfo {
    pub sample: &'static str,
    pub kind: &'static str,
    pub labels: &'static [&'static str],
}

const fn f(
    sample: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
) -> FamilyInfo {
    FamilyInfo {
        sample,
        kind,
        labels,
    }
}

pub const FAMILIES: &[FamilyInfo] = &[
    f("notify_events_total", "counter", &["kind"]),
    f("notify_notifications_total", "counter", &["dev", "verdict"]),
    f("notify_journaled_total", "counter", &["disk", "reason"]),
    f("notify_unidentified_total", "counter", &[]),
    f("notify_journal_write_failures_total", "counter", &["op"]),
    f("notify_replayed_total", "counter", &["disk", "result"]),
    f("notify_owners_resolved_total", "counter", &["kind"]),
    f(
        "notify_enforcement_decisions_total",
        "counter",
        &["action", "reason_class", "signal"],
    ),
    f("notify_xfs_told_total", "counter", &["disk", "result"]),
    f("notify_xfs_owners_total", "counter", &["result"]),
    f("notify_journal_closed_total", "counter", &[]),
    f("notify_redrives_total", "counter", &["result"]),
    f("notify_device_removals_total", "counter", &[]),
    f("notify_fs_errors_total", "counter", &["dev", "what"]),
    f("notify_sigbus_total", "counter", &["code"]),
    f(
        "notify_health_events_total",
        "counter",
        &["dev", "domain", "what"],
    ),
    f("notify_kernel_kills_total", "counter", &["dev", "code"]),
    f("notify_mount_not_visible_total", "counter", &[]),
    f("notify_journal_recoveries_total", "counter", &[]),
    f("notify_ringbuf_lost_events_total", "counter", &[]),
    f("notify_sequence_gaps_total", "counter", &[]),
    f("notify_undecodable_events_total", "counter", &[]),
    f("notify_journal_pending", "gauge", &[]),
    f("notify_probes_attached", "gauge", &["method"]),
    f("notify_probes_required_missing", "gauge", &[]),
    f("notify_config_reloads_total", "counter", &["result"]),
    f("notify_start_time_seconds", "gauge", &[]),
    f("notify_build_info", "gauge", &["version"]),
    f("notify_kernel_info", "gauge", &["release"]),
];
