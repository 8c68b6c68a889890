//! notify's exit statuses, in one place, and the typed errors that choose them. A supervisor
//! acts on the status: systemd restarts the agent on a failure but not on a configuration error
//! (`RestartPreventExitStatus=78` in packaging/notify-agent.service), because restarting cannot
//! fix a bad file or flag and would only fill the log.

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// notify itself failed at run time (BPF, the ring buffer, I/O): worth a retry.
pub const FAILURE: u8 = 1;
/// The command line did not parse (clap's own status).
pub const USAGE: u8 = 2;
/// `record --fail-on`: a finding holds (the session was written).
pub const FINDING: u8 = 3;
/// `doctor`: a required hook cannot attach on this kernel (named on stderr).
pub const HOOKS_MISSING: u8 = 4;
/// sysexits.h EX_CONFIG: bad input found before anything started (configuration, journal,
/// output paths, metrics address). Nothing was loaded; fix the input and start again.
pub const CONFIG: u8 = 78;

/// Input found bad before any probe was loaded: the message names the problem and the fix.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wraps any error that means "the input is wrong" so that it exits [`CONFIG`].
pub fn bad_input(e: impl fmt::Display) -> anyhow::Error {
    BadInput(e.to_string()).into()
}

/// A command line that parsed but uses a flag wrongly (exits [`USAGE`], as clap's errors do).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `doctor`: the required hooks no method could attach.
#[derive(Debug)]
pub struct HooksMissing(pub Vec<&'static str>);

impl fmt::Display for HooksMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "required hooks cannot attach on this kernel: {} (why: the probes table above; \
             trace and agent would run without them and miss notifications)",
            self.0.join(", ")
        )
    }
}

impl std::error::Error for HooksMissing {}

/// The status an error ends notify with: by its type, never by its text.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<BadInput>().is_some() {
        CONFIG
    } else if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else if e.downcast_ref::<HooksMissing>().is_some() {
        HOOKS_MISSING
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn the_type_picks_the_status_through_context() {
        let e = Err::<(), _>(bad_input("x"))
            .context("while starting")
            .unwrap_err();
        assert_eq!(code_of(&e), CONFIG);
        assert_eq!(code_of(&Usage("-o".into()).into()), USAGE);
        assert_eq!(code_of(&HooksMissing(vec!["notify"]).into()), HOOKS_MISSING);
        assert_eq!(code_of(&anyhow::anyhow!("BPF_PROG_LOAD failed")), FAILURE);
    }
}
