//! What enforcement decided for one process mapping a damaged range (enforce computes them).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What to do with the processes that map a damaged range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Record who maps the damage; signal nobody.
    Report,
    /// SIGBUS, what the kernel would have sent.
    Sigbus,
    /// SIGKILL: for processes that catch SIGBUS and carry on.
    Sigkill,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "report" => Ok(Self::Report),
            "sigbus" => Ok(Self::Sigbus),
            "sigkill" => Ok(Self::Sigkill),
            _ => Err(format!(
                "unknown policy {s:?}: expected report, sigbus or sigkill"
            )),
        }
    }
}

impl Policy {
    pub fn signal(self) -> Option<i32> {
        match self {
            Self::Report => None,
            Self::Sigbus => Some(libc::SIGBUS),
            Self::Sigkill => Some(libc::SIGKILL),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Sigbus => "sigbus",
            Self::Sigkill => "sigkill",
        }
    }
}

/// What was done (JSON `action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// The signal was delivered to the process.
    Signalled,
    /// Dry run: everything checked, the signal below would have been sent.
    WouldSignal,
    /// Policy `report`: identified, not signalled.
    Reported,
    /// A rule forbids signalling this process (`class` says which).
    Refused,
    /// The process no longer maps the damaged range.
    NotMapping,
    /// The process exited (or is a zombie) before the signal: nothing was sent.
    Gone,
    /// A syscall failed (`reason` has the errno).
    Failed,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::Signalled => "signalled",
            Act::WouldSignal => "would_signal",
            Act::Reported => "reported",
            Act::Refused => "refused",
            Act::NotMapping => "not_mapping",
            Act::Gone => "gone",
            Act::Failed => "failed",
        }
    }
}

/// Why, as a small fixed set (metric labels, tests); `reason` has the sentence for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Refused: pid 1.
    Pid1,
    /// Refused: the agent itself.
    #[serde(rename = "self")]
    Agent,
    /// Refused: a pid of 0 or less.
    InvalidPid,
    AllowPid,
    AllowComm,
    AllowCgroup,
    /// Refused: the pid now belongs to another process than the one scanned.
    PidReused,
    KernelThread,
    /// Refused: the kernel already sent it a memory-error SIGBUS.
    KernelSignalled,
    /// Signalled and the process exited within the wait.
    Exited,
    /// Signalled and the process was still running after the wait.
    Survived,
    /// Signalled (no wait asked).
    Sent,
    DryRun,
    PolicyReport,
    /// Not mapping the range any more.
    Unmapped,
    /// Exited before the signal.
    ExitedBefore,
    PidfdOpen,
    PidfdSendSignal,
    Other,
}

impl Why {
    pub fn name(self) -> &'static str {
        match self {
            Why::Pid1 => "pid1",
            Why::Agent => "self",
            Why::InvalidPid => "invalid_pid",
            Why::AllowPid => "allow_pid",
            Why::AllowComm => "allow_comm",
            Why::AllowCgroup => "allow_cgroup",
            Why::PidReused => "pid_reused",
            Why::KernelThread => "kernel_thread",
            Why::KernelSignalled => "kernel_signalled",
            Why::Exited => "exited",
            Why::Survived => "survived",
            Why::Sent => "sent",
            Why::DryRun => "dry_run",
            Why::PolicyReport => "policy_report",
            Why::Unmapped => "unmapped",
            Why::ExitedBefore => "exited_before",
            Why::PidfdOpen => "pidfd_open",
            Why::PidfdSendSignal => "pidfd_send_signal",
            Why::Other => "other",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One structured record per candidate and per outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub pid: i32,
    pub comm: String,
    pub action: Act,
    /// The class of `reason`.
    pub class: Why,
    pub reason: String,
    pub policy: Policy,
    /// Signal sent or that would be sent ("SIGBUS"/"SIGKILL").
    pub signal: Option<String>,
    /// si_code the victim sees for a sent signal.
    pub si_code: Option<i32>,
    pub dry_run: bool,
    /// First damaged virtual address in the process, when known.
    pub addr: Option<u64>,
    /// With a wait after the signal: whether the process exited within that time.
    pub exited: Option<bool>,
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json_form() {
        for w in [Why::Pid1, Why::Agent, Why::AllowCgroup, Why::ExitedBefore] {
            assert_eq!(serde_json::to_value(w).unwrap(), w.name());
        }
        for a in [Act::Signalled, Act::WouldSignal, Act::NotMapping] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
        }
        assert_eq!("sigbus".parse::<Policy>().unwrap(), Policy::Sigbus);
        assert!("nuke".parse::<Policy>().is_err());
        assert_eq!(Policy::Report.signal(), None);
        assert_eq!(Policy::Sigkill.signal(), Some(libc::SIGKILL));
    }
}
