//! The kernel lines the lab knows: which Debian suites carry each, how its packages are named
//! and laid out, and what `--kernel` accepts. Facts only; fetching is `kernel`'s.

use anyhow::{Result, bail};

/// A kernel line the lab knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Debian bookworm's 6.1 (`linux-image-6.1.0-N-amd64-unsigned`).
    V6_1,
    /// 6.12 from bookworm-security/backports (`linux-image-6.12.N+...-amd64-unsigned`).
    V6_12,
    /// 7.2 from sid (metapackage `linux-image-7.2.N+debXX-amd64`).
    V7_2,
    /// 7.3 from trixie-backports (metapackage `linux-image-7.3.N+debXX-amd64`).
    V7_3,
}

/// How a line's packages are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One `linux-image-V-amd64-unsigned` with `boot/vmlinuz-V` and the modules.
    Image,
    /// A `linux-image-V-amd64` metapackage depending on `linux-binary-V-amd64`,
    /// `linux-modules-V-amd64` and `linux-base-V-amd64`.
    Split,
}

/// Every line the lab knows, oldest first.
pub const KNOWN: &[Flavor] = &[Flavor::V6_1, Flavor::V6_12, Flavor::V7_2, Flavor::V7_3];

/// The newest line the lab knows (`--kernel newest`; with 6.1 and 6.12, `--kernel all`).
pub const NEWEST: Flavor = Flavor::V7_3;

/// `--kernel all`: the two bookworm-era lines and the newest.
pub const ALL: &[Flavor] = &[Flavor::V6_1, Flavor::V6_12, NEWEST];

/// Suites of the system's bookworm mirror the 6.1 and 6.12 images come from.
pub const BOOKWORM_SUITES: &[&str] = &["bookworm", "bookworm-updates", "bookworm-backports"];

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::V6_1 => "6.1",
            Flavor::V6_12 => "6.12",
            Flavor::V7_2 => "7.2",
            Flavor::V7_3 => "7.3",
        }
    }

    pub fn layout(self) -> Layout {
        match self {
            Flavor::V6_1 | Flavor::V6_12 => Layout::Image,
            Flavor::V7_2 | Flavor::V7_3 => Layout::Split,
        }
    }

    /// Suites of the Debian mirror to search, and whether to add bookworm-security.
    pub fn suites(self) -> (&'static [&'static str], bool) {
        match self {
            Flavor::V6_1 | Flavor::V6_12 => (BOOKWORM_SUITES, true),
            Flavor::V7_2 => (&["sid"], false),
            Flavor::V7_3 => (&["trixie-backports"], false),
        }
    }

    /// One `--kernel` value: a line, `newest`, `all`, or a comma-separated list of those
    /// (in order, each line once).
    pub fn parse(s: &str) -> Result<Vec<Flavor>> {
        let mut out: Vec<Flavor> = Vec::new();
        for item in s.split(',').map(str::trim) {
            let add: Vec<Flavor> = match item {
                "all" => ALL.to_vec(),
                "newest" => vec![NEWEST],
                _ => match KNOWN.iter().find(|f| f.label() == item) {
                    Some(f) => vec![*f],
                    None => bail!(
                        "unknown kernel {item:?}: use {}, newest (= {}) or all ({})",
                        KNOWN
                            .iter()
                            .map(|f| f.label())
                            .collect::<Vec<_>>()
                            .join(", "),
                        NEWEST.label(),
                        ALL.iter().map(|f| f.label()).collect::<Vec<_>>().join(", "),
                    ),
                },
            };
            for f in add {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Whether an apt package name is the image package of this kernel line
    /// (for `Layout::Split`, the metapackage). Cloud, rt and debug variants are not.
    pub fn matches(self, pkg: &str) -> bool {
        let suffix = match self.layout() {
            Layout::Image => "-amd64-unsigned",
            Layout::Split => "-amd64",
        };
        let Some(rest) = pkg
            .strip_prefix("linux-image-")
            .and_then(|r| r.strip_suffix(suffix))
        else {
            return false;
        };
        // N[+tag]: 117+deb12, 9+bpo, 38, 4+deb13.
        let patch_tag = |r: &str| {
            let (num, tag) = r.split_once('+').unwrap_or((r, "x"));
            !num.is_empty()
                && num.chars().all(|c| c.is_ascii_digit())
                && !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '~')
        };
        match self {
            // 6.1.0-56
            Flavor::V6_1 => rest
                .strip_prefix("6.1.0-")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
            Flavor::V6_12 => rest.strip_prefix("6.12.").is_some_and(patch_tag),
            Flavor::V7_2 => rest.strip_prefix("7.2.").is_some_and(patch_tag),
            Flavor::V7_3 => rest.strip_prefix("7.3.").is_some_and(patch_tag),
        }
    }

    /// `apt-cache search --names-only` pattern for candidates (filtered by `matches`).
    pub fn search_pattern(self) -> String {
        let line = self.label().replace('.', "\\.");
        match self.layout() {
            Layout::Image => format!("^linux-image-{line}\\.[0-9.]+.*-amd64-unsigned$"),
            Layout::Split => format!("^linux-image-{line}\\.[0-9]+.*-amd64$"),
        }
    }
}
