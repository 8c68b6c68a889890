//! Unit tests of the kernel package handling, on real package names and stanzas.

use super::*;
use crate::{
    apt::{newest_of, parse_mirrors, sources_list},
    kernel_line::{BOOKWORM_SUITES, KNOWN, NEWEST},
    util::natural_cmp,
};

#[test]
fn package_names() {
    assert!(Flavor::V6_1.matches("linux-image-6.1.0-56-amd64-unsigned"));
    assert!(!Flavor::V6_1.matches("linux-image-6.1.0-56-cloud-amd64-unsigned"));
    assert!(!Flavor::V6_1.matches("linux-image-6.12.117+deb12-amd64-unsigned"));
    assert!(Flavor::V6_12.matches("linux-image-6.12.117+deb12-amd64-unsigned"));
    assert!(Flavor::V6_12.matches("linux-image-6.12.9+bpo-amd64-unsigned"));
    assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-rt-amd64-unsigned"));
    assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-cloud-amd64-unsigned"));
    // Split layout (trixie-backports, sid): the metapackage, not its parts or variants.
    assert!(Flavor::V7_3.matches("linux-image-7.3.4+deb13-amd64"));
    assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-cloud-amd64"));
    assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-rt-amd64"));
    assert!(!Flavor::V7_3.matches("linux-binary-7.3.4+deb13-amd64"));
    assert!(!Flavor::V7_3.matches("linux-modules-7.3.4+deb13-amd64"));
    assert!(!Flavor::V7_3.matches("linux-image-amd64"));
    assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-amd64-dbg"));
    assert!(!Flavor::V7_3.matches("linux-image-7.2.13+deb14-amd64"));
    assert!(Flavor::V7_2.matches("linux-image-7.2.13+deb14-amd64"));
    assert!(Flavor::V7_2.matches("linux-image-7.2.6+deb13-amd64"));
    assert!(!Flavor::V7_2.matches("linux-image-7.20.1+deb14-amd64"));
    // 6.18 in trixie-backports is a full image, but not a line the lab fetches.
    assert!(!Flavor::V6_12.matches("linux-image-6.18.15+deb13-amd64"));
    assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-amd64"));
}

#[test]
fn kernel_names() {
    let labels = |v: Vec<Flavor>| v.iter().map(|f| f.label()).collect::<Vec<_>>();
    assert_eq!(
        labels(Flavor::parse("all").unwrap()),
        ["6.1", "6.12", "7.3"]
    );
    assert_eq!(labels(Flavor::parse("newest").unwrap()), ["7.3"]);
    assert_eq!(labels(Flavor::parse("7.2").unwrap()), ["7.2"]);
    assert_eq!(
        labels(Flavor::parse("6.12,newest,7.3").unwrap()),
        ["6.12", "7.3"]
    );
    assert_eq!(
        labels(Flavor::parse("all,7.2").unwrap()),
        ["6.1", "6.12", "7.3", "7.2"]
    );
    for bad in ["7.4", "", "6.1,", "6.1.0", "latest"] {
        let e = Flavor::parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("use 6.1, 6.12, 7.2, 7.3, newest (= 7.3)"),
            "{bad}: {e}"
        );
    }
    // The newest line the lab knows is the newest of KNOWN.
    assert!(
        KNOWN
            .iter()
            .all(|f| natural_cmp(f.label(), NEWEST.label()).is_le())
    );
}

#[test]
fn newest_in_search_output() {
    // apt-cache search output seen with trixie-backports and sid.
    let out = "linux-image-7.2.11+deb13-amd64 - Linux 7.2.11 for 64-bit PCs\n\
               linux-image-7.2.13+deb14-amd64 - Linux 7.2.13 for 64-bit PCs\n\
               linux-image-7.2.13+deb14-cloud-amd64 - Linux 7.2.13 for x86-64 cloud\n\
               linux-image-7.2.9+deb13-amd64 - Linux 7.2.9 for 64-bit PCs\n\
               linux-image-7.3.4+deb13-amd64 - Linux 7.3.4 for 64-bit PCs\n\
               linux-image-7.3.4+deb13-rt-amd64 - Linux 7.3.4 for 64-bit PCs, PREEMPT_RT\n";
    assert_eq!(
        newest_of(Flavor::V7_2, out).as_deref(),
        Some("linux-image-7.2.13+deb14-amd64")
    );
    assert_eq!(
        newest_of(Flavor::V7_3, out).as_deref(),
        Some("linux-image-7.3.4+deb13-amd64")
    );
    assert_eq!(newest_of(Flavor::V6_12, out), None);
    assert_eq!(
        release_of_image("linux-image-7.3.4+deb13-amd64"),
        Some("7.3.4+deb13-amd64")
    );
    assert_eq!(release_of_image("linux-binary-7.3.4+deb13-amd64"), None);
}

/// `apt-cache show --no-all-versions linux-image-7.3.4+deb13-amd64` (trixie-backports).
const META_7_3: &str = "Package: linux-image-7.3.4+deb13-amd64\n\
Source: linux-signed-amd64 (7.3.4+1~bpo13+1)\n\
Version: 7.3.4-1~bpo13+1\n\
Installed-Size: 15\n\
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>\n\
Architecture: amd64\n\
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n\
Pre-Depends: linux-base (>= 4.17~)\n\
Recommends: apparmor\n\
Breaks: fwupdate (<< 12-7), initramfs-tools (<< 0.120+deb8u2), wireless-regdb (<< 2019.06.03-1~)\n\
Description: Linux 7.3.4 for 64-bit PCs\n\
Size: 1900\n\
\n";

#[test]
fn metapackage_depends() {
    let parts = split_parts("linux-image-7.3.4+deb13-amd64", META_7_3).unwrap();
    let specs: Vec<String> = parts
        .iter()
        .map(|d| format!("{}={}", d.name, d.exact.as_deref().unwrap_or("?")))
        .collect();
    assert_eq!(
        specs,
        [
            "linux-base-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
            "linux-binary-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
            "linux-modules-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
        ]
    );
    // The whole field: alternatives and inexact versions are kept apart.
    let deps = parse_depends(&control_field(META_7_3, "Depends").unwrap()).unwrap();
    assert_eq!(deps.len(), 6);
    assert_eq!(
        deps[1],
        Dep {
            name: "initramfs-tools".into(),
            exact: None,
            alternative: true
        }
    );
    assert_eq!(
        control_field(META_7_3, "Pre-Depends").as_deref(),
        Some("linux-base (>= 4.17~)")
    );
    // sid's 7.2, Depends folded over two lines.
    let sid = "Package: linux-image-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool,\n linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1),\n linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)\nSize: 1892\n";
    let parts = split_parts("linux-image-7.2.13+deb14-amd64", sid).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].name, "linux-modules-7.2.13+deb14-amd64");
    assert_eq!(parts[2].exact.as_deref(), Some("7.2.13-1"));
}

#[test]
fn metapackage_errors() {
    // 6.18 (trixie-backports) is still a full image: no parts.
    let full = "Package: linux-image-6.18.15+deb13-amd64\nVersion: 6.18.15-1~bpo13+1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, kmod, linux-base-6.18.15+deb13-amd64 (= 6.18.15-1~bpo13+1)\n";
    let e = split_parts("linux-image-6.18.15+deb13-amd64", full)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not depend on linux-binary-6.18.15+deb13-amd64"),
        "{e}"
    );
    // A stanza whose only Depends is in the second stanza does not count.
    let e = split_parts(
        "linux-image-7.3.4+deb13-amd64",
        "Package: x\n\nDepends: y\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no Depends field"), "{e}");
    assert!(split_parts("linux-modules-7.3.4+deb13-amd64", META_7_3).is_err());
    assert!(parse_depends("a (= 1").is_err());
    assert!(parse_depends("a (= )").is_err());
    assert!(parse_depends("(= 1)").is_err());
    assert!(parse_depends("a, , b").unwrap().len() == 2);
}

#[test]
fn mirrors_from_both_formats() {
    let deb822 = "Types: deb\n# comment\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
    assert_eq!(
        parse_mirrors(deb822),
        Some((
            "http://m.example/debian".into(),
            Some("http://m.example/debian-security".into())
        ))
    );
    assert_eq!(
        sources_list(
            "http://m/debian",
            Some("http://m/sec"),
            &["trixie-backports"],
            false
        ),
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m/debian trixie-backports main\n"
    );
    assert!(
        sources_list(
            "http://m/debian",
            Some("http://m/sec"),
            BOOKWORM_SUITES,
            true
        )
        .ends_with(" http://m/sec bookworm-security main\n")
    );
    let oneline = "deb [arch=amd64 signed-by=/k.gpg] http://x/debian bookworm main\n";
    assert_eq!(
        parse_mirrors(oneline),
        Some(("http://x/debian".into(), None))
    );
}
