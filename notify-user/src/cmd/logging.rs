//! notify's log lines on stderr: `notify: LEVEL: message`, and under systemd each line starts
//! with its sd-daemon priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), the prefix
//! journald parses from a stream (SyslogLevelPrefix=, on by default). Without it every line of
//! the agent lands in the journal at the unit's default priority, and `journalctl -p warning`
//! would show none of its warnings.
//!
//! stderr is the journal when JOURNAL_STREAM (set by systemd to "DEVICE:INODE" of the stream it
//! connected) names the file stderr really is (fstat(2)): a child whose stderr was redirected
//! elsewhere inherits the variable, and must not print prefixes into a file.

use std::{io::Write as _, os::fd::AsRawFd as _, sync::OnceLock};

use log::Level;

static JOURNAL: OnceLock<bool> = OnceLock::new();

/// "DEVICE:INODE", both decimal, as systemd.exec(5) documents JOURNAL_STREAM.
pub fn parse_journal_stream(s: &str) -> Option<(u64, u64)> {
    let (dev, ino) = s.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Whether stderr is the stream JOURNAL_STREAM names.
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM")
        .ok()
        .as_deref()
        .and_then(parse_journal_stream)
    else {
        return false;
    };
    // SAFETY: fstat fills the struct we pass; fd 2 may be closed, then it fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// Whether log lines carry journald priorities (decided once, at the first call).
pub fn to_journal() -> bool {
    *JOURNAL.get_or_init(stderr_is_journal)
}

/// The sd-daemon priority of a level (syslog's numbers).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// `notify: LEVEL: text`, each line prefixed with the priority when `journal` is set: journald
/// takes every line as an entry of its own, so a continuation line needs the prefix too.
pub fn line(journal: bool, level: Level, text: &str) -> String {
    let name = match level {
        Level::Warn => "warning".to_string(),
        l => l.as_str().to_ascii_lowercase(),
    };
    let mut out = String::new();
    for (i, l) in format!("notify: {name}: {text}").lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if journal {
            out.push_str(&format!("<{}>", priority(level)));
        }
        out.push_str(l);
    }
    out
}

/// The logger: RUST_LOG filters (default warn), lines as [`line`] writes them.
pub fn init() {
    let journal = to_journal();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |buf, r| writeln!(buf, "{}", line(journal, r.level(), &r.args().to_string())))
        .init();
}

/// The last line of a failed run.
pub fn error(e: &anyhow::Error) {
    eprintln!("{}", line(to_journal(), Level::Error, &format!("{e:#}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_and_prefixes() {
        assert_eq!(parse_journal_stream("8:1234\n"), Some((8, 1234)));
        assert_eq!(parse_journal_stream("8-1234"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(line(false, Level::Warn, "a"), "notify: warning: a");
        assert_eq!(
            line(true, Level::Error, "a\nb"),
            "<3>notify: error: a\n<3>b"
        );
        assert_eq!(line(true, Level::Info, "a"), "<6>notify: info: a");
    }
}
