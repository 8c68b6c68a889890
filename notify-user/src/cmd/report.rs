//! `notify report SESSION [--svg FILE] [--png FILE]`: a recorded session as a timeline per
//! device, as text and optionally drawn.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use notify_model::session::SessionFile;

use crate::{
    cmd::exit,
    session::{
        svg::{render_svg, svg_to_png},
        text::render_text,
        timeline::Timeline,
    },
};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A session file written by `notify record`.
    pub session: PathBuf,
    /// Also write an SVG picture: one swimlane per device, states as bands, notifications as
    /// markers coloured by verdict.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Also write a PNG of that picture (needs rsvg-convert, Debian package librsvg2-bin).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    // A session that cannot be read is bad input (exit 78), not a failure of notify's: the
    // file named is missing, damaged or not a session, and no retry fixes that.
    let s = SessionFile::load(&a.session).map_err(exit::bad_input)?;
    let tl = Timeline::build(&s.events);
    print!("{}", render_text(&s, &tl));
    if a.svg.is_some() || a.png.is_some() {
        let picture = render_svg(&s, &tl);
        if let Some(p) = &a.svg {
            std::fs::write(p, &picture).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("notify: wrote {}", p.display());
        }
        if let Some(p) = &a.png {
            svg_to_png(&picture, p)?;
            eprintln!("notify: wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
