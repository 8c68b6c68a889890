//! Inode -> path(s) for reports, and the mount point a path lives on.

use std::{
    collections::HashMap,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The mount point containing `path`: walk up while the device stays the same.
pub fn mount_root(path: &Path) -> io::Result<PathBuf> {
    let path = path.canonicalize()?;
    let dev = std::fs::metadata(&path)?.dev();
    let mut cur = path.as_path();
    while let Some(parent) = cur.parent() {
        if std::fs::metadata(parent)?.dev() != dev {
            break;
        }
        cur = parent;
    }
    Ok(cur.to_path_buf())
}

/// Inode -> path(s) for reports, by walking the mount once and caching the answer.
///
/// Why a walk rather than XFS handles: `open_by_handle_at` gives an fd, not a name; names need
/// parent pointers, which only very new XFS has. A walk is O(files) once; the cache makes every
/// later lookup free. The walk stays on the mount's device (no crossing into other mounts),
/// does not follow symlinks, and collects every hard link. Inodes that are no longer linked
/// (deleted but still mapped) have no path: lookups return an empty slice.
pub struct InodePaths {
    root: PathBuf,
    dev: u64,
    map: HashMap<u64, Vec<PathBuf>>,
    walked: bool,
}

impl InodePaths {
    pub fn new(mount_root: impl AsRef<Path>) -> io::Result<Self> {
        let root = mount_root.as_ref().to_path_buf();
        let dev = std::fs::metadata(&root)?.dev();
        Ok(InodePaths {
            root,
            dev,
            map: HashMap::new(),
            walked: false,
        })
    }

    /// Paths of `ino` (walks the mount on the first call, or again after `invalidate`).
    pub fn lookup(&mut self, ino: u64) -> io::Result<&[PathBuf]> {
        if !self.walked {
            self.walk()?;
        }
        Ok(self.map.get(&ino).map(|v| v.as_slice()).unwrap_or(&[]))
    }

    /// Forget the cache (files were created or renamed since).
    pub fn invalidate(&mut self) {
        self.map.clear();
        self.walked = false;
    }

    fn walk(&mut self) -> io::Result<()> {
        use std::os::unix::fs::DirEntryExt;
        self.map.clear();
        let root_ino = std::fs::metadata(&self.root)?.ino();
        self.map
            .entry(root_ino)
            .or_default()
            .push(self.root.clone());
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                // A directory that vanished or that we may not read: skip, don't fail the
                // whole lookup.
                Err(_) => continue,
            };
            for entry in rd.flatten() {
                let p = entry.path();
                let ft = match entry.file_type() {
                    Ok(ft) => ft,
                    Err(_) => continue,
                };
                if ft.is_dir() {
                    // Only directories need a stat: a mount point has another st_dev.
                    match std::fs::symlink_metadata(&p) {
                        Ok(md) if md.dev() == self.dev => {
                            self.map.entry(md.ino()).or_default().push(p.clone());
                            stack.push(p);
                        }
                        _ => {}
                    }
                } else {
                    // d_ino is the inode number for entries on this filesystem.
                    self.map.entry(entry.ino()).or_default().push(p);
                }
            }
        }
        self.walked = true;
        Ok(())
    }
}
