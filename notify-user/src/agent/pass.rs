//! A replay pass over one pmem disk, run when a filesystem on it becomes ready (and at start):
//!
//! 1. records whose namespace changed are closed as stale (never acted on), and no-holder records
//!    of a disk that holds another filesystem or a device-mapper target (which never register as
//!    dax holder) are closed with that reason;
//! 2. XFS itself is told of every record's range, once per mount (7.0+:
//!    `XFS_IOC_VERIFY_MEDIA`, a record told on an earlier mount is told again), and its
//!    data-loss reports are tied to the record ([`crate::agent::confirm`]);
//! 3. pending records are resolved (GETFSMAP owners, mappers) and acted on by policy, and only
//!    then marked replayed.

use std::{fs, path::Path};

use notify_model::{
    journal::{Reason, Record, Status, Via},
    record::{AgentRecord, OwnerReport},
};

use crate::{
    agent::{Agent, Tell, badblocks, confirm::Told, redrive, replay, tell},
    kernel::{mountinfo, pmem::PmemDisk},
    resolve::site::{self, Site},
};

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8+): a mount id never reused in a boot.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
const STATX_MNT_ID: u32 = 0x1000;

/// The mount a path is on, unique in this boot: boot id and the kernel's mount id.
pub fn mount_id(mount: &Path) -> String {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let Ok(c) = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()) else {
        return format!("{boot}/?");
    };
    let mut buf = [0u8; 256];
    // SAFETY: statx fills at most 256 bytes (struct statx) of buf.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            STATX_MNT_ID_UNIQUE | STATX_MNT_ID,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return format!("{boot}/?");
    }
    let mask = u32::from_ne_bytes(buf[0..4].try_into().unwrap());
    let id = u64::from_ne_bytes(buf[144..152].try_into().unwrap());
    if mask & STATX_MNT_ID_UNIQUE != 0 {
        format!("{boot}/{id}")
    } else {
        // A reusable id: good enough where XFS cannot be told anyway (before 6.8).
        format!("{boot}/mnt{id}")
    }
}

/// Why a disk never gets an XFS holder, when it is in use otherwise: mounted with another
/// filesystem, or held by a device-mapper target.
fn never_xfs(disk: &PmemDisk) -> Option<String> {
    let mounts = mountinfo::read().unwrap_or_default();
    let on_disk = |m: &&mountinfo::Mount| {
        m.source == format!("/dev/{}", disk.name)
            || m.source.starts_with(&format!("/dev/{}p", disk.name))
    };
    if let Some(m) = mounts.iter().filter(on_disk).find(|m| m.fstype != "xfs") {
        return Some(format!(
            "{} holds {} (mounted at {}), which never registers as the dax holder: there is \
             no XFS to tell",
            disk.name,
            m.fstype,
            m.mount_point.display()
        ));
    }
    let holders = fs::read_dir(format!("/sys/block/{}/holders", disk.name))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !holders.is_empty() && !mounts.iter().any(|m| on_disk(&m) && m.fstype == "xfs") {
        return Some(format!(
            "{} is held by {} (device-mapper), which never registers as the dax holder: there \
             is no XFS to tell",
            disk.name,
            holders.join(", ")
        ));
    }
    None
}

/// What to tell an operator about a replayed range.
fn advice(site: &Site, owners: &[OwnerReport], told: Told, tell: &Tell) -> Vec<String> {
    let mut out = Vec::new();
    if told == (Told::Now { bad: 0 }) {
        // XFS reads through the pmem driver, which refuses only the sectors it lists as bad:
        // a poisoned page the platform never listed (a software injection, or a machine check
        // whose range has not reached badblocks yet) reads clean, and XFS records nothing.
        out.push(format!(
            "XFS read the range clean: {} does not list it in its bad blocks, so XFS recorded no \
             loss; if the memory is bad, the platform has not said so yet",
            site.disk
        ));
    }
    if !told.yes()
        && let Tell::Cannot(why) = tell
    {
        out.push(format!(
            "{why}: XFS has not recorded this loss; run `xfs_scrub -x {}` (a media scan) so it \
             does",
            site.mount_point.display()
        ));
    }
    let meta: Vec<&str> = owners
        .iter()
        .filter(|o| o.metadata)
        .map(|o| o.kind.as_str())
        .collect();
    if !meta.is_empty() {
        out.push(format!(
            "metadata is damaged ({}): XFS would have shut the filesystem down; unmount {} and \
             run `xfs_repair` on its device",
            meta.join(", "),
            site.mount_point.display()
        ));
    }
    out
}

impl Agent {
    /// Records of `disk` not closed, in id order. Records of the batch being handed over that
    /// are stored but not yet acknowledged are left for after their `journaled` record (a pass
    /// run for an earlier item of the batch, e.g. closing a disk that never gets an XFS holder,
    /// then handles them in their own turn).
    fn open_records(&self, disk: &str) -> Vec<Record> {
        let staged: Vec<u64> = self
            .staged
            .iter()
            .filter_map(|(_, r)| match r {
                AgentRecord::Journaled { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        self.journal
            .list()
            .into_iter()
            .filter(|r| r.damage.dax.name == disk && r.state != Status::Closed)
            .filter(|r| !staged.contains(&r.id))
            .cloned()
            .collect()
    }

    fn close(&mut self, r: &Record, why: String, out: &mut Vec<AgentRecord>) {
        if let Err(e) = self.journal.close(r.id, &why) {
            out.push(super::intake::write_failed(
                "close",
                r,
                &e,
                "the record stays open and is considered again at the next pass",
            ));
            return;
        }
        out.push(AgentRecord::Closed {
            id: r.id,
            disk: r.damage.dax.name.clone(),
            why,
        });
    }

    /// Closes what must never be acted on; returns the records still open.
    fn close_the_unactionable(
        &mut self,
        disk: &PmemDisk,
        out: &mut Vec<AgentRecord>,
    ) -> Vec<Record> {
        let now = disk.namespace.as_ref().map(|n| n.identity());
        let never = never_xfs(disk);
        let mut open = Vec::new();
        for r in self.open_records(&disk.name) {
            if let (Some(was), Some(is)) = (&r.damage.namespace, &now)
                && was != is
            {
                let why = format!(
                    "stale: the record is for namespace {was}, {} is now {is}",
                    disk.name
                );
                self.close(&r, why, out);
                continue;
            }
            if let Some(why) = &never
                && r.state == Status::Pending
                && matches!(r.damage.reason, Reason::NoHolder | Reason::Badblocks)
            {
                self.close(&r, why.clone(), out);
                continue;
            }
            open.push(r);
        }
        open
    }

    /// Closes what must never be acted on of `disk` now (after a no-holder drop: a disk held
    /// by ext4 or device-mapper never gets an XFS holder to replay into).
    pub(super) fn close_if_never_xfs(&mut self, disk: &str) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        if let Some(d) = self.scan_disks().into_iter().find(|x| x.name == disk) {
            self.close_the_unactionable(&d, &mut out);
        }
        out
    }

    /// The pass over `disk` (see the module docs); returns what it did.
    pub(super) fn replay_disk(&mut self, disk: &str) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        let Some(d) = self.scan_disks().into_iter().find(|x| x.name == disk) else {
            // Not here (yet): its records wait.
            return out;
        };
        let open = self.close_the_unactionable(&d, &mut out);
        let mut pending: Vec<(u64, Site, u64, u64, Told, bool)> = Vec::new();
        let bad = badblocks::read(&d.name).unwrap_or_default();
        for r in open {
            // A record replayed on an earlier mount is told again on this one (XFS keeps what
            // it was told in memory only) while the driver still lists its range bad; one no
            // longer listed (or never: XFS read it clean) has nothing left to tell, and every
            // pass that opens a mount can make an umount at that moment fail with EBUSY.
            let range = badblocks::ByteRange {
                start: r.damage.dax_offset,
                len: r.damage.len,
            };
            if r.state == Status::Replayed && !bad.iter().any(|b| b.overlaps(&range)) {
                continue;
            }
            let site = match site::find_site(disk, r.damage.dax_offset) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("finding the filesystem of {disk}: {e}");
                    continue;
                }
            };
            let told = self.tell_xfs(&r, &site, &mut out);
            let redriven = self.redrive && self.redrive_record(&r, &d, &site, &mut out);
            if r.state == Status::Pending {
                pending.push((
                    r.id,
                    site,
                    r.damage.dax_offset,
                    r.damage.len,
                    told,
                    redriven,
                ));
            }
        }
        // One walk of /proc for every pending record of the disk.
        // A re-driven record had XFS's own kill: the policy only reports its mappers.
        let (redriven, acted): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| p.5);
        let mut reports = Vec::new();
        for (batch, cfg) in [
            (acted, self.cfg.clone()),
            (
                redriven,
                crate::enforce::Config {
                    policy: notify_model::decision::Policy::Report,
                    ..self.cfg.clone()
                },
            ),
        ] {
            let items: Vec<(Site, u64, u64)> = batch
                .iter()
                .map(|(_, s, o, l, _, _)| (s.clone(), *o, *l))
                .collect();
            reports.extend(batch.into_iter().zip(replay::replay_batch(&cfg, &items)));
        }
        for ((id, site, _, _, told, _), mut report) in reports {
            report.xfs_told = told.yes();
            report.advice = advice(&site, &report.owners, told, &self.tell);
            let metadata: Vec<String> = report
                .owners
                .iter()
                .filter(|o| o.metadata)
                .map(|o| o.kind.clone())
                .collect();
            if self.metadata_shutdown && !metadata.is_empty() {
                let dry_run = self.cfg.dry_run;
                let error = if dry_run {
                    None
                } else {
                    tell::shut_down(&site.mount_point)
                        .err()
                        .map(|e| e.to_string())
                };
                eprintln!(
                    "notify: record {id}: metadata damaged ({}): {} {}",
                    metadata.join(", "),
                    if dry_run {
                        "would shut down"
                    } else {
                        "shut down"
                    },
                    site.mount_point.display()
                );
                out.push(AgentRecord::MetadataShutdown {
                    id,
                    disk: disk.to_string(),
                    mount_point: site.mount_point.clone(),
                    metadata,
                    dry_run,
                    error,
                });
            }
            for dec in &report.decisions {
                out.push(AgentRecord::Enforcement {
                    id,
                    decision: dec.clone(),
                });
            }
            // Acted (or decided not to): only now is the record done.
            if let Err(e) =
                self.journal
                    .mark_replayed_with(id, &report.summary(), Some(report.outcome()))
                && let Some(r) = self.journal.get(id)
            {
                out.push(super::intake::write_failed(
                    "mark_replayed",
                    r,
                    &e,
                    "acted on; the record stays pending and is replayed again at the next pass \
                     or start (mappers are scanned again then, so no process is signalled twice)",
                ));
            }
            out.push(AgentRecord::Replayed {
                id,
                disk: disk.to_string(),
                ndctl: self.ndctl_names(disk),
                report,
            });
        }
        out
    }

    /// The opt-in re-drive of one record (refused unless every safety check holds).
    fn redrive_record(
        &mut self,
        r: &Record,
        disk: &PmemDisk,
        site: &Site,
        out: &mut Vec<AgentRecord>,
    ) -> bool {
        let mount = mount_id(&site.mount_point);
        let owners = replay::owners_only(site, r.damage.dax_offset, r.damage.len);
        let bad = badblocks::read(&disk.name).unwrap_or_default();
        let c = redrive::Candidate {
            disk,
            dax_offset: r.damage.dax_offset,
            len: r.damage.len,
            namespace: r.damage.namespace.as_deref(),
            badblocks: &bad,
            owners: &owners,
            redriven_here: self.journal.told(r.id, &mount, Via::HardOfflinePage),
        };
        let phys = match redrive::check(&c) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("notify: re-drive of record {} refused: {why}", r.id);
                out.push(AgentRecord::RedriveRefused {
                    id: r.id,
                    disk: disk.name.clone(),
                    why,
                });
                return false;
            }
        };
        let dry_run = self.cfg.dry_run;
        let mut error = None;
        if !dry_run {
            for p in &phys {
                if let Err(e) = redrive::write_hard_offline(redrive::hard_offline_page(), *p) {
                    error = Some(format!(
                        "writing {p:#x} to {}: {e}",
                        redrive::hard_offline_page().display()
                    ));
                    break;
                }
            }
            if error.is_none() {
                let note = format!("{} page(s) re-driven", phys.len());
                if let Err(e) = self
                    .journal
                    .mark_told(r.id, &mount, Via::HardOfflinePage, &note)
                {
                    out.push(super::intake::write_failed(
                        "mark_redriven",
                        r,
                        &e,
                        "re-driven; the journal does not say so: if the record is still \
                         pending at the next pass on this mount, its pages are re-driven again \
                         (the journal was the only record that they were)",
                    ));
                }
            }
        }
        eprintln!(
            "notify: re-drive of record {}: {} page(s){}{}",
            r.id,
            phys.len(),
            if dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            },
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        let ok = error.is_none() && !dry_run;
        out.push(AgentRecord::Redriven {
            id: r.id,
            disk: disk.name.clone(),
            phys,
            dry_run,
            error,
        });
        ok
    }
}

#[cfg(test)]
mod tests {
    use notify_model::{
        dev::Dev,
        journal::{Damage, DaxDevice, Reason, Status},
    };

    use super::*;
    use crate::kernel::pmem::Namespace;

    fn namespace(uuid: &str) -> Namespace {
        Namespace {
            name: "namespace9.0".into(),
            region: Some("region9".into()),
            uuid: Some(uuid.into()),
            provider: Some("ACPI.NFIT".into()),
            mode: Some("fsdax".into()),
            resource: Some(0x1_0000_0000),
            size: Some(1 << 30),
            claims: None,
        }
    }

    fn damage(ns: Option<&Namespace>) -> Damage {
        Damage {
            // A disk no test machine has: nothing mounted on it, no sysfs holders.
            dax: DaxDevice {
                name: "pmem-notify-test".into(),
                major: 259,
                minor: 99,
            },
            dax_offset: 0x20_0000,
            len: 4096,
            mf_flags: 0,
            kernel_seq: 1,
            ktime_ns: 1,
            wall_ns: 1,
            reason: Reason::NoHolder,
            namespace: ns.map(|n| n.identity()),
        }
    }

    #[test]
    fn a_record_of_another_namespace_is_closed_stale_and_never_acted_on() {
        let dir = std::env::temp_dir().join(format!("notify-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut agent = Agent::for_test(dir.join("journal"));
        let (was, is) = (namespace("aaaa-old"), namespace("bbbb-new"));
        let stale = agent.journal.append(damage(Some(&was))).unwrap();
        let same = agent.journal.append(damage(Some(&is))).unwrap();
        let unknown = agent.journal.append(damage(None)).unwrap();
        let disk = PmemDisk {
            name: "pmem-notify-test".into(),
            dev: Dev(259 << 20 | 99),
            phys_start: Some(0x1_0000_0000),
            size: 1 << 30,
            namespace: Some(is),
        };
        let mut out = Vec::new();
        let open: Vec<u64> = agent
            .close_the_unactionable(&disk, &mut out)
            .iter()
            .map(|r| r.id)
            .collect();
        // The same namespace, and a record journaled before identities were kept, stay open.
        assert_eq!(open, vec![same, unknown]);
        assert_eq!(agent.journal.get(stale).unwrap().state, Status::Closed);
        match &out[..] {
            [AgentRecord::Closed { id, why, .. }] => {
                assert_eq!(*id, stale);
                assert!(why.starts_with("stale:"), "{why}");
                assert!(
                    why.contains("aaaa-old") && why.contains("bbbb-new"),
                    "{why}"
                );
            }
            other => panic!("want one closed record, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
    struct SmallFs(std::path::PathBuf);

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    #[ignore = "needs root (mount): run as root with --include-ignored"]
    fn a_close_the_full_journal_cannot_store_is_reported_and_the_record_stays_open() {
        // SAFETY: geteuid cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root to mount a tmpfs");
        let dir = std::env::temp_dir().join(format!("notify-full-close-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "notify-test"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        let fs = SmallFs(dir);
        let mut agent = Agent::for_test(fs.0.join("journal"));
        let (was, is) = (namespace("aaaa-old"), namespace("bbbb-new"));
        let stale = agent.journal.append(damage(Some(&was))).unwrap();
        // Records that stay open, until the last page of the journal has no room for the
        // close (a state frame of ~190 bytes): then it needs a page the full tmpfs cannot give.
        let room = |p: &std::path::Path| {
            let len = std::fs::metadata(p).unwrap().len();
            (4096 - len % 4096) % 4096
        };
        for _ in 0..100 {
            if room(&fs.0.join("journal")) < 150 {
                break;
            }
            agent.journal.append(damage(Some(&is))).unwrap();
        }
        assert!(room(&fs.0.join("journal")) < 150);
        // Fill the tmpfs to its last page.
        let mut f = std::fs::File::create(fs.0.join("filler")).unwrap();
        while std::io::Write::write_all(&mut f, &[0u8; 4096]).is_ok() {}
        let disk = PmemDisk {
            name: "pmem-notify-test".into(),
            dev: Dev(259 << 20 | 99),
            phys_start: Some(0x1_0000_0000),
            size: 1 << 30,
            namespace: Some(is),
        };
        let mut out = Vec::new();
        agent.close_the_unactionable(&disk, &mut out);
        match &out[..] {
            [
                AgentRecord::JournalWriteFailed {
                    op,
                    id: Some(id),
                    error,
                    action,
                    ..
                },
            ] => {
                assert_eq!((op.as_str(), *id), ("close", stale));
                assert!(error.contains("No space left on device"), "{error}");
                assert!(action.contains("stays open"), "{action}");
            }
            other => panic!("want one journal_write_failed record, got {other:?}"),
        }
        assert_eq!(agent.journal.get(stale).unwrap().state, Status::Pending);
        drop(agent);
        drop(f);
        std::fs::remove_file(fs.0.join("filler")).unwrap();
        let (j, rec) = crate::agent::journal::Journal::open(fs.0.join("journal")).unwrap();
        assert!(rec.is_clean(), "{rec:?}");
        assert_eq!(j.get(stale).unwrap().state, Status::Pending);
    }
}
