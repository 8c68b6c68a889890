//! Checks of what the user gave that need no kernel: run before any probe is loaded, so that a
//! wrong path or address costs nothing, is said once with its fix, and exits 78 (EX_CONFIG,
//! `cmd::exit`) instead of appearing after seconds of loading and attaching.

use std::{
    ffi::CString,
    fs::OpenOptions,
    io,
    os::unix::{ffi::OsStrExt, fs::FileTypeExt},
    path::{Path, PathBuf},
};

use crate::{
    agent::journal::{self, JournalError},
    export::sink::Format,
};

/// Filesystems the kernel makes up: a file there is not storage (writes go to the kernel or
/// vanish at reboot). tmpfs is allowed: tests keep journals there on purpose.
const KERNEL_FS: &[(u64, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x6367_7270, "cgroup2"),
    (0x0027_e0eb, "cgroup"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0x6265_6570, "configfs"),
];

/// statfs(2)'s f_type of the filesystem `path` is on.
fn fs_magic(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs fills the struct we pass; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as u64 & 0xffff_ffff)
}

/// The kernel filesystem `path` is on, if it is on one.
fn kernel_fs(path: &Path) -> Option<&'static str> {
    let magic = fs_magic(path).ok()?;
    KERNEL_FS.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n)
}

/// `resolve --mount`: a path on an XFS (GETFSMAP and the reverse map are XFS's).
pub fn xfs(what: &str, path: &Path) -> Result<(), String> {
    const XFS: u64 = 0x5846_5342;
    let p = path.display();
    match fs_magic(path) {
        Ok(XFS) => Ok(()),
        Ok(m) => Err(format!(
            "{what} {p} is not on XFS (it is on {}): give the mount point of an XFS",
            kernel_fs(path).map_or_else(|| format!("statfs type {m:#x}"), str::to_string)
        )),
        Err(e) => Err(format!("{what} {p}: {e}: give the mount point of an XFS")),
    }
}

/// The nearest ancestor of `path` that exists (a relative path is taken from `.`).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.parent();
    while let Some(d) = p {
        if d.as_os_str().is_empty() {
            return PathBuf::from(".");
        }
        if d.symlink_metadata().is_ok() {
            return d.to_path_buf();
        }
        p = d.parent();
    }
    PathBuf::from(".")
}

/// What kind of non-regular file `m` is, in words.
fn kind(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    match () {
        _ if t.is_dir() => "a directory",
        _ if t.is_char_device() => "a character device",
        _ if t.is_block_device() => "a block device",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_socket() => "a socket",
        _ => "not a regular file",
    }
}

/// Whether this process may create entries in `dir`.
fn writable_dir(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: access only reads the NUL-terminated path.
    match unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The journal: a regular file notify can read and write, or absent with a directory (or the
/// place for one) where it can be created; never on a kernel filesystem. `what` names where
/// the path came from, e.g. "--journal".
pub fn journal(what: &str, path: &Path) -> Result<(), String> {
    let p = path.display();
    let fix = "give a file on a persistent filesystem, e.g. --journal /var/lib/notify/journal";
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!(
            "{what} {p} is a directory: give a file name in it, e.g. {p}/journal"
        )),
        Ok(m) if !m.is_file() => Err(format!("{what} {p} is {}: {fix}", kind(&m))),
        Ok(_) => {
            if let Some(fs) = kernel_fs(path) {
                return Err(format!("{what} {p} is on {fs}, a kernel filesystem: {fix}"));
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop)
                .map_err(|e| format!("{what} {p} cannot be opened for writing ({e}): {fix}"))
        }
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            let dir = existing_ancestor(path);
            let d = dir.display();
            if let Some(fs) = kernel_fs(&dir) {
                return Err(format!(
                    "{what} {p}: {d} is on {fs}, a kernel filesystem: {fix}"
                ));
            }
            match std::fs::metadata(&dir) {
                Ok(m) if !m.is_dir() => Err(format!("{what} {p}: {d} is not a directory: {fix}")),
                _ => writable_dir(&dir).map_err(|e| {
                    format!("{what} {p} cannot be created: {d} is not writable ({e}): {fix}")
                }),
            }
        }
        Err(e) => Err(format!("{what} {p}: {e}: {fix}")),
    }
}

/// The journal must not be held by another notify (a second agent on the same journal, or a
/// `journal replay` running): said before any probe loads, naming the lock.
pub fn journal_free(what: &str, path: &Path) -> Result<(), String> {
    if journal::held_elsewhere(path) {
        return Err(format!(
            "{what} {} is held by another notify process (its lock {}.lock is taken: another \
             agent, or a `notify journal replay`, is running): stop it first, or give this one \
             its own --journal",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// An existing journal must be one: its header is read (without the lock: a running agent may
/// hold it) so that a file that is not a journal is refused before any probe loads, as bad
/// input (restarting cannot fix it). Damage after the header is the agent's to repair.
pub fn journal_header(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => match journal::snapshot(path) {
            Err(e @ JournalError::BadHeader { .. }) => Err(e.to_string()),
            // Read errors are for the agent's open to report with its own context.
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// An output file (`--output`, `--session`): not a directory, and its directory exists.
pub fn output_file(what: &str, path: &Path) -> Result<(), String> {
    let p = path.display();
    if path.is_dir() {
        return Err(format!("{what} {p} is a directory: give a file name"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "{what} {p}: {} is not a directory: create it first, or give a path in an \
             existing directory",
            dir.display()
        ));
    }
    Ok(())
}

/// The agent's event log: created with its directories if missing, so only what cannot be
/// created is refused: a directory, a path through a file, a kernel filesystem.
pub fn log_file(what: &str, path: &Path) -> Result<(), String> {
    let p = path.display();
    if path.is_dir() {
        return Err(format!("{what} {p} is a directory: give a file name"));
    }
    let dir = existing_ancestor(path);
    let d = dir.display();
    if !dir.is_dir() {
        return Err(format!(
            "{what} {p}: {d} is not a directory: give a path in a directory"
        ));
    }
    if let Some(fs) = kernel_fs(&dir) {
        return Err(format!(
            "{what} {p} is on {fs}, a kernel filesystem: give a file such as \
             /var/log/notify/events.jsonl"
        ));
    }
    Ok(())
}

/// clap's parser for a flag that takes a file where `-o` takes a format: a bare format name is
/// refused (`trace --output json` used to write a file named `json`).
pub fn file_not_format(s: &str) -> Result<PathBuf, String> {
    use clap::ValueEnum as _;
    if let Some(f) = Format::value_variants()
        .iter()
        .filter_map(|f| f.to_possible_value())
        .find(|v| v.matches(s, false))
    {
        let f = f.get_name();
        return Err(format!(
            "this flag takes a file, and {f:?} is an output format: for the format use -o {f} \
             (--format {f}); for a file named {f}, write ./{f}"
        ));
    }
    if s.is_empty() {
        return Err("empty file name: give a path".into());
    }
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_are_not_files() {
        assert!(file_not_format("json").unwrap_err().contains("-o json"));
        assert!(file_not_format("table").is_err());
        assert_eq!(file_not_format("./json").unwrap(), PathBuf::from("./json"));
        assert!(file_not_format("").is_err());
    }

    #[test]
    fn journal_on_proc_or_a_directory_is_refused_and_tmp_is_fine() {
        assert!(
            journal("--journal", Path::new("/proc/version"))
                .unwrap_err()
                .contains("proc")
        );
        assert!(
            journal("--journal", Path::new("/proc/notify/j"))
                .unwrap_err()
                .contains("proc")
        );
        assert!(
            journal("--journal", Path::new("/tmp"))
                .unwrap_err()
                .contains("directory")
        );
        assert!(
            journal("--journal", Path::new("/etc/passwd/j"))
                .unwrap_err()
                .contains("not a directory")
        );
        let dir = std::env::temp_dir().join(format!("notify-preflight-{}", std::process::id()));
        assert!(journal("--journal", &dir.join("sub/journal")).is_ok());
    }
}
