//! Enforcement: acting on the mappers of a damaged range: report, SIGBUS or SIGKILL, through
//! pidfds.
//!
//! Every candidate yields one [`Decision`] — signalled, would-signal (dry run), reported,
//! refused (with the rule that refused it), gone, or failed — that the caller logs as an event.
//!
//! Identity: a pid is only a number. Between the scan of /proc and the signal the process can
//! exit and its pid be reused. So we open a pidfd first (it pins *that* process: a signal
//! through it can never reach a later holder of the number), and only then re-read
//! /proc/PID/stat and compare the start time recorded at scan time. If the numbers differ, the
//! pidfd is for a newer process and we refuse. If the original process dies after the check,
//! `pidfd_send_signal` fails with ESRCH and we report it gone.
//!
//! What SIGBUS looks like to the victim (each point tested in tests/enforce.rs, kernel 6.18):
//! - The kernel's own memory-failure kill sends SIGBUS with si_code BUS_MCEERR_AO (action
//!   optional, early kill) or BUS_MCEERR_AR (on access), si_addr = the poisoned address and
//!   si_addr_lsb = page shift.
//! - Userspace cannot forge that for another process: `pidfd_send_signal()` (like
//!   `rt_sigqueueinfo()`) returns EPERM unless the target is the caller or si_code is negative
//!   and not SI_TKILL ("Only allow sending arbitrary signals to yourself", kernel/signal.c).
//!   BUS_MCEERR_AO is 5: EPERM for other processes. "The caller" is the calling *thread*
//!   (`task_pid(current) == pid`): even a process's own pidfd is refused from a non-leader
//!   thread; only a PIDFD_THREAD pidfd of the calling thread itself gets it through, and then
//!   si_code and si_addr arrive as sent.
//! - What we can send: no siginfo (the kernel fills SI_USER, si_pid = us, like kill(2)) — the
//!   default — or a negative si_code such as SI_QUEUE, whose payload we choose: with
//!   [`SigbusInfo::Queue`] the victim gets si_code SI_QUEUE and the first damaged virtual
//!   address in si_value. A handler that only understands BUS_MCEERR_* sees a plain user
//!   SIGBUS either way.
//! - A SIGBUS is fatal only under the default disposition. Processes with a SIGBUS handler may
//!   survive it. Notably every Rust program: the runtime's stack-overflow handler resets SIGBUS
//!   to SIG_DFL and returns when si_addr is not its guard page — a real fault re-faults and
//!   dies, but a sent SIGBUS (ours, or the kernel's BUS_MCEERR_AO early kill) has nothing to
//!   re-trigger, so the first one is swallowed and only a second is fatal. Set
//!   [`Config::wait_exit`] to record whether the process really exited
//!   ([`Decision::exited`]); use policy `sigkill` when mappers must be gone.

pub mod act;
pub mod pidfd;
pub mod policy;

pub use act::{enforce, enforce_all, mapper_for_pid};
pub use policy::{Allowlist, Config, Refusal, SigbusInfo, refusal};
