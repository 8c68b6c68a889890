//! The session's timeline drawn as a hand-written SVG (one swimlane per device, states as
//! bands, notifications as markers coloured by verdict), and its PNG through rsvg-convert.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;
use notify_model::{
    State, Verdict,
    event::ret_str,
    session::{ExitStatus, SessionFile},
};

use crate::session::{
    text::ms,
    timeline::{Mark, PfnTick, Timeline},
};

/// Colours of the holder states.
pub fn state_colour(s: State) -> &'static str {
    match s {
        State::Registered => "#9ecae1",
        State::Mounting => "#fdd49e",
        State::Recovering => "#fc8d59",
        State::MountDone => "#c7e9c0",
        State::Ready => "#41ab5d",
        State::Unmounting => "#bcbddc",
        State::Released => "#d9d9d9",
        State::Failed => "#7f0000",
    }
}

/// Colours of the verdicts.
pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Delivered => "#2166ac",
        Verdict::Premature => "#e31a1c",
        Verdict::NoHolder => "#ff7f00",
        Verdict::Unsupported => "#6a3d9a",
        Verdict::DeviceDead => "#000000",
        Verdict::Failed => "#8c510a",
        Verdict::Removal => "#969696",
    }
}

pub const ALL_STATES: [State; 8] = [
    State::Registered,
    State::Mounting,
    State::Recovering,
    State::MountDone,
    State::Ready,
    State::Unmounting,
    State::Released,
    State::Failed,
];

pub const ALL_VERDICTS: [Verdict; 7] = [
    Verdict::Delivered,
    Verdict::Premature,
    Verdict::NoHolder,
    Verdict::Unsupported,
    Verdict::DeviceDead,
    Verdict::Failed,
    Verdict::Removal,
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A 1-2-5 step giving about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The SVG picture: one swimlane per device with the holder's states as coloured bands along a
/// time axis, notifications as triangles coloured by verdict, memory failures as ticks, and a
/// legend.
pub fn render_svg(s: &SessionFile, tl: &Timeline) -> String {
    const W: f64 = 1100.0;
    const LEFT: f64 = 250.0;
    const RIGHT: f64 = 30.0;
    const TOP: f64 = 56.0;
    const LANE_H: f64 = 78.0;
    let plot_w = W - LEFT - RIGHT;
    // The axis runs a little past the last event so that the final state shows.
    let span_ms = (tl.span_ns as f64 / 1e6).max(1.0) * 1.04;
    let x = |ns: u64| LEFT + (ns as f64 / 1e6) / span_ms * plot_w;
    let x_end = LEFT + plot_w;
    let other_lane = !tl.other.is_empty() || !tl.other_pfns.is_empty();
    let n_lanes = tl.lanes.len() + usize::from(other_lane);
    let axis_y = TOP + n_lanes.max(1) as f64 * LANE_H + 6.0;
    let legend_y = axis_y + 44.0;
    let h = legend_y + 70.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">notify session: {}</text>"#,
        esc(&s.command.join(" "))
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="38" fill="#555">kernel {}, attach {}, {} events, lost {} + {} gaps, exit {}, started {}</text>"##,
        esc(&s.kernel),
        esc(&s.attach),
        s.events.len(),
        s.lost.kernel,
        s.lost.seq_gaps,
        match s.exit_status {
            ExitStatus::Code(c) => format!("code {c}"),
            ExitStatus::Signal(g) => format!("signal {g}"),
        },
        esc(&s.started_wall)
    );
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y0 = TOP + i as f64 * LANE_H;
        let bar_y = y0 + 28.0;
        let _ = writeln!(o, r#"<g class="lane" data-lane="{}">"#, esc(&lane.key()));
        let fill = if i % 2 == 0 { "#f4f4f4" } else { "#fafafa" };
        let _ = writeln!(
            o,
            r#"<rect x="0" y="{y0}" width="{W}" height="{LANE_H}" fill="{fill}"/>"#
        );
        let label = lane.label(&s.devices);
        let (first, second) = match label.split_once(", dax ") {
            Some((a, b)) => (a.to_string(), format!("dax {b}")),
            None => (label.clone(), String::new()),
        };
        let _ = writeln!(
            o,
            r#"<text x="10" y="{}" font-weight="bold">{}</text>"#,
            y0 + 34.0,
            esc(&first)
        );
        if !second.is_empty() {
            let _ = writeln!(
                o,
                r##"<text x="10" y="{}" font-size="10" fill="#555">{}</text>"##,
                y0 + 50.0,
                esc(&second)
            );
        }
        // The lane's empty track, then the states over it.
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{bar_y}" width="{plot_w}" height="20" fill="none" stroke="#cccccc"/>"##
        );
        for b in &lane.bands {
            let x0 = x(b.start_ns);
            let x1 = b.end_ns.map(x).unwrap_or(x_end);
            let w = (x1 - x0).max(1.5);
            let dash = if b.inferred {
                r##" stroke="#444" stroke-dasharray="3,2""##
            } else {
                ""
            };
            let _ = writeln!(
                o,
                r#"<rect class="band state-{n}" x="{x0:.2}" y="{bar_y}" width="{w:.2}" height="20" fill="{c}"{dash}><title>{n}{inf} from {t} ms (seq {seq})</title></rect>"#,
                n = b.state.name(),
                c = state_colour(b.state),
                inf = if b.inferred { " (inferred)" } else { "" },
                t = ms(b.start_ns),
                seq = b.seq
            );
            if w > 8.0 * b.state.name().len() as f64 {
                let fg = if matches!(b.state, State::Failed | State::Ready) {
                    "#ffffff"
                } else {
                    "#222222"
                };
                let _ = writeln!(
                    o,
                    r#"<text x="{:.2}" y="{}" font-size="11" fill="{fg}">{}</text>"#,
                    x0 + 4.0,
                    bar_y + 14.0,
                    b.state.name()
                );
            }
        }
        // Every event of the lane as a small dot on the track (tooltip: seq, kind, details).
        for st in lane.steps.iter().filter(|s| s.kind != "notification") {
            let _ = writeln!(
                o,
                r##"<circle class="step" cx="{:.2}" cy="{}" r="2.5" fill="#333" stroke="#fff" stroke-width="0.8"><title>seq {} {} {}({}): {}</title></circle>"##,
                x(st.t_ns),
                bar_y + 10.0,
                st.seq,
                st.kind,
                esc(&st.comm),
                st.pid,
                esc(&st.detail)
            );
        }
        for m in &lane.marks {
            let_marker(&mut o, x(m.t_ns), y0 + 4.0, m);
        }
        for t in &lane.pfns {
            pfn_tick(&mut o, x(t.t_ns), bar_y + 22.0, t);
        }
        let _ = writeln!(o, "</g>");
    }
    if other_lane {
        let y0 = TOP + tl.lanes.len() as f64 * LANE_H;
        let _ = writeln!(o, r#"<g class="other">"#);
        let _ = writeln!(
            o,
            r##"<rect x="0" y="{y0}" width="{W}" height="{LANE_H}" fill="#ffffff" stroke="#eeeeee"/>"##
        );
        let _ = writeln!(
            o,
            r##"<text x="10" y="{}" fill="#555">not tied to a device</text>"##,
            y0 + 34.0
        );
        for st in &tl.other {
            let _ = writeln!(
                o,
                r##"<circle class="event" cx="{:.2}" cy="{}" r="3.5" fill="#777"><title>seq {} {} {}({}): {}</title></circle>"##,
                x(st.t_ns),
                y0 + 38.0,
                st.seq,
                st.kind,
                esc(&st.comm),
                st.pid,
                esc(&st.detail)
            );
        }
        for t in &tl.other_pfns {
            pfn_tick(&mut o, x(t.t_ns), y0 + 50.0, t);
        }
        let _ = writeln!(o, "</g>");
    }
    // Time axis.
    let _ = writeln!(o, r#"<g class="axis">"#);
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{x_end}" y2="{axis_y}" stroke="#333"/>"##
    );
    let step = tick_step(span_ms, 8.0);
    let mut t = 0.0;
    while t <= span_ms + 1e-9 {
        let xx = LEFT + t / span_ms * plot_w;
        let label = if step >= 1000.0 {
            format!("{} s", t / 1000.0)
        } else if step >= 1.0 {
            format!("{t:.0} ms")
        } else {
            format!("{t:.3} ms")
        };
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.2}" y1="{}" x2="{xx:.2}" y2="{}" stroke="#333"/><line x1="{xx:.2}" y1="{TOP}" x2="{xx:.2}" y2="{axis_y}" stroke="#000" stroke-opacity="0.07"/><text x="{xx:.2}" y="{}" text-anchor="middle" font-size="11">{label}</text>"##,
            axis_y,
            axis_y + 5.0,
            axis_y + 18.0
        );
        t += step;
    }
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="{}" font-size="11" fill="#555">time since the first event</text>"##,
        axis_y + 34.0
    );
    let _ = writeln!(o, "</g>");
    // Legend.
    let _ = writeln!(o, r#"<g class="legend">"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="{}" font-weight="bold">holder state</text>"#,
        legend_y + 12.0
    );
    for (i, st) in ALL_STATES.iter().enumerate() {
        let lx = 110.0 + i as f64 * 112.0;
        let _ = writeln!(
            o,
            r##"<rect class="legend-state state-{n}" x="{lx}" y="{}" width="16" height="12" fill="{c}" stroke="#888"/><text x="{}" y="{}">{n}</text>"##,
            legend_y + 2.0,
            lx + 20.0,
            legend_y + 12.0,
            n = st.name(),
            c = state_colour(*st)
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="10" y="{}" font-weight="bold">notification</text>"#,
        legend_y + 36.0
    );
    for (i, v) in ALL_VERDICTS.iter().enumerate() {
        let lx = 110.0 + i as f64 * 112.0;
        let (cx, cy) = (lx + 8.0, legend_y + 26.0);
        let _ = writeln!(
            o,
            r##"<path class="legend-verdict verdict-{n}" d="M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{c}" stroke="#222"/><text x="{}" y="{}">{n}</text>"##,
            cx - 7.0,
            cy,
            cx + 7.0,
            cy,
            cx,
            cy + 12.0,
            lx + 20.0,
            legend_y + 36.0,
            n = v.name(),
            c = verdict_colour(*v)
        );
    }
    let lx = 110.0 + 6.0 * 112.0;
    let _ = writeln!(
        o,
        r##"<line x1="{lx}" y1="{}" x2="{lx}" y2="{}" stroke="#222" stroke-width="2"/><text x="{}" y="{}">memory_failure (pfn)</text>"##,
        legend_y + 24.0,
        legend_y + 38.0,
        lx + 8.0,
        legend_y + 36.0
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="{}" font-size="10" fill="#555">dashed band: inferred from put_super/holder_put of a holder registered before the session</text>"##,
        legend_y + 58.0
    );
    let _ = writeln!(o, "</g>");
    let _ = writeln!(o, "</svg>");
    o
}

fn let_marker(o: &mut String, cx: f64, top: f64, m: &Mark) {
    let _ = writeln!(
        o,
        r##"<path class="marker verdict-{n}" d="M{:.2},{:.1} L{:.2},{:.1} L{:.2},{:.1} Z" fill="{c}" stroke="#222"><title>seq {seq}: {n} during {phase}, off {off:#x} len {len}, ret {ret}</title></path>"##,
        cx - 8.0,
        top,
        cx + 8.0,
        top,
        cx,
        top + 20.0,
        n = m.verdict.name(),
        c = verdict_colour(m.verdict),
        seq = m.seq,
        phase = m.phase_name(),
        off = m.offset,
        len = m.len,
        ret = ret_str(m.ret)
    );
}

fn pfn_tick(o: &mut String, cx: f64, y: f64, t: &PfnTick) {
    let _ = writeln!(
        o,
        r##"<line class="pfn" x1="{cx:.2}" y1="{y}" x2="{cx:.2}" y2="{}" stroke="#222" stroke-width="2"><title>memory_failure pfn {:#x} (seq {})</title></line><text x="{:.2}" y="{}" font-size="9" fill="#333">{:#x}</text>"##,
        y + 14.0,
        t.pfn,
        t.seq,
        cx + 3.0,
        y + 12.0,
        t.pfn
    );
}

/// Converts SVG text to a PNG file with `rsvg-convert` (Debian: librsvg2-bin): the one
/// rasteriser that is a package away, so that notify carries no rendering library.
pub fn svg_to_png(svg: &str, png: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = match Command::new("rsvg-convert")
        .args(["--format", "png", "--background-color", "white", "--output"])
        .arg(png)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "--png needs rsvg-convert, which is not installed (Debian: apt-get install \
             librsvg2-bin); --svg writes the picture without it"
        ),
        Err(e) => anyhow::bail!("cannot run rsvg-convert: {e}"),
    };
    child
        .stdin
        .take()
        .context("rsvg-convert stdin")?
        .write_all(svg.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "rsvg-convert failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
