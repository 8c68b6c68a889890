//! An index of names for the kernel's big symbol tables (kallsyms, BTF), built in one pass
//! without a heap allocation per name: a 64-bit hash of a name maps to the first entry of a
//! chain (in entry order) of the entries whose names have that hash. A lookup walks the chain
//! and compares the names, so a hash collision costs a comparison, never a wrong answer.
//! Building a `String` key (and a `Vec`) per name for ~100k-200k names was most of notify's
//! start-up CPU (`cargo xtask bench startup`).

use std::collections::HashMap;

/// No entry.
const NONE: u32 = u32::MAX;

/// Chains of entry indexes by name hash. The names themselves stay with the owner, which hands
/// them to [`NameIndex::build`] and [`NameIndex::find`].
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    heads: HashMap<u64, u32, PassHash>,
    /// Entry index -> next entry index in its chain.
    next: Vec<u32>,
}

impl NameIndex {
    /// Indexes entries `0..n`; `key(i)` is entry i's name, or None to leave it out.
    pub fn build<'a>(n: usize, key: impl Fn(usize) -> Option<&'a [u8]>) -> Self {
        let mut idx = NameIndex {
            heads: HashMap::with_capacity_and_hasher(n, PassHash),
            next: vec![NONE; n],
        };
        // Backwards, each entry goes to the head of its chain: the chains end up in entry
        // order.
        for i in (0..n).rev() {
            let Some(k) = key(i) else { continue };
            if let Some(old) = idx.heads.insert(hash(k), i as u32) {
                idx.next[i] = old;
            }
        }
        idx
    }

    /// Indexes of the entries whose name is `name` (`key` as given to `build`), in order.
    pub fn find<'a, 'k: 'a>(
        &'a self,
        name: &'a [u8],
        key: impl Fn(usize) -> Option<&'k [u8]> + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        let head = self.heads.get(&hash(name)).copied().unwrap_or(NONE);
        std::iter::successors((head != NONE).then_some(head as usize), |&i| {
            let n = self.next[i];
            (n != NONE).then_some(n as usize)
        })
        .filter(move |&i| key(i) == Some(name))
    }
}

/// The keys are hashes already: pass them through.
#[derive(Debug, Clone, Copy, Default)]
struct PassHash;

impl std::hash::BuildHasher for PassHash {
    type Hasher = Pass;
    fn build_hasher(&self) -> Pass {
        Pass(0)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Pass(u64);

impl std::hash::Hasher for Pass {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash(bytes);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Eight bytes at a time (FxHash's step), finished with a multiply-xorshift so the low bits the
/// table uses are mixed: byte-at-a-time hashing was a visible share of the start-up.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_entry_of_a_name_in_order_and_nothing_else() {
        let names: Vec<&[u8]> = vec![b"a", b"b", b"a", b"", b"c", b"a"];
        let key = |i: usize| Some(names[i]).filter(|n| !n.is_empty());
        let idx = NameIndex::build(names.len(), key);
        assert_eq!(idx.find(b"a", key).collect::<Vec<_>>(), vec![0, 2, 5]);
        assert_eq!(idx.find(b"c", key).collect::<Vec<_>>(), vec![4]);
        assert_eq!(idx.find(b"", key).count(), 0);
        assert_eq!(idx.find(b"zz", key).count(), 0);
    }

    #[test]
    fn a_hash_collision_is_told_apart_by_the_names() {
        // Two names forced into one chain: a degenerate index where every entry collides.
        let names: Vec<&[u8]> = vec![b"x", b"y", b"x"];
        let key = |i: usize| Some(names[i]);
        let mut idx = NameIndex::build(0, key);
        idx.next = vec![1, 2, NONE];
        idx.heads.insert(hash(b"x"), 0);
        assert_eq!(idx.find(b"x", key).collect::<Vec<_>>(), vec![0, 2]);
    }
}
