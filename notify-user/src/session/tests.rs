//! The report's unit tests, on sessions recorded in the VM lab (xtask/tests/fixtures).

use std::path::Path;

use notify_model::{
    Dev, EventData, Item, State, TraceEvent, Verdict,
    session::{ExitStatus, FORMAT, Lost, SessionFile, VERSION},
};

use crate::session::{
    svg::{ALL_STATES, ALL_VERDICTS, render_svg, verdict_colour},
    text::render_text,
    timeline::Timeline,
};

/// The kernel event of an item, if it is one.
fn kernel(e: &Item) -> Option<&EventData> {
    e.kernel().map(|k| &k.data)
}

fn fixture(name: &str) -> Vec<Item> {
    crate::stream::recorded::items(&format!("{name}/events.jsonl"))
}

fn session(events: Vec<Item>) -> SessionFile {
    SessionFile {
        format: FORMAT.into(),
        version: VERSION,
        kernel: "6.12.0".into(),
        attach: "kprobe".into(),
        probes: vec![],
        lost: Lost::default(),
        command: vec!["sh".into(), "scenario".into()],
        exit_status: ExitStatus::Code(0),
        started_wall: "2025-01-01T00:00:00.000Z".into(),
        duration_ns: 1,
        error: None,
        devices: [("259:0".to_string(), "pmem0".to_string())].into(),
        events,
    }
}

const FLAVOURS: [&str; 4] = ["6.1-fentry", "6.1-kprobe", "6.12-fentry", "6.12-kprobe"];

#[test]
fn premature_fixture_a_notification_during_recovery() {
    for fl in FLAVOURS {
        let tl = Timeline::build(&fixture(&format!("{fl}/premature")));
        assert_eq!(tl.lanes.len(), 1, "{fl}: {:#?}", tl.lanes);
        let lane = &tl.lanes[0];
        assert_eq!(lane.devs.first(), Some(&Dev(259 << 20)), "{fl}");
        assert!(lane.dax_dev.is_some(), "{fl}");
        assert_eq!(
            lane.states(),
            [
                State::Registered,
                State::Mounting,
                State::Recovering,
                State::Mounting,
                State::MountDone,
                State::Ready
            ],
            "{fl}"
        );
        assert_eq!(lane.marks.len(), 1, "{fl}");
        let m = &lane.marks[0];
        assert_eq!(m.verdict, Verdict::Premature, "{fl}");
        assert_eq!(m.phase, Some(State::Recovering), "{fl}");
        // The notification lies inside the recovering band, in time and in seq.
        let rec = lane
            .bands
            .iter()
            .find(|b| b.state == State::Recovering)
            .unwrap();
        assert!(
            rec.start_ns <= m.t_ns && m.t_ns <= rec.end_ns.unwrap() && rec.seq < m.seq,
            "{fl}: {rec:?} {m:?}"
        );
        // The memory failure that raised it is on this device's lane.
        assert_eq!(lane.pfns.len(), 1, "{fl}");
        // Ordering: steps are in seq order, the first event at time 0.
        assert!(lane.steps.windows(2).all(|w| w[0].seq <= w[1].seq), "{fl}");
        assert_eq!(lane.steps[0].t_ns, 0, "{fl}");
        assert_eq!(lane.steps[0].kind, "fill_super_enter", "{fl}");
        // The mount(2) exit is attributed to the device through its process.
        assert!(
            lane.steps.iter().any(|s| s.kind == "syscall_exit"),
            "{fl}: {:#?}",
            lane.steps
        );
        assert!(tl.other.is_empty(), "{fl}: {:#?}", tl.other);
    }
}

#[test]
fn premature_text_timeline_in_order() {
    let evs = fixture("6.12-kprobe/premature");
    // What the text must show, taken from the recorded kernel events themselves.
    let dax = evs
        .iter()
        .find_map(|e| match kernel(e) {
            Some(EventData::HolderGet { dax_dev, .. }) => Some(*dax_dev),
            _ => None,
        })
        .expect("a holder_get");
    let n = evs
        .iter()
        .find_map(|e| match e {
            Item::Notification(n) => Some((n.at.seq, n.at.ktime_ns, n.data.enter_seq)),
            _ => None,
        })
        .expect("a notification");
    let t0 = evs.iter().filter_map(Item::ktime_ns).min().unwrap();
    let s = session(evs);
    let tl = Timeline::build(&s.events);
    let text = render_text(&s, &tl);
    assert!(
        text.contains(&format!("device 1: 259:0 (pmem0), dax {dax:#x}")),
        "{text}"
    );
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
    };
    // registration -> fill_super -> log recovery -> notification -> ready, in that order.
    let order = [
        "[new -> registered]",
        "[registered -> mounting]",
        "[mounting -> recovering]",
        "PREMATURE during recovering",
        "[recovering -> mounting]",
        "[mounting -> mount_done]",
        "[mount_done -> ready]",
        "notifications: 1 premature",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{} before {}:\n{text}", w[0], w[1]);
    }
    // Seq numbers and ms since the first event (the mount's fill_super_enter).
    let (seq, ktime, enter) = n;
    let line = text.lines().find(|l| l.contains("PREMATURE")).unwrap();
    assert!(line.contains(&format!(" {seq}  ")), "{line}");
    let ms = format!("{:.3}", (ktime - t0) as f64 / 1e6);
    assert!(line.contains(&ms), "{ms}: {line}");
    assert!(
        line.contains(&format!("(enter seq {})", enter.unwrap())),
        "{line}"
    );
    // The notify entry/returns it summarises are not repeated.
    for k in ["notify_enter", "xfs_notify_exit", "notify_exit"] {
        assert!(!text.contains(&format!(" {k} ")), "{k}:\n{text}");
    }
}

#[test]
fn external_log_release_is_not_a_second_release() {
    // The mount suite mounts with external logs: unmount calls fs_put_dax(NULL, holder) for
    // the log device. Every holder registered inside the session, so nothing is inferred.
    for fl in FLAVOURS {
        let p = format!(
            "{}/../xtask/tests/fixtures/{fl}/mount_suite/session.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let s = SessionFile::load(Path::new(&p)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.events
                .iter()
                .any(|e| matches!(kernel(e), Some(EventData::HolderPut { dax_dev: 0, .. }))),
            "{fl}: the fixture has a NULL-dax release"
        );
        let tl = Timeline::build(&s.events);
        for lane in &tl.lanes {
            let inferred: Vec<_> = lane.bands.iter().filter(|b| b.inferred).collect();
            assert!(inferred.is_empty(), "{fl}: inferred {inferred:?}");
        }
    }
}

#[test]
fn remount_fixture_unmount_release_then_a_new_holder() {
    for fl in FLAVOURS {
        let tl = Timeline::build(&fixture(&format!("{fl}/remount")));
        assert_eq!(tl.lanes.len(), 1, "{fl}: {:#?}", tl.lanes);
        let lane = &tl.lanes[0];
        assert_eq!(lane.holders.len(), 2, "{fl}: old and new holder");
        // The old holder was mounted before the session: its unmount and release are
        // inferred from the events, then the tracker follows the new mount.
        let states = lane.states();
        assert_eq!(
            states,
            [
                State::Unmounting,
                State::Released,
                State::Registered,
                State::Mounting,
                State::Recovering,
                State::Mounting,
                State::MountDone,
                State::Ready
            ],
            "{fl}"
        );
        assert!(lane.bands[0].inferred && lane.bands[1].inferred);
        assert!(!lane.bands[2].inferred);
        let m = &lane.marks[..];
        assert_eq!(m.len(), 1, "{fl}");
        assert_eq!(m[0].verdict, Verdict::Delivered, "{fl}");
        assert_eq!(m[0].phase, Some(State::Ready), "{fl}");
        // The umount(2) exit and the umount record belong to the device.
        for k in ["syscall_exit", "xfs_tracepoint", "put_super", "holder_put"] {
            assert!(lane.steps.iter().any(|s| s.kind == k), "{fl}: {k}");
        }
        // Bands tile the axis: each ends where the next starts.
        for w in lane.bands.windows(2) {
            assert_eq!(w[0].end_ns, Some(w[1].start_ns), "{fl}");
        }
        assert_eq!(lane.bands.last().unwrap().end_ns, None);
    }
}

#[test]
fn mounted_and_no_holder_fixtures() {
    for fl in FLAVOURS {
        let tl = Timeline::build(&fixture(&format!("{fl}/mounted")));
        assert_eq!(tl.lanes.len(), 1, "{fl}");
        let m = &tl.lanes[0].marks;
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].verdict, Verdict::Delivered, "{fl}");
        // Mounted before the session: no tracked state, the kernel said born.
        assert_eq!(m[0].phase, None);
        assert_eq!(m[0].phase_name(), "untracked, superblock born");
        assert!(tl.lanes[0].bands.is_empty());

        let tl = Timeline::build(&fixture(&format!("{fl}/no_holder")));
        assert_eq!(tl.lanes.len(), 1, "{fl}");
        let lane = &tl.lanes[0];
        assert!(lane.devs.is_empty() && lane.dax_dev.is_some(), "{fl}");
        assert_eq!(lane.marks[0].verdict, Verdict::NoHolder, "{fl}");
        assert_eq!(lane.marks[0].phase_name(), "no holder");
        assert_eq!(lane.pfns.len(), 1);
    }
}

#[test]
fn raw_events_get_their_verdicts_derived() {
    let raw: Vec<Item> = fixture("6.1-kprobe/premature")
        .into_iter()
        .filter(|e| !e.is_derived())
        .collect();
    let tl = Timeline::build(&raw);
    assert_eq!(tl.lanes[0].marks[0].verdict, Verdict::Premature);
    assert_eq!(tl.lanes[0].marks[0].phase, Some(State::Recovering));
    assert_eq!(tl, Timeline::build(&fixture("6.1-kprobe/premature")));
}

#[test]
fn two_devices_two_lanes() {
    // Two scenarios of different devices in one session: the no_holder one on another dax
    // device, shifted after the premature one.
    let mut evs = fixture("6.12-kprobe/premature");
    let last = evs.last().unwrap().clone();
    let other = fixture("6.1-fentry/no_holder");
    let first = other.iter().filter_map(Item::ktime_ns).min().unwrap();
    let other_dax = other
        .iter()
        .find_map(|e| match kernel(e) {
            Some(EventData::NotifyEnter { dax_dev, .. }) => Some(*dax_dev),
            _ => None,
        })
        .expect("a notify_enter");
    let (last_seq, last_ktime) = (last.seq().unwrap(), last.ktime_ns().unwrap());
    for mut e in other {
        let shift = |seq: &mut u64, ktime: &mut u64| {
            *seq += last_seq;
            *ktime = last_ktime + 1_000_000 + (*ktime - first);
        };
        match &mut e {
            Item::Kernel(k) => shift(&mut k.seq, &mut k.ktime_ns),
            Item::HolderState(d) => shift(&mut d.at.seq, &mut d.at.ktime_ns),
            Item::Notification(d) => {
                shift(&mut d.at.seq, &mut d.at.ktime_ns);
                d.data.exit_seq += last_seq;
                d.data.enter_seq = d.data.enter_seq.map(|s| s + last_seq);
            }
            Item::Record(_) | Item::FsError(_) | Item::Health(_) => {}
        }
        evs.push(e);
    }
    let s = session(evs);
    let tl = Timeline::build(&s.events);
    assert_eq!(tl.lanes.len(), 2);
    let svg = render_svg(&s, &tl);
    assert_eq!(svg.matches(r#"<g class="lane""#).count(), 2, "{svg}");
    assert!(svg.contains(r#"data-lane="259:0""#));
    assert!(
        svg.contains(&format!(r#"data-lane="{other_dax:#x}""#)),
        "{svg}"
    );
    assert_eq!(
        svg.matches(r#"class="marker verdict-premature""#).count(),
        1
    );
    assert_eq!(
        svg.matches(r#"class="marker verdict-no_holder""#).count(),
        1
    );
    assert_eq!(svg.matches(r#"class="pfn""#).count(), 2);
}

#[test]
fn svg_lanes_markers_legend() {
    for sc in ["premature", "remount", "mounted", "no_holder"] {
        let s = session(fixture(&format!("6.12-kprobe/{sc}")));
        let tl = Timeline::build(&s.events);
        let svg = render_svg(&s, &tl);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{sc}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{sc}");
        assert_eq!(
            svg.matches(r#"<g class="lane""#).count(),
            tl.lanes.len(),
            "{sc}: one lane per device"
        );
        let marks = tl.marks();
        assert_eq!(
            svg.matches(r#"<path class="marker "#).count(),
            marks.len(),
            "{sc}: a marker per notification"
        );
        for m in marks {
            let v = m.verdict;
            let needle = format!(r#"class="marker verdict-{}" d="#, v.name());
            let at = svg
                .find(&needle)
                .unwrap_or_else(|| panic!("{sc}: {needle}"));
            let tag = &svg[at..at + svg[at..].find('>').unwrap()];
            assert!(
                tag.contains(&format!(r#"fill="{}""#, verdict_colour(v))),
                "{tag}"
            );
        }
        // The legend names every state and verdict with its colour.
        for st in ALL_STATES {
            assert!(
                svg.contains(&format!(r#"class="legend-state state-{}" x="#, st.name())),
                "{sc}: legend {}",
                st.name()
            );
        }
        for v in ALL_VERDICTS {
            assert!(svg.contains(&format!("legend-verdict verdict-{}", v.name())));
        }
        // Bands in their state's colour.
        for b in tl.lanes.iter().flat_map(|l| &l.bands) {
            assert!(svg.contains(&format!(r#"class="band state-{}" "#, b.state.name())));
        }
        // Well formed enough for a strict reader: every element opened is closed.
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
    }
    let s = session(fixture("6.12-kprobe/premature"));
    let svg = render_svg(&s, &Timeline::build(&s.events));
    assert!(svg.contains(r##"fill="#e31a1c""##));
    assert!(svg.contains("premature during recovering"));
}

#[test]
fn host_like_session_without_dax_names_the_loop_device() {
    // What a host without kprobes records: tracepoints only.
    let ev = |seq, pid, comm: &str, data| {
        Item::Kernel(TraceEvent {
            seq,
            ktime_ns: 1_000_000 * seq,
            cpu: 0,
            pid,
            tid: pid,
            comm: comm.into(),
            data,
        })
    };
    let loop0 = Dev(7 << 20);
    let evs = vec![
        ev(
            1,
            10,
            "mount",
            EventData::SyscallExit {
                syscall: "mount".into(),
                ret: 0,
            },
        ),
        ev(
            2,
            11,
            "umount",
            EventData::SyscallExit {
                syscall: "umount".into(),
                ret: 0,
            },
        ),
        ev(
            3,
            11,
            "umount",
            EventData::XfsTracepoint {
                tracepoint: "xfs_log_umount_write".into(),
                dev: loop0,
            },
        ),
    ];
    let mut s = session(evs);
    s.devices = [("7:0".to_string(), "loop0".to_string())].into();
    let tl = Timeline::build(&s.events);
    assert_eq!(tl.lanes.len(), 1);
    assert_eq!(
        tl.lanes[0].steps.len(),
        2,
        "umount exit goes with its process"
    );
    assert_eq!(tl.other.len(), 1, "the mount exit names no device");
    let text = render_text(&s, &tl);
    assert!(text.contains("device 1: 7:0 (loop0)"), "{text}");
    assert!(text.contains("not tied to a device"), "{text}");
    let svg = render_svg(&s, &tl);
    assert!(svg.contains(r#"<g class="other">"#));
    // The lane's events are drawn even without holder states.
    assert_eq!(svg.matches(r#"<circle class="step""#).count(), 2);
    // An empty session renders too.
    let empty = session(vec![]);
    let tl = Timeline::build(&empty.events);
    assert!(render_text(&empty, &tl).contains("notifications: none"));
    assert!(render_svg(&empty, &tl).contains("</svg>"));
}
