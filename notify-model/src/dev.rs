//! Device numbers and kernel pointers as the JSON form shows them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A kernel dev_t in the kernel's internal encoding (major << 20 | minor), shown "major:minor".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dev(pub u32);

impl Dev {
    pub fn major(self) -> u32 {
        self.0 >> 20
    }
    pub fn minor(self) -> u32 {
        self.0 & 0xfffff
    }
    pub fn is_known(self) -> bool {
        self.0 != 0
    }
    pub fn new(major: u32, minor: u32) -> Dev {
        Dev((major << 20) | (minor & 0xfffff))
    }
    /// The userspace (glibc `makedev`) encoding, as `stat(2)` reports `st_dev`/`st_rdev`.
    pub fn to_user(self) -> u64 {
        libc::makedev(self.major(), self.minor())
    }
    pub fn from_user(dev: u64) -> Dev {
        Dev::new(libc::major(dev), libc::minor(dev))
    }
    /// "MAJ:MIN" as sysfs and mountinfo write it.
    pub fn parse(s: &str) -> Option<Dev> {
        let (maj, min) = s.trim().split_once(':')?;
        Some(Dev::new(maj.parse().ok()?, min.parse().ok()?))
    }
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major(), self.minor())
    }
}

impl Serialize for Dev {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dev {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dev::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("bad device {s:?}: want MAJ:MIN")))
    }
}

/// Kernel pointers as "0x…" strings: they exceed 2^53, which JSON consumers would round.
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        u64::from_str_radix(digits, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_encodings_round_trip() {
        let d = Dev((7 << 20) | 3);
        assert_eq!(d.to_string(), "7:3");
        assert_eq!(Dev::from_user(d.to_user()), d);
        assert_eq!(Dev::parse("259:1\n"), Some(Dev::new(259, 1)));
        assert_eq!(Dev::parse("259"), None);
    }
}
