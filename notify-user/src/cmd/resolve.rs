//! `notify resolve`: who owns a damaged range and which processes map it, without acting.

use std::{path::PathBuf, process::ExitCode};

use notify_model::{decision::Policy, record::ReplayReport};

use crate::{
    agent::replay,
    cmd::{common::parse_number, exit::bad_input, preflight},
    enforce,
    export::sink::Format,
    resolve::{mappers, site},
};

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    /// A mounted XFS: --offset is a byte offset on its data device.
    #[arg(long, conflicts_with = "device", required_unless_present = "device")]
    pub mount: Option<PathBuf>,
    /// A pmem disk (/dev/pmemN): --offset is a byte offset on the dax device, as in a
    /// notification; the filesystem mounted on it (or on its partition) is found.
    #[arg(long)]
    pub device: Option<PathBuf>,
    /// Byte offset.
    #[arg(long, value_parser = parse_number)]
    pub offset: u64,
    /// Length in bytes (at least 1).
    #[arg(long, value_parser = parse_len, default_value = "4096")]
    pub len: u64,
    /// How to find the processes mapping the range: /proc, or the kernel's task_vma BPF
    /// iterator where it loads and pays for its load (auto: from 10,000 processes), only the
    /// iterator (kernel), or /proc/PID/maps of every process (proc: the PROCMAP_QUERY ioctl of
    /// Linux 6.11+, text: the maps text).
    #[arg(long, value_enum, default_value = "auto")]
    pub scan: mappers::Method,
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
    pub format: Format,
}

/// A length: a number, and not 0 (an empty range has no owner, and used to be reported as
/// "outside the filesystem").
fn parse_len(s: &str) -> Result<u64, String> {
    match parse_number(s)? {
        0 => Err("a range of 0 bytes has no owner: give at least 1 (default 4096, a page)".into()),
        n => Ok(n),
    }
}

pub fn run(a: ResolveArgs) -> anyhow::Result<ExitCode> {
    let (site, dax_offset) = match (a.mount, a.device) {
        (Some(m), _) => {
            preflight::xfs("--mount", &m).map_err(bad_input)?;
            let site = site::site_of_mount(&m).map_err(|e| {
                bad_input(format!(
                    "{}: {e}: give the mount point of an XFS",
                    m.display()
                ))
            })?;
            // --offset is on the filesystem's device: as a dax offset it is shifted by the
            // partition start.
            let off = a.offset + site.part_start;
            (site, off)
        }
        (None, Some(dev)) => {
            let name = dev
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let site = site::find_site(&name, a.offset)?.ok_or_else(|| {
                bad_input(format!(
                    "no XFS filesystem is mounted on {} (or on a partition of it covering \
                     offset {:#x}): mount it, or use --mount",
                    dev.display(),
                    a.offset
                ))
            })?;
            (site, a.offset)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let cfg = enforce::Config {
        policy: Policy::Report,
        dry_run: true,
        scan: a.scan,
        ..enforce::Config::default()
    };
    let report = replay::replay(&cfg, &site, dax_offset, a.len);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render(&report)),
    }
    Ok(if report.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as text, for `notify resolve`.
pub fn render(r: &ReplayReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: dax range {:#x}+{} -> {}",
        r.mount_point.display(),
        r.dax_offset,
        r.len,
        match r.fs_range {
            Some(f) => format!("filesystem bytes {:#x}+{}", f.physical, f.length),
            None => "outside the filesystem".into(),
        }
    );
    if let Some(e) = &r.error {
        let _ = writeln!(s, "error: {e}");
    }
    for o in &r.owners {
        let paths: Vec<String> = o.paths.iter().map(|p| p.display().to_string()).collect();
        match o.ino {
            Some(ino) => {
                let ranges: Vec<String> = o
                    .ranges
                    .iter()
                    .map(|(off, len)| format!("{off:#x}+{len}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "  owner {:<15} ino {ino:<10} {} file range {}{}",
                    o.kind,
                    if paths.is_empty() {
                        "(no path)".to_string()
                    } else {
                        paths.join(", ")
                    },
                    if ranges.is_empty() {
                        "-".to_string()
                    } else {
                        ranges.join(" ")
                    },
                    if o.shared { " (shared extent)" } else { "" }
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  owner {:<15} bytes {:#x}+{}{}",
                    o.kind,
                    o.physical,
                    o.length,
                    if o.metadata {
                        " (metadata: XFS would shut down)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    if r.owners.is_empty() && r.error.is_none() {
        let _ = writeln!(s, "  no owner");
    }
    for d in &r.decisions {
        let _ = writeln!(
            s,
            "  process {} ({}) {:?}: {}",
            d.pid, d.comm, d.action, d.reason
        );
    }
    s
}
