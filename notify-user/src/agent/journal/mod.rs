//! Durable, append-only journal of memory-failure notifications the kernel dropped.
//!
//! A notification XFS refused ("not ready") exists nowhere else: the kernel does not retry and
//! does not mark the page. If the agent crashes, the host reboots, or the filesystem never
//! mounts, the journal is the only record that a pmem range is bad and who should have been
//! told. So:
//!
//! - `append` returns only after the record is on stable storage (write + fdatasync; the
//!   directory is fsynced when the file is created or replaced). `append_batch` is the group
//!   commit: a batch's frames go in with one write and one fdatasync, and no id of the batch is
//!   returned before that flush (all or none). A failed append is cut back off the file.
//! - Records are never rewritten in place. A state change (pending -> replayed) is a new record
//!   naming the id, so a crash at any point leaves either the old state or the new one.
//! - Each record is framed: magic, length, CRC32 over length and payload. Opening the journal
//!   checks every frame. A torn tail (crash mid-write, power loss leaving zeros) is cut; a bad
//!   frame in the middle is cut out and the scan resynchronises on the next valid frame, so
//!   one flipped bit cannot silently drop every later notification. What was cut and why is
//!   returned to the caller ([`Recovery`]) to log.
//!
//! Idempotency across crashes. Replay is: for each pending record, resolve owners, scan
//! mappers, act, then `mark_replayed(id)`. The marker is written *after* acting, so a crash
//! mid-replay leaves the record pending and the next start acts on it again — never on a
//! record already marked. Acting twice is harmless by construction: mappers are re-scanned at
//! replay, so a process killed before the crash is not there any more, and a new process that
//! got its pid is only signalled if it really maps the damaged range itself (enforce also
//! checks the start time against the scan). What can repeat is a report line, not a kill of
//! an innocent process.
//!
//! File format (little endian):
//! ```text
//! header  (32 bytes): "NTFYJRNL" | version u32 = 1 | header_len u32 = 32 | created_ns u64 |
//!                     reserved u32 | crc32(bytes 0..28) u32
//! frame:  magic u32 = 0x3152_4A4E ("NJR1") | len u32 | crc32(len ++ payload) u32 | payload
//! payload: JSON of `Entry` (self-describing, so fields can be added without a new version).
//! ```
//! One writer at a time: `open` takes an exclusive `flock` on `<journal>.lock` (a side file so
//! the lock survives `compact`/`clear` replacing the journal file).

use std::{
    collections::BTreeMap,
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use notify_model::journal::{Cut, Damage, Outcome, Record, Recovery, Status, Via};
use serde::{Deserialize, Serialize};

mod frame;
pub use frame::*;

/// How long `open` retries a lock someone else holds before saying so.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// One journal frame's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Notification {
        id: u64,
        #[serde(flatten)]
        n: Damage,
    },
    State {
        id: u64,
        state: Status,
        wall_ns: u64,
        note: String,
        /// A replay's countable findings (absent in journals written before notify kept them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
    },
    /// Written first by `compact`/`clear`: ids never go back, even when the records holding
    /// the highest ones were dropped, so an id in an old log line names one notification only.
    Meta { next_id: u64 },
    /// XFS was told of the record's range on this mount.
    Told {
        id: u64,
        mount: String,
        wall_ns: u64,
        note: String,
        #[serde(default)]
        via: Via,
    },
}

#[derive(Debug)]
pub enum JournalError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Not a journal, or its header is damaged: we will not guess.
    BadHeader {
        path: PathBuf,
        detail: String,
    },
    /// Another process holds the journal.
    Locked {
        path: PathBuf,
    },
    UnknownId(u64),
    TooLarge(usize),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, op, source } => {
                write!(f, "journal {}: {op}: {source}", path.display())
            }
            Self::BadHeader { path, detail } => write!(
                f,
                "journal {p}: bad header ({detail}). This file is not a notify journal or its \
                 header is damaged; notify will not guess. Move it aside to keep it for \
                 inspection (mv {p} {p}.bad) and start again: notify then creates a new, empty \
                 journal, and notifications recorded only in the old file are not replayed.",
                p = path.display()
            ),
            Self::Locked { path } => write!(
                f,
                "journal {}: locked by another process (another notify agent is running?)",
                path.display()
            ),
            Self::UnknownId(id) => write!(f, "journal has no record {id}"),
            Self::TooLarge(n) => write!(
                f,
                "record of {n} bytes exceeds the {MAX_PAYLOAD}-byte limit"
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, JournalError>;

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The journal
// ---------------------------------------------------------------------------------------------

/// One entry as a frame, or why it cannot be one.
fn encode_entry(e: &Entry) -> Result<Vec<u8>> {
    let payload = serde_json::to_vec(e).expect("journal entries always serialize");
    if payload.len() > MAX_PAYLOAD as usize {
        return Err(JournalError::TooLarge(payload.len()));
    }
    Ok(encode_frame(&payload))
}

pub struct Journal {
    path: PathBuf,
    file: File,
    _lock: File,
    records: BTreeMap<u64, Record>,
    next_id: u64,
}

fn fsync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Write `bytes` as the new content of `path` atomically: temp file, fsync, rename, fsync dir.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    f.write_all(bytes).map_err(io_err(&tmp, "write"))?;
    f.sync_all().map_err(io_err(&tmp, "fsync"))?;
    fs::rename(&tmp, path).map_err(io_err(path, "rename"))?;
    fsync_dir(path)
}

/// Whether another process holds the journal's lock for good (a running agent, a `journal
/// replay`): tried as `open` tries it (for LOCK_WAIT, against a holder only passing through)
/// and let go at once. For a clear error before anything slow is done; `open` decides for real.
pub fn held_elsewhere(path: &Path) -> bool {
    let Ok(lock) = File::open(lock_path(path)) else {
        return false;
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a valid fd; the lock goes with the fd when it is dropped.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return false;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK)
            || std::time::Instant::now() >= deadline
        {
            return std::time::Instant::now() >= deadline;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Journal {
    /// Open (creating if missing) and verify the journal; repairs a bad tail or bad frames and
    /// says what it cut. A bad header is an error, never repaired.
    pub fn open(path: impl AsRef<Path>) -> Result<(Journal, Recovery)> {
        let path = path.as_ref().to_path_buf();
        let lp = lock_path(&path);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lp)
            .map_err(io_err(&lp, "open lock file"))?;
        // A lock can be held for a moment by a process that is only passing through: a fork
        // copies the holder's descriptors (close-on-exec or not) until the child execs. A
        // writer that really holds it (a running agent) still holds it after LOCK_WAIT.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a valid fd.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_err(&lp, "flock")(e));
            }
            if std::time::Instant::now() >= deadline {
                return Err(JournalError::Locked { path });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }

        let mut recovery = Recovery {
            path: path.clone(),
            ..Default::default()
        };
        let mut created = false;
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Header goes in through a rename: a crash never leaves a half-written header.
                replace_file(&path, &encode_header(now_ns()))?;
                created = true;
            }
            Err(e) => return Err(io_err(&path, "stat")(e)),
            Ok(_) => {}
        }
        recovery.created = created;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err(&path, "read"))?;
        if data.is_empty() {
            // Zero-length: holds nothing to lose (e.g. created by hand). Initialise it.
            replace_file(&path, &encode_header(now_ns()))?;
            recovery.created = true;
            file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path, "open"))?;
            data = encode_header(0).to_vec();
        }
        check_header(&data).map_err(|detail| JournalError::BadHeader {
            path: path.clone(),
            detail,
        })?;

        let scan = scan_frames(&data[HEADER_LEN as usize..], HEADER_LEN);
        recovery.cuts = scan.cuts.clone();
        if !scan.cuts.is_empty() {
            let only_tail =
                scan.cuts.len() == 1 && scan.cuts[0].offset + scan.cuts[0].len == data.len() as u64;
            if only_tail {
                let at = scan.cuts[0].offset;
                file.set_len(at).map_err(io_err(&path, "truncate"))?;
                file.sync_all().map_err(io_err(&path, "fsync"))?;
            } else {
                let mut bytes = data[..HEADER_LEN as usize].to_vec();
                for (off, n, _) in &scan.good {
                    bytes.extend_from_slice(&data[*off as usize..*off as usize + n]);
                }
                replace_file(&path, &bytes)?;
                file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path, "open"))?;
                recovery.rewritten = true;
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(&path, "seek"))?;

        let mut j = Journal {
            path,
            file,
            _lock: lock,
            records: BTreeMap::new(),
            next_id: 1,
        };
        for (_, _, e) in scan.good {
            if let Some(orphan) = j.apply(e) {
                recovery.orphan_states.push(orphan);
            }
        }
        recovery.records = j.records.len();
        Ok((j, recovery))
    }

    /// Apply an entry to the in-memory state; returns the id of an orphan state record.
    fn apply(&mut self, e: Entry) -> Option<u64> {
        apply(&mut self.records, &mut self.next_id, e)
    }

    fn write_entry(&mut self, e: &Entry) -> Result<()> {
        let frame = encode_entry(e)?;
        self.write_frames(&frame)
    }

    /// Appends whole frames with one write(2) and one fdatasync. On failure the file is cut
    /// back to where it was, so bytes that did not reach stable storage are not read back later
    /// as a record nobody was told is stored; the error says whether that worked.
    fn write_frames(&mut self, frames: &[u8]) -> Result<()> {
        let before = self
            .file
            .metadata()
            .map_err(io_err(&self.path, "stat"))?
            .len();
        // One write(2) on an O_APPEND fd; a crash can still tear it (power loss), which the
        // frame checksums catch on the next open.
        let r = self
            .file
            .write_all(frames)
            .map_err(io_err(&self.path, "append"))
            // fdatasync: flushes the data and the size change (the metadata needed to read it
            // back), which is all a log needs; mtime can lag.
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(io_err(&self.path, "fdatasync"))
            });
        let Err(e) = r else { return Ok(()) };
        let cut = self
            .file
            .set_len(before)
            .and_then(|()| self.file.sync_data());
        Err(match (e, cut) {
            (JournalError::Io { path, op, source }, Err(c)) => JournalError::Io {
                path,
                op,
                source: io::Error::new(
                    source.kind(),
                    format!(
                        "{source}; cutting the file back to {before} bytes failed too ({c}): \
                         the unstored bytes may be read back at the next open"
                    ),
                ),
            },
            (e, _) => e,
        })
    }

    /// Append a pending notification; returns its id once it is on stable storage.
    pub fn append(&mut self, n: Damage) -> Result<u64> {
        Ok(self.append_batch(vec![n])?[0])
    }

    /// Group commit: appends every notification with one write and one fdatasync and returns
    /// their ids, in order, once all are on stable storage; on an error none is stored. Ids
    /// are taken even when the write fails, so a frame that reaches the disk anyway (a failed
    /// cut-back) can never share its id with a later record.
    pub fn append_batch(&mut self, ns: Vec<Damage>) -> Result<Vec<u64>> {
        let first = self.next_id;
        let entries: Vec<Entry> = ns
            .into_iter()
            .zip(first..)
            .map(|(n, id)| Entry::Notification { id, n })
            .collect();
        self.next_id = first + entries.len() as u64;
        let mut frames = Vec::new();
        for e in &entries {
            frames.extend(encode_entry(e)?);
        }
        self.write_frames(&frames)?;
        let ids = (first..self.next_id).collect();
        for e in entries {
            self.apply(e);
        }
        Ok(ids)
    }

    /// Mark a record replayed (call after acting on it). `Ok(false)` when it already was.
    pub fn mark_replayed(&mut self, id: u64, note: &str) -> Result<bool> {
        self.mark_replayed_with(id, note, None)
    }

    /// Mark a record replayed, keeping what the replay found (`notify journal summary` counts
    /// it).
    pub fn mark_replayed_with(
        &mut self,
        id: u64,
        note: &str,
        outcome: Option<Outcome>,
    ) -> Result<bool> {
        match self.records.get(&id) {
            None => return Err(JournalError::UnknownId(id)),
            Some(r) if r.state == Status::Replayed => return Ok(false),
            Some(_) => {}
        }
        let e = Entry::State {
            id,
            state: Status::Replayed,
            wall_ns: now_ns(),
            note: note.to_string(),
            outcome,
        };
        self.write_entry(&e)?;
        self.apply(e);
        Ok(true)
    }

    /// Closes a record without acting on it, for good (`note` says why). `Ok(false)` when it
    /// was closed already.
    pub fn close(&mut self, id: u64, note: &str) -> Result<bool> {
        match self.records.get(&id) {
            None => return Err(JournalError::UnknownId(id)),
            Some(r) if r.state == Status::Closed => return Ok(false),
            Some(_) => {}
        }
        let e = Entry::State {
            id,
            state: Status::Closed,
            wall_ns: now_ns(),
            note: note.to_string(),
            outcome: None,
        };
        self.write_entry(&e)?;
        self.apply(e);
        Ok(true)
    }

    /// Whether XFS was told of record `id` on `mount` this way.
    pub fn told(&self, id: u64, mount: &str, via: Via) -> bool {
        self.records
            .get(&id)
            .is_some_and(|r| r.told.iter().any(|t| t.mount == mount && t.via == via))
    }

    /// Records that XFS was told of `id` on `mount` (call after telling it). `Ok(false)` when
    /// it was already.
    pub fn mark_told(&mut self, id: u64, mount: &str, via: Via, note: &str) -> Result<bool> {
        if !self.records.contains_key(&id) {
            return Err(JournalError::UnknownId(id));
        }
        if self.told(id, mount, via) {
            return Ok(false);
        }
        let e = Entry::Told {
            id,
            mount: mount.to_string(),
            wall_ns: now_ns(),
            note: note.to_string(),
            via,
        };
        self.write_entry(&e)?;
        self.apply(e);
        Ok(true)
    }

    pub fn get(&self, id: u64) -> Option<&Record> {
        self.records.get(&id)
    }

    /// All records in id order.
    pub fn list(&self) -> Vec<&Record> {
        self.records.values().collect()
    }

    /// Records not yet replayed, in id (arrival) order: what a replay must act on.
    pub fn pending(&self) -> Vec<&Record> {
        self.records
            .values()
            .filter(|r| r.state == Status::Pending)
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rewrite(&mut self, mut keep: Vec<Entry>) -> Result<()> {
        keep.insert(
            0,
            Entry::Meta {
                next_id: self.next_id,
            },
        );
        let mut bytes = encode_header(now_ns()).to_vec();
        for e in &keep {
            bytes.extend(encode_frame(
                &serde_json::to_vec(e).expect("journal entries always serialize"),
            ));
        }
        replace_file(&self.path, &bytes)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path, "open"))?;
        self.records.clear();
        for e in keep {
            self.apply(e);
        }
        Ok(())
    }

    /// Drop replayed records (atomic rewrite keeping pending ones with their ids). Returns the
    /// number dropped.
    pub fn compact(&mut self) -> Result<usize> {
        let keep: Vec<Entry> = self
            .pending()
            .into_iter()
            .map(|r| Entry::Notification {
                id: r.id,
                n: r.damage.clone(),
            })
            .collect();
        let dropped = self.records.len() - keep.len();
        self.rewrite(keep)?;
        Ok(dropped)
    }

    /// Forget everything, pending included (operator decision). Returns the number dropped.
    pub fn clear(&mut self) -> Result<usize> {
        let n = self.records.len();
        self.rewrite(Vec::new())?;
        Ok(n)
    }
}

/// Applies one entry to records and the next id; returns the id of an orphan state record (a
/// state change for a record that is not there).
fn apply(records: &mut BTreeMap<u64, Record>, next_id: &mut u64, e: Entry) -> Option<u64> {
    match e {
        Entry::Notification { id, n } => {
            *next_id = (*next_id).max(id + 1);
            records.insert(
                id,
                Record {
                    id,
                    damage: n,
                    state: Status::Pending,
                    note: None,
                    state_wall_ns: None,
                    told: Vec::new(),
                    outcome: None,
                },
            );
            None
        }
        Entry::Told {
            id,
            mount,
            wall_ns,
            note,
            via,
        } => match records.get_mut(&id) {
            Some(r) => {
                r.told.push(notify_model::journal::Told {
                    mount,
                    wall_ns,
                    note,
                    via,
                });
                None
            }
            None => Some(id),
        },
        Entry::State {
            id,
            state,
            wall_ns,
            note,
            outcome,
        } => match records.get_mut(&id) {
            Some(r) => {
                r.state = state;
                r.note = Some(note);
                r.state_wall_ns = Some(wall_ns);
                r.outcome = outcome;
                None
            }
            None => Some(id),
        },
        Entry::Meta { next_id: nid } => {
            *next_id = (*next_id).max(nid);
            None
        }
    }
}

/// What a reader sees of a journal without taking it from its writer ([`snapshot`]).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub records: Vec<Record>,
    /// Regions that did not decode. Not repaired: that is the writer's job on its next open. A
    /// cut at the very end can be an append in progress.
    pub cuts: Vec<Cut>,
}

/// Reads a journal without locking or repairing it, so `notify journal list` works beside a
/// running agent (which holds the lock for good). A record appended while this reads is either
/// whole in the snapshot or not in it: frames are checksummed, and a torn tail is reported as a
/// cut, never parsed.
pub fn snapshot(path: impl AsRef<Path>) -> Result<Snapshot> {
    let path = path.as_ref();
    let data = fs::read(path).map_err(io_err(path, "read"))?;
    snapshot_bytes(&data).map_err(|detail| JournalError::BadHeader {
        path: path.to_path_buf(),
        detail,
    })
}

/// [`snapshot`] of a journal's bytes (pure: the fuzz target's entry point). `Err` is what is
/// wrong with the header.
pub fn snapshot_bytes(data: &[u8]) -> std::result::Result<Snapshot, String> {
    check_header(data)?;
    let scan = scan_frames(&data[HEADER_LEN as usize..], HEADER_LEN);
    let mut records = BTreeMap::new();
    let mut next_id = 1;
    for (_, _, e) in scan.good {
        apply(&mut records, &mut next_id, e);
    }
    Ok(Snapshot {
        records: records.into_values().collect(),
        cuts: scan.cuts,
    })
}

#[cfg(test)]
mod tests;
