//! Telling XFS of a record's range on its current mount (7.0+), and XFS's confirmation: for
//! each read that fails, XFS reports data loss for the read's file owners (fserror). The agent
//! reads those reports on a witness of its own right after each failed read (fanotify folds
//! unread reports into one, so waiting until the end would name only the first file) and says
//! which owners GETFSMAP names there XFS reported, and which it did not.

use std::{collections::BTreeSet, time::Duration};

use notify_model::{
    journal::{Record, Via},
    record::{AgentRecord, OwnerReport},
};

use crate::{
    agent::{Agent, Tell, replay, tell},
    probe::witness::{Seen, Witness},
    resolve::{geometry, site::Site},
};

/// How long XFS's reports of one failed read may take (they come from a kworker).
pub const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// What telling XFS of a record's range came to on the current mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told {
    No,
    /// Earlier on this mount (the journal says so).
    Earlier,
    /// Just now, with this many failed reads (XFS reported each one's owners).
    Now {
        bad: usize,
    },
}

impl Told {
    pub fn yes(self) -> bool {
        self != Told::No
    }
}

/// The file owners (inodes) whose blocks meet sectors `[sector, sector + sectors)` of the data
/// device.
pub fn file_owners_in(owners: &[OwnerReport], sector: u64, sectors: u64) -> BTreeSet<u64> {
    let (lo, hi) = (sector * 512, (sector + sectors) * 512);
    owners
        .iter()
        .filter(|o| !o.metadata && o.physical < hi && lo < o.physical + o.length)
        .filter_map(|o| o.ino)
        .collect()
}

/// The confirmation record: the file owners of the failed reads against what XFS reported.
pub fn reported(id: u64, disk: &str, owners: &BTreeSet<u64>, seen: &Seen) -> AgentRecord {
    AgentRecord::XfsReported {
        id,
        disk: disk.to_string(),
        reported: seen.inos.iter().copied().collect(),
        owners: owners.iter().copied().collect(),
        missing: owners.difference(&seen.inos).copied().collect(),
        merged: seen.merged,
    }
}

impl Agent {
    /// Tells XFS of `r`'s range on `site`'s current mount, once per mount; what XFS reported
    /// follows as `xfs_reported` when a read failed.
    pub(super) fn tell_xfs(&mut self, r: &Record, site: &Site, out: &mut Vec<AgentRecord>) -> Told {
        let Tell::Verify = self.tell else {
            return Told::No;
        };
        let mount = super::pass::mount_id(&site.mount_point);
        if self.journal.told(r.id, &mount, Via::VerifyMedia) {
            return Told::Earlier;
        }
        let Ok(range) = geometry::dax_to_fs_range(
            r.damage.dax_offset,
            r.damage.len,
            site.part_start,
            site.part_bytes,
        ) else {
            return Told::No;
        };
        let (start, end) = tell::sectors(range.physical, range.length);
        let owners = replay::owners_only(site, r.damage.dax_offset, r.damage.len);
        let witness = Witness::open(&site.mount_point)
            .inspect_err(|e| log::warn!("fserror witness on {}: {e}", site.mount_point.display()))
            .ok();
        let mut seen = Seen::default();
        let mut wanted = BTreeSet::new();
        let result = tell::verify(&site.mount_point, start, end, |sector| {
            let want = file_owners_in(&owners, sector, tell::IO_SECTORS);
            wanted.extend(want.iter().copied());
            if let Some(w) = &witness
                && let Err(e) = w.until(&want, CONFIRM_WAIT, &mut seen)
            {
                log::warn!("fserror witness: {e}");
            }
        });
        let disk = r.damage.dax.name.clone();
        let (told, rec) = match result {
            Ok(v) => {
                let note = format!(
                    "verified sectors {}..{}: {} bad read(s)",
                    v.start,
                    v.end,
                    v.bad.len()
                );
                if let Err(e) = self
                    .journal
                    .mark_told(r.id, &mount, Via::VerifyMedia, &note)
                {
                    out.push(super::intake::write_failed(
                        "mark_told",
                        r,
                        &e,
                        "XFS was told; the journal does not say so, so it is told again on this \
                         mount at the next pass (harmless: XFS reads the range again)",
                    ));
                }
                (
                    Told::Now { bad: v.bad.len() },
                    AgentRecord::XfsTold {
                        id: r.id,
                        disk: disk.clone(),
                        mount_point: site.mount_point.clone(),
                        mount,
                        start: v.start,
                        end: v.end,
                        bad: v.bad,
                        error: None,
                    },
                )
            }
            Err(e) => (
                Told::No,
                AgentRecord::XfsTold {
                    id: r.id,
                    disk: disk.clone(),
                    mount_point: site.mount_point.clone(),
                    mount,
                    start,
                    end,
                    bad: vec![],
                    error: Some(e.to_string()),
                },
            ),
        };
        out.push(rec);
        if matches!(told, Told::Now { bad } if bad > 0) && witness.is_some() {
            out.push(reported(r.id, &disk, &wanted, &seen));
        }
        told
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(ino: Option<u64>, physical: u64, length: u64, metadata: bool) -> OwnerReport {
        OwnerReport {
            kind: if metadata { "ag header" } else { "file" }.into(),
            ino,
            paths: vec![],
            ranges: vec![],
            physical,
            length,
            shared: false,
            metadata,
        }
    }

    #[test]
    fn a_failed_read_wants_the_file_owners_it_meets() {
        let owners = [
            owner(Some(131), 4096, 4096, false),
            owner(Some(132), 8192, 4096, false),
            owner(None, 4096, 4096, true),
        ];
        // Sectors 8..16 are bytes 4096..8192: file 131 only; metadata is never wanted.
        assert_eq!(file_owners_in(&owners, 8, 8), BTreeSet::from([131]));
        assert_eq!(file_owners_in(&owners, 12, 8), BTreeSet::from([131, 132]));
        assert!(file_owners_in(&owners, 100, 8).is_empty());
        let seen = Seen {
            inos: BTreeSet::from([131]),
            merged: 1,
        };
        match reported(7, "pmem0", &BTreeSet::from([131, 132]), &seen) {
            AgentRecord::XfsReported {
                reported,
                missing,
                merged,
                ..
            } => assert_eq!((reported, missing, merged), (vec![131], vec![132], 1)),
            other => panic!("{other:?}"),
        }
    }
}
