//! The agent's event log on disk: appends whole lines to FILE and rotates by size, keeping
//! FILE.1 (newest) ... FILE.N (oldest).
//!
//! Rotation happens only between lines: bytes are held until their newline arrives, so a line
//! is never split across two files and never half-written at rotation. A line longer than the
//! rotation size goes whole into a fresh file. Size and count can change while running
//! ([`RotateControl`], shared with the SIGHUP reload), and `reopen` re-opens FILE by name for
//! operators who move it away with an external logrotate.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

/// Settings that may change while the writer runs.
#[derive(Debug)]
pub struct RotateControl {
    /// Rotate before a line would take FILE past this many bytes; 0: never.
    pub size: AtomicU64,
    /// Rotated files kept; 0: FILE is truncated at rotation.
    pub keep: AtomicUsize,
    /// Re-open FILE by name before the next write.
    pub reopen: AtomicBool,
}

impl RotateControl {
    pub fn new(size: u64, keep: usize) -> Arc<RotateControl> {
        Arc::new(RotateControl {
            size: AtomicU64::new(size),
            keep: AtomicUsize::new(keep),
            reopen: AtomicBool::new(false),
        })
    }

    pub fn set(&self, size: u64, keep: usize) {
        self.size.store(size, Ordering::Relaxed);
        self.keep.store(keep, Ordering::Relaxed);
    }
}

pub struct RotatingWriter {
    path: PathBuf,
    file: BufWriter<File>,
    /// Bytes in FILE (including buffered ones).
    len: u64,
    /// Bytes after the last newline seen: an incomplete line.
    partial: Vec<u8>,
    ctl: Arc<RotateControl>,
    /// Rotations done, for tests and logs.
    pub rotations: u64,
}

fn open_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    Ok((BufWriter::with_capacity(64 << 10, f), len))
}

/// `FILE.n`.
pub fn rotated_name(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingWriter {
    pub fn open(path: &Path, ctl: Arc<RotateControl>) -> io::Result<RotatingWriter> {
        let (file, len) = open_append(path)?;
        Ok(RotatingWriter {
            path: path.to_path_buf(),
            file,
            len,
            partial: Vec::new(),
            ctl,
            rotations: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        let keep = self.ctl.keep.load(Ordering::Relaxed);
        // Drop what is beyond `keep` (it may have shrunk since the last rotation).
        let mut n = keep + 1;
        while rotated_name(&self.path, n).exists() {
            fs::remove_file(rotated_name(&self.path, n))?;
            n += 1;
        }
        if keep == 0 {
            let f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            drop(f);
        } else {
            for i in (1..keep).rev() {
                let from = rotated_name(&self.path, i);
                if from.exists() {
                    fs::rename(&from, rotated_name(&self.path, i + 1))?;
                }
            }
            fs::rename(&self.path, rotated_name(&self.path, 1))?;
        }
        let (file, len) = open_append(&self.path)?;
        self.file = file;
        self.len = len;
        self.rotations += 1;
        Ok(())
    }

    fn reopen_if_asked(&mut self) -> io::Result<()> {
        if self.ctl.reopen.swap(false, Ordering::Relaxed) {
            self.file.flush()?;
            let (file, len) = open_append(&self.path)?;
            self.file = file;
            self.len = len;
        }
        Ok(())
    }

    /// Writes one complete line (ending in '\n'), rotating first if it would not fit.
    fn put_line(&mut self, line: &[u8]) -> io::Result<()> {
        let size = self.ctl.size.load(Ordering::Relaxed);
        if size > 0 && self.len > 0 && self.len + line.len() as u64 > size {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.len += line.len() as u64;
        Ok(())
    }
}

impl Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reopen_if_asked()?;
        let mut rest = buf;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl + 1);
            if self.partial.is_empty() {
                self.put_line(head)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.put_line(&line)?;
            }
            rest = tail;
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    /// Flushes complete lines; an incomplete one waits for its newline.
    fn flush(&mut self) -> io::Result<()> {
        self.reopen_if_asked()?;
        self.file.flush()
    }
}

impl Drop for RotatingWriter {
    /// Writes an unterminated last line as is (nothing is lost), flushes and syncs.
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let p = std::mem::take(&mut self.partial);
            let _ = self.file.write_all(&p);
        }
        let _ = self.file.flush();
        let _ = self.file.get_ref().sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let p =
                std::env::temp_dir().join(format!("notify-rotate-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i * 7 % 90)))
            .collect()
    }

    /// Files oldest first: FILE.N ... FILE.1, FILE.
    fn files(path: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..100)
            .map(|i| rotated_name(path, i))
            .take_while(|p| p.exists())
            .collect();
        v.reverse();
        v.push(path.to_path_buf());
        v
    }

    /// Writes `input` cut at awkward places (mid-line, several lines per write).
    fn write_chopped(w: &mut RotatingWriter, input: &[String]) {
        let all: Vec<u8> = input.concat().into_bytes();
        let mut i = 0;
        let mut step = 1;
        while i < all.len() {
            let end = (i + step).min(all.len());
            w.write_all(&all[i..end]).unwrap();
            if step % 3 == 0 {
                w.flush().unwrap();
            }
            i = end;
            step = step % 97 + 13;
        }
        w.flush().unwrap();
    }

    #[test]
    fn rotates_between_lines_and_keeps_n() {
        let d = Dir::new("keep");
        let path = d.0.join("events.jsonl");
        let input = lines(600);
        let ctl = RotateControl::new(4096, 3);
        let mut w = RotatingWriter::open(&path, ctl).unwrap();
        write_chopped(&mut w, &input);
        assert!(w.rotations > 3, "{} rotations", w.rotations);
        drop(w);
        let fs_ = files(&path);
        assert_eq!(fs_.len(), 4, "FILE and 3 rotated: {fs_:?}");
        assert!(!rotated_name(&path, 4).exists());
        let mut got = String::new();
        for f in &fs_ {
            let t = fs::read_to_string(f).unwrap();
            assert!(t.len() <= 4096, "{} has {} bytes", f.display(), t.len());
            assert!(t.ends_with('\n'), "{} ends mid-line", f.display());
            for l in t.lines() {
                assert!(
                    l.starts_with("{\"seq\":") && l.ends_with("\"}"),
                    "split line {l:?}"
                );
            }
            got.push_str(&t);
        }
        // What is kept is exactly the newest lines, in order, nothing lost between files.
        let all = input.concat();
        assert!(
            all.ends_with(&got),
            "kept files are not the tail of the input"
        );
        assert!(got.len() > 3 * 3000);
    }

    #[test]
    fn a_line_longer_than_the_size_goes_whole_into_its_own_file() {
        let d = Dir::new("long");
        let path = d.0.join("log");
        let mut w = RotatingWriter::open(&path, RotateControl::new(4096, 5)).unwrap();
        let big = format!("{}\n", "y".repeat(10_000));
        w.write_all(b"small\n").unwrap();
        w.write_all(big.as_bytes()).unwrap();
        w.write_all(b"after\n").unwrap();
        drop(w);
        assert_eq!(
            fs::read_to_string(rotated_name(&path, 2)).unwrap(),
            "small\n"
        );
        assert_eq!(fs::read_to_string(rotated_name(&path, 1)).unwrap(), big);
        assert_eq!(fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[test]
    fn keep_zero_truncates_and_size_zero_never_rotates() {
        let d = Dir::new("zero");
        let path = d.0.join("log");
        let ctl = RotateControl::new(4096, 0);
        let mut w = RotatingWriter::open(&path, ctl.clone()).unwrap();
        write_chopped(&mut w, &lines(300));
        w.flush().unwrap();
        assert!(!rotated_name(&path, 1).exists());
        assert!(fs::metadata(&path).unwrap().len() <= 4096);
        // Live change: no rotation at all from now on.
        ctl.set(0, 2);
        write_chopped(&mut w, &lines(300));
        drop(w);
        assert!(!rotated_name(&path, 1).exists());
        assert!(fs::metadata(&path).unwrap().len() > 4096);
    }

    #[test]
    fn live_shrink_of_keep_removes_the_excess() {
        let d = Dir::new("shrink");
        let path = d.0.join("log");
        let ctl = RotateControl::new(4096, 6);
        let mut w = RotatingWriter::open(&path, ctl.clone()).unwrap();
        write_chopped(&mut w, &lines(800));
        assert!(rotated_name(&path, 6).exists());
        ctl.set(4096, 2);
        write_chopped(&mut w, &lines(100));
        drop(w);
        assert!(rotated_name(&path, 2).exists());
        assert!(!rotated_name(&path, 3).exists(), "{:?}", files(&path));
        assert!(!rotated_name(&path, 6).exists());
    }

    #[test]
    fn appends_to_an_existing_file_and_reopens_on_request() {
        let d = Dir::new("reopen");
        let path = d.0.join("log");
        fs::write(&path, "old\n").unwrap();
        let ctl = RotateControl::new(0, 1);
        let mut w = RotatingWriter::open(&path, ctl.clone()).unwrap();
        w.write_all(b"one\n").unwrap();
        w.flush().unwrap();
        // An external logrotate moves the file, then signals.
        fs::rename(&path, d.0.join("moved")).unwrap();
        ctl.reopen.store(true, Ordering::Relaxed);
        w.write_all(b"two\n").unwrap();
        // An unterminated tail is written at drop, not lost.
        w.write_all(b"tail").unwrap();
        drop(w);
        assert_eq!(fs::read_to_string(d.0.join("moved")).unwrap(), "old\none\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\ntail");
    }
}
