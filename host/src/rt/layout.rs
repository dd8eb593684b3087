//! Persistent-state layout: where each claimed key lives inside a signal's
//! state region, and how a new version's claims are placed so that state
//! carries over a reload. Claims are placed on loader threads (during
//! `init`); the audio thread reads a version's [`Layout`] when it copies the
//! carried blocks at the swap.
//!
//! Rules (see `wit/lel.wit`):
//! - a key claimed again with the same size (and a compatible alignment)
//!   keeps its offset and is *carried*: its bytes are copied from the playing
//!   version at the swap;
//! - a new key, or one whose size changed, gets a *fresh* block placed first
//!   outside every block of the playing version, and only if that fails, in
//!   the space of playing blocks this version has not claimed (yet); such a
//!   block is then *evicted* and starts fresh should it be claimed later;
//! - keys the new version does not claim are released with it.
//!
//! The layout of a version is therefore always a set of disjoint blocks of
//! its own claims: churn over thousands of reloads cannot exhaust the region.
//!
//! Parameter cells (`param` of `lel:signal@0.2.0`) are placed by the same
//! rules, as 4-byte blocks in a namespace of their own ([`Block::param`]):
//! a parameter's key never meets a claim's key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::rt::consts;

/// Largest alignment a claim may ask for; `state-ptr` must be aligned to it so
/// that offsets aligned relative to the region are aligned in memory.
pub const MAX_ALIGN: u32 = consts::MAX_ALIGN;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = consts::MAX_KEY_LEN as usize;

/// The error codes `claim` returns to the guest (`wit/constants.txt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ClaimCode {
    RegionFull = consts::REGION_FULL,
    BadKey = consts::BAD_KEY,
    BadAlign = consts::BAD_ALIGN,
    DuplicateKey = consts::DUPLICATE_KEY,
    NotInInit = consts::NOT_IN_INIT,
    NoStateRegion = consts::NO_STATE_REGION,
    /// `param` only (0.2.0).
    BadRange = consts::BAD_RANGE,
    /// `param` only (0.2.0).
    TooManyParams = consts::TOO_MANY_PARAMS,
    /// `param` only (0.2.0).
    BadUnit = consts::BAD_UNIT,
}

/// One claimed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub key: Box<str>,
    /// Offset from the start of the state region.
    pub offset: u32,
    pub size: u32,
    /// Copied from the playing version at the swap (else fresh).
    pub carried: bool,
    /// For a carried block: its index in the layout it was carried from (the
    /// swap looks there first).
    pub source: u32,
    /// A parameter's cell (its own namespace), not a claim.
    pub param: bool,
}

/// The blocks of one version, in claim order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub blocks: Vec<Block>,
}

impl Layout {
    /// Total bytes claimed.
    pub fn claimed_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.size as u64).sum()
    }

    /// The claim of `key` (not a parameter's cell).
    pub fn get(&self, key: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| &*b.key == key && !b.param)
    }

    /// The cell of parameter `key`.
    pub fn get_param(&self, key: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| &*b.key == key && b.param)
    }
}

/// Why a claim failed: the message that rejects the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimError {
    pub code: ClaimCode,
    pub message: String,
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Places the claims of one `init` call against the playing version's layout.
///
/// Each claim costs O(log n) (n: blocks of both versions): keys are hashed,
/// and the lowest aligned fit is found in two [`FreeSpace`] indexes, one
/// around every live block and one around this version's blocks only.
#[derive(Debug)]
pub struct Claims {
    previous: Layout,
    /// (Namespace, key) -> index in `previous`.
    previous_keys: HashMap<(bool, Box<str>), usize>,
    /// Previous blocks whose space a fresh block took (or that overlap an
    /// earlier previous block, which a well-formed layout never has).
    evicted: Vec<bool>,
    /// Previous blocks still holding their space: neither evicted nor
    /// claimed again. Keyed by offset; empty blocks are left out.
    previous_live: BTreeSet<(u32, usize)>,
    region_len: u32,
    /// False for a module without `state-ptr`/`state-len`.
    has_region: bool,
    layout: Layout,
    /// (Namespace, key) -> index in `layout`.
    keys: HashMap<(bool, Box<str>), usize>,
    claimed: u64,
    /// Space free of this version's blocks and of `previous_live`.
    around_all: FreeSpace,
    /// Space free of this version's blocks.
    around_mine: FreeSpace,
}

impl Claims {
    /// Start placing claims in a region of `region_len` bytes, given the layout
    /// of the version now playing (empty for a first load).
    pub fn new(previous: Layout, region_len: u32) -> Self {
        let mut evicted = vec![false; previous.blocks.len()];
        let mut order: Vec<usize> = (0..previous.blocks.len()).collect();
        order.sort_unstable_by_key(|&i| previous.blocks[i].offset);
        let mut previous_live = BTreeSet::new();
        let mut around_all = FreeSpace::new(region_len);
        let mut end = 0u64;
        for i in order {
            let b = &previous.blocks[i];
            if b.size == 0 {
                continue;
            }
            if (b.offset as u64) < end {
                evicted[i] = true;
                continue;
            }
            end = b.offset as u64 + b.size as u64;
            previous_live.insert((b.offset, i));
            around_all.occupy(b.offset as u64, end);
        }
        let previous_keys = previous
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| ((b.param, b.key.clone()), i))
            .collect();
        Claims {
            previous,
            previous_keys,
            evicted,
            previous_live,
            region_len,
            has_region: true,
            layout: Layout::default(),
            keys: HashMap::new(),
            claimed: 0,
            around_all,
            around_mine: FreeSpace::new(region_len),
        }
    }

    /// Claims for a module that exports no state region: every claim fails
    /// with [`ClaimCode::NoStateRegion`].
    pub fn without_region() -> Self {
        let mut c = Claims::new(Layout::default(), 0);
        c.has_region = false;
        c
    }

    /// Claim `size` bytes under `key`; returns the offset in the region.
    pub fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<u32, ClaimError> {
        let shown = || String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned();
        let err = |code, message: String| Err(ClaimError { code, message });
        if !self.has_region {
            return err(
                ClaimCode::NoStateRegion,
                format!(
                    "claim \"{}\" made by a module with no state region (export `state-ptr` and `state-len`, or claim nothing)",
                    shown()
                ),
            );
        }
        let key = match std::str::from_utf8(key) {
            Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k,
            Ok("") => return err(ClaimCode::BadKey, "claim with an empty key".into()),
            Ok(_) => {
                return err(
                    ClaimCode::BadKey,
                    format!(
                        "claim key \"{}...\" is {} bytes, the limit is {MAX_KEY_LEN}",
                        shown(),
                        key.len()
                    ),
                );
            }
            Err(_) => {
                return err(
                    ClaimCode::BadKey,
                    format!("claim key {:?} is not valid UTF-8", shown()),
                );
            }
        };
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return err(
                ClaimCode::BadAlign,
                format!(
                    "claim \"{key}\" asks for alignment {align}; it must be a power of two up to {MAX_ALIGN}"
                ),
            );
        }
        if self.keys.contains_key(&(false, key.into())) {
            return err(
                ClaimCode::DuplicateKey,
                format!("claim \"{key}\" is made twice in one init (give each helper its own key)"),
            );
        }
        self.place(false, key, size, align)
    }

    /// Place the 4-byte cell of parameter `key` (already checked by the
    /// caller: see `rt::params`); returns its offset in the region.
    pub fn param_cell(&mut self, key: &str) -> Result<u32, ClaimError> {
        let err = |code, message: String| Err(ClaimError { code, message });
        if !self.has_region {
            return err(
                ClaimCode::NoStateRegion,
                format!(
                    "param \"{key}\" declared by a module with no state region (export `state-ptr` and `state-len`: parameter cells live there)"
                ),
            );
        }
        if self.keys.contains_key(&(true, key.into())) {
            return err(
                ClaimCode::DuplicateKey,
                format!(
                    "param \"{key}\" is declared twice in one init (give each parameter its own key)"
                ),
            );
        }
        self.place(true, key, 4, 4).map_err(|e| ClaimError {
            code: e.code,
            message: e.message.replacen("claim", "the cell of param", 1),
        })
    }

    /// Does the module have a state region?
    pub fn has_region(&self) -> bool {
        self.has_region
    }

    /// Place a block of `size` bytes under `key` in namespace `param`.
    fn place(&mut self, param: bool, key: &str, size: u32, align: u32) -> Result<u32, ClaimError> {
        let err = |code, message: String| Err(ClaimError { code, message });
        if size > self.region_len {
            return err(
                ClaimCode::RegionFull,
                format!(
                    "state region of {} bytes cannot hold claim \"{key}\" of {size} bytes (enlarge the module's state region)",
                    self.region_len
                ),
            );
        }
        let previous = self.previous_keys.get(&(param, key.into())).copied();
        // Carry: same key, same size, still in place and suitably aligned.
        if let Some(i) = previous {
            let b = &self.previous.blocks[i];
            if !self.evicted[i]
                && b.size == size
                && b.offset.is_multiple_of(align)
                && b.offset as u64 + size as u64 <= self.region_len as u64
            {
                let offset = b.offset;
                // Its space passes from the playing version to this one.
                self.previous_live.remove(&(offset, i));
                self.around_mine
                    .occupy(offset as u64, offset as u64 + size as u64);
                self.push(param, key, offset, size, Some(i));
                return Ok(offset);
            }
        }
        // Fresh: avoid every block still live; failing that, take the space
        // of playing blocks not claimed so far.
        let offset = match self
            .around_all
            .first_fit(size, align)
            .or_else(|| self.around_mine.first_fit(size, align))
        {
            Some(o) => o,
            None => {
                return err(
                    ClaimCode::RegionFull,
                    format!(
                        "state region of {} bytes is full: claim \"{key}\" of {size} bytes does not fit beside the {} bytes already claimed (enlarge the module's state region)",
                        self.region_len, self.claimed
                    ),
                );
            }
        };
        let (start, end) = (offset as u64, offset as u64 + size as u64);
        if size > 0 {
            // Evict the playing blocks whose space this one takes.
            let first = self
                .previous_live
                .range(..(offset, 0))
                .next_back()
                .filter(|&&(o, i)| o as u64 + self.previous.blocks[i].size as u64 > start)
                .copied();
            let rest: Vec<(u32, usize)> = self
                .previous_live
                .range((offset, 0)..)
                .take_while(|&&(o, _)| (o as u64) < end)
                .copied()
                .collect();
            for (o, i) in first.into_iter().chain(rest) {
                self.previous_live.remove(&(o, i));
                self.evicted[i] = true;
                self.around_all
                    .release(o as u64, o as u64 + self.previous.blocks[i].size as u64);
            }
        }
        // The playing block of the same key (resized) is released with this claim.
        if let Some(i) = previous {
            let b = &self.previous.blocks[i];
            if self.previous_live.remove(&(b.offset, i)) {
                self.around_all
                    .release(b.offset as u64, b.offset as u64 + b.size as u64);
            }
        }
        self.around_all.occupy(start, end);
        self.around_mine.occupy(start, end);
        self.push(param, key, offset, size, None);
        Ok(offset)
    }

    fn push(
        &mut self,
        param: bool,
        key: &str,
        offset: u32,
        size: u32,
        carried_from: Option<usize>,
    ) {
        self.keys
            .insert((param, key.into()), self.layout.blocks.len());
        self.claimed += size as u64;
        self.layout.blocks.push(Block {
            key: key.into(),
            offset,
            size,
            carried: carried_from.is_some(),
            source: carried_from.map_or(0, |i| i as u32),
            param,
        });
    }

    /// The finished layout of the new version.
    pub fn finish(self) -> Layout {
        self.layout
    }
}

#[cfg(test)]
fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let (a0, a1) = (a.0 as u64, a.0 as u64 + a.1 as u64);
    let (b0, b1) = (b.0 as u64, b.0 as u64 + b.1 as u64);
    a0 < b1 && b0 < a1
}

/// The free space of a region: disjoint gaps, indexed so that the lowest
/// aligned offset where `size` bytes fit is found in O(log n).
///
/// The gaps are kept twice: in a `BTreeMap` (start -> end) to find a gap's
/// neighbours, and in a treap ordered by start whose nodes know, for each
/// alignment 1..=16, the most bytes an aligned block could take in any gap
/// of their subtree; the search walks down to the leftmost gap that fits.
#[derive(Debug)]
struct FreeSpace {
    /// The region's length: nothing at or beyond it is ever free.
    len: u64,
    gaps: BTreeMap<u64, u64>,
    nodes: Vec<Node>,
    unused: Vec<u32>,
    root: u32,
    seed: u64,
    /// Scratch for [`FreeSpace::reshape`].
    path: Vec<u32>,
}

const NIL: u32 = u32::MAX;
/// Alignments 1, 2, 4, 8, 16 (`MAX_ALIGN`).
const ALIGNS: usize = 5;

#[derive(Debug, Clone)]
struct Node {
    start: u64,
    end: u64,
    priority: u64,
    left: u32,
    right: u32,
    /// Most bytes an aligned block fits in a gap of this subtree, per alignment.
    best: [u64; ALIGNS],
}

fn usable(start: u64, end: u64, align_log: usize) -> u64 {
    let a = 1u64 << align_log;
    end.saturating_sub(start.div_ceil(a) * a)
}

impl FreeSpace {
    fn new(len: u32) -> Self {
        let mut f = FreeSpace {
            len: len as u64,
            gaps: BTreeMap::new(),
            nodes: Vec::new(),
            unused: Vec::new(),
            root: NIL,
            seed: 0x9e37_79b9_7f4a_7c15,
            path: Vec::new(),
        };
        f.add_gap(0, len as u64);
        f
    }

    /// Lowest `align`-aligned offset where `size` free bytes start.
    fn first_fit(&self, size: u32, align: u32) -> Option<u32> {
        if size == 0 {
            return Some(0);
        }
        let k = align.trailing_zeros() as usize;
        let size = size as u64;
        let mut t = self.root;
        if t == NIL || self.nodes[t as usize].best[k] < size {
            return None;
        }
        loop {
            let n = &self.nodes[t as usize];
            if n.left != NIL && self.nodes[n.left as usize].best[k] >= size {
                t = n.left;
            } else if usable(n.start, n.end, k) >= size {
                let a = 1u64 << k;
                return Some((n.start.div_ceil(a) * a) as u32);
            } else {
                t = n.right;
            }
        }
    }

    /// Mark `start..end` as taken.
    fn occupy(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Usually `start..end` lies in one gap: shrink it in place.
        if let Some((&s, &e)) = self.gaps.range(..=start).next_back()
            && e >= end
        {
            match (s < start, e > end) {
                (false, false) => self.remove_gap(s),
                (false, true) => self.reshape(s, end, e),
                (true, false) => self.reshape(s, s, start),
                (true, true) => {
                    self.reshape(s, s, start);
                    self.add_gap(end, e);
                }
            }
            return;
        }
        let touching: Vec<(u64, u64)> = self
            .gaps
            .range(..end)
            .rev()
            .take_while(|&(_, &e)| e > start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.remove_gap(s);
            if s < start {
                self.add_gap(s, start);
            }
            if e > end {
                self.add_gap(end, e);
            }
        }
    }

    /// Give the gap starting at `old` the bounds `start..end`, which keep it
    /// between its neighbours (no rebalancing: one walk down and back up).
    fn reshape(&mut self, old: u64, start: u64, end: u64) {
        self.gaps.remove(&old);
        self.gaps.insert(start, end);
        let mut path = std::mem::take(&mut self.path);
        path.clear();
        let mut t = self.root;
        while t != NIL {
            path.push(t);
            let n = &self.nodes[t as usize];
            t = match old.cmp(&n.start) {
                std::cmp::Ordering::Less => n.left,
                std::cmp::Ordering::Greater => n.right,
                std::cmp::Ordering::Equal => break,
            };
        }
        if let Some(&found) = path.last() {
            let n = &mut self.nodes[found as usize];
            debug_assert_eq!(n.start, old);
            n.start = start;
            n.end = end;
        }
        for &t in path.iter().rev() {
            self.update(t);
        }
        self.path = path;
    }

    /// Mark `start..end` as free, merging it with the gaps it touches.
    fn release(&mut self, start: u64, end: u64) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let touching: Vec<(u64, u64)> = self
            .gaps
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        let (mut s0, mut e0) = (start, end);
        for (s, e) in touching {
            self.remove_gap(s);
            s0 = s0.min(s);
            e0 = e0.max(e);
        }
        self.add_gap(s0, e0);
    }

    fn add_gap(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.gaps.insert(start, end);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let node = Node {
            start,
            end,
            priority: self.seed,
            left: NIL,
            right: NIL,
            best: [0; ALIGNS],
        };
        let id = match self.unused.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.update(id);
        let (l, r) = self.split(self.root, start);
        let lm = self.merge(l, id);
        self.root = self.merge(lm, r);
    }

    fn remove_gap(&mut self, start: u64) {
        self.gaps.remove(&start);
        let (l, r) = self.split(self.root, start);
        let (mid, r) = self.split(r, start + 1);
        if mid != NIL {
            self.unused.push(mid);
        }
        self.root = self.merge(l, r);
    }

    /// Split `t` into gaps starting below `key` and the rest.
    fn split(&mut self, t: u32, key: u64) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].start < key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            self.update(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            self.update(t);
            (l, t)
        }
    }

    /// Join two treaps, every gap of `a` below every gap of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.update(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.update(b);
            b
        }
    }

    fn update(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let mut best = [0u64; ALIGNS];
        for (k, b) in best.iter_mut().enumerate() {
            *b = usable(n.start, n.end, k);
        }
        for child in [n.left, n.right] {
            if child != NIL {
                for (b, c) in best.iter_mut().zip(self.nodes[child as usize].best) {
                    *b = (*b).max(c);
                }
            }
        }
        self.nodes[t as usize].best = best;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(prev: &Layout, len: u32, claims: &[(&str, u32)]) -> Result<Layout, ClaimError> {
        let mut c = Claims::new(prev.clone(), len);
        for (k, s) in claims {
            c.claim(k.as_bytes(), *s, 4)?;
        }
        Ok(c.finish())
    }

    #[test]
    fn same_key_and_size_carries_at_the_same_offset() {
        let v1 = place(&Layout::default(), 1024, &[("osc#0", 16), ("lowpass#0", 8)]).unwrap();
        let v2 = place(&v1, 1024, &[("new#0", 32), ("lowpass#0", 8), ("osc#0", 16)]).unwrap();
        assert_eq!(
            v2.get("osc#0").unwrap().offset,
            v1.get("osc#0").unwrap().offset
        );
        assert_eq!(
            v2.get("lowpass#0").unwrap().offset,
            v1.get("lowpass#0").unwrap().offset
        );
        assert!(v2.get("osc#0").unwrap().carried);
        let new = v2.get("new#0").unwrap();
        assert!(!new.carried);
        for old in &v1.blocks {
            assert!(
                !overlaps((old.offset, old.size), (new.offset, new.size)),
                "fresh block avoids playing blocks"
            );
        }
    }

    #[test]
    fn changed_size_starts_fresh_and_released_keys_free_space() {
        let v1 = place(&Layout::default(), 64, &[("a", 32), ("b", 32)]).unwrap();
        let v2 = place(&v1, 64, &[("a", 16)]).unwrap();
        assert!(!v2.get("a").unwrap().carried, "size changed: fresh");
        assert!(v2.get("b").is_none(), "b released");
        // The region is full of playing blocks, yet a renamed key fits by
        // taking the space of blocks the new version does not claim.
        let v3 = place(&v1, 64, &[("c", 64)]).unwrap();
        assert_eq!(v3.get("c").unwrap().offset, 0);
    }

    #[test]
    fn an_evicted_key_claimed_later_starts_fresh() {
        let v1 = place(&Layout::default(), 64, &[("a", 32), ("b", 32)]).unwrap();
        let v2 = place(&v1, 64, &[("c", 48), ("a", 16)]);
        // c needs 48 bytes: it evicts both a and b, so a must be fresh and fit.
        let v2 = v2.unwrap();
        assert!(!v2.get("a").unwrap().carried);
        let (c, a) = (v2.get("c").unwrap(), v2.get("a").unwrap());
        assert!(!overlaps((c.offset, c.size), (a.offset, a.size)));
    }

    #[test]
    fn exhaustion_and_malformed_claims_are_clear_errors() {
        let e = place(&Layout::default(), 1024, &[("big", 4096)]).unwrap_err();
        assert_eq!(e.code, ClaimCode::RegionFull);
        assert_eq!(
            e.message,
            "state region of 1024 bytes cannot hold claim \"big\" of 4096 bytes (enlarge the module's state region)"
        );
        let e = place(&Layout::default(), 1024, &[("a", 600), ("b", 600)]).unwrap_err();
        assert_eq!(e.code, ClaimCode::RegionFull);
        assert!(e.message.contains("is full"), "{}", e.message);
        let mut c = Claims::new(Layout::default(), 64);
        assert_eq!(
            c.claim(b"\xff\xfe", 4, 4).unwrap_err().code,
            ClaimCode::BadKey
        );
        assert_eq!(c.claim(b"", 4, 4).unwrap_err().code, ClaimCode::BadKey);
        assert_eq!(
            c.claim(&[b'k'; 300], 4, 4).unwrap_err().code,
            ClaimCode::BadKey
        );
        assert_eq!(c.claim(b"k", 4, 3).unwrap_err().code, ClaimCode::BadAlign);
        assert_eq!(c.claim(b"k", 4, 32).unwrap_err().code, ClaimCode::BadAlign);
        c.claim(b"k", 4, 4).unwrap();
        assert_eq!(
            c.claim(b"k", 4, 4).unwrap_err().code,
            ClaimCode::DuplicateKey
        );
    }

    #[test]
    fn alignment_is_honoured() {
        let mut c = Claims::new(Layout::default(), 256);
        assert_eq!(c.claim(b"a", 3, 1).unwrap(), 0);
        assert_eq!(c.claim(b"b", 8, 16).unwrap(), 16);
        assert_eq!(c.claim(b"c", 4, 4).unwrap(), 4);
    }

    #[test]
    fn ten_thousand_versions_with_shifting_keys_never_exhaust() {
        // Each version keeps a few keys, resizes one, drops one and adds one:
        // the region holds what one version needs plus one playing version.
        let mut live = Layout::default();
        for v in 0..10_000u32 {
            let claims = [
                ("osc#0".to_string(), 16),
                (format!("voice#{}", v % 7), 24 + (v % 5) * 8),
                (format!("new#{v}"), 40),
                ("delay#0".to_string(), 256 + (v % 3) * 64),
            ];
            let mut c = Claims::new(live.clone(), 2048);
            for (k, s) in &claims {
                c.claim(k.as_bytes(), *s, 8)
                    .unwrap_or_else(|e| panic!("version {v}: {e}"));
            }
            let next = c.finish();
            if v > 0 {
                assert!(
                    next.get("osc#0").unwrap().carried,
                    "version {v} carries osc#0"
                );
            }
            for (i, a) in next.blocks.iter().enumerate() {
                for b in &next.blocks[i + 1..] {
                    assert!(
                        !overlaps((a.offset, a.size), (b.offset, b.size)),
                        "version {v}: overlap"
                    );
                }
            }
            live = next;
        }
    }

    /// The placement rules written the plain quadratic way (the previous
    /// implementation): the indexed one must give exactly the same layouts.
    fn reference(
        prev: &Layout,
        len: u32,
        claims: &[(String, u32, u32)],
    ) -> Option<Vec<(u32, bool)>> {
        let first_fit = |busy: &[(u32, u32)], size: u32, align: u32| {
            let mut sorted: Vec<(u64, u64)> = busy
                .iter()
                .map(|&(o, s)| (o as u64, o as u64 + s as u64))
                .collect();
            sorted.sort_unstable();
            let mut at = 0u64;
            for (start, end) in sorted {
                if at + size as u64 <= start {
                    break;
                }
                at = at.max(end.div_ceil(align as u64) * align as u64);
            }
            (at + size as u64 <= len as u64).then_some(at as u32)
        };
        let mut evicted = vec![false; prev.blocks.len()];
        let mut mine: Vec<(String, u32, u32)> = Vec::new();
        let mut out = Vec::new();
        for (key, size, align) in claims {
            let (size, align) = (*size, *align);
            if size > len {
                return None;
            }
            let claimed = |k: &str, mine: &[(String, u32, u32)]| mine.iter().any(|m| m.0 == k);
            if let Some(i) = prev.blocks.iter().position(|b| &*b.key == key) {
                let b = &prev.blocks[i];
                if !evicted[i]
                    && b.size == size
                    && b.offset.is_multiple_of(align)
                    && b.offset as u64 + size as u64 <= len as u64
                {
                    mine.push((key.clone(), b.offset, size));
                    out.push((b.offset, true));
                    continue;
                }
            }
            let own: Vec<(u32, u32)> = mine.iter().map(|m| (m.1, m.2)).collect();
            let mut busy = own.clone();
            busy.extend(
                prev.blocks
                    .iter()
                    .zip(&evicted)
                    .filter(|(b, e)| !**e && !claimed(&b.key, &mine))
                    .map(|(b, _)| (b.offset, b.size)),
            );
            let offset = first_fit(&busy, size, align).or_else(|| first_fit(&own, size, align))?;
            for (i, b) in prev.blocks.iter().enumerate() {
                if overlaps((b.offset, b.size), (offset, size)) && !claimed(&b.key, &mine) {
                    evicted[i] = true;
                }
            }
            mine.push((key.clone(), offset, size));
            out.push((offset, false));
        }
        Some(out)
    }

    #[test]
    fn indexed_placement_matches_the_plain_rules_on_random_reloads() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut live = Layout::default();
        let mut compared = 0;
        for version in 0..3_000 {
            let len = 256 + rand(4) as u32 * 64;
            let count = 1 + rand(12) as usize;
            let claims: Vec<(String, u32, u32)> = (0..count)
                .map(|_| (format!("k{}", rand(16)), rand(72) as u32, 1 << rand(5)))
                .collect();
            let mut seen = std::collections::HashSet::new();
            let claims: Vec<_> = claims
                .into_iter()
                .filter(|c| seen.insert(c.0.clone()))
                .collect();
            let want = reference(&live, len, &claims);
            let mut c = Claims::new(live.clone(), len);
            let got: Result<Vec<(u32, bool)>, ClaimError> = claims
                .iter()
                .map(|(k, s, a)| {
                    let o = c.claim(k.as_bytes(), *s, *a)?;
                    Ok((o, c.layout.blocks.last().unwrap().carried))
                })
                .collect();
            match (want, got) {
                (Some(w), Ok(g)) => {
                    assert_eq!(g, w, "version {version}: {claims:?} against {live:?}");
                    compared += 1;
                    live = c.finish();
                }
                (None, Err(e)) => assert_eq!(e.code, ClaimCode::RegionFull, "version {version}"),
                (w, g) => panic!("version {version}: reference {w:?}, indexed {g:?}"),
            }
        }
        assert!(compared > 2_000, "mostly successful versions: {compared}");
    }

    #[test]
    fn twenty_thousand_claims_place_and_carry_in_n_log_n() {
        // A quadratic placement would take seconds here (and much longer in
        // a debug build); the loader gives `init` one second in all.
        let keys: Vec<String> = (0..20_000).map(|i| format!("voice#{i}")).collect();
        let mut c = Claims::new(Layout::default(), 20_000 * 16);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.claim(k.as_bytes(), 16, 16).unwrap(), i as u32 * 16);
        }
        let v1 = c.finish();
        // The next version carries every block and adds one fresh.
        let mut c = Claims::new(v1.clone(), 20_000 * 16 + 64);
        c.claim(b"new", 64, 16).unwrap();
        for k in &keys {
            c.claim(k.as_bytes(), 16, 16).unwrap();
        }
        let v2 = c.finish();
        assert!(v2.blocks[1..].iter().all(|b| b.carried));
        assert_eq!(v2.get("new").unwrap().offset, 20_000 * 16);
        for (b, old) in v2.blocks[1..].iter().zip(&v1.blocks) {
            assert_eq!(v1.blocks[b.source as usize].key, b.key);
            assert_eq!(b.offset, old.offset);
        }
    }

    #[test]
    fn a_module_without_a_state_region_gets_the_no_region_code() {
        let mut c = Claims::without_region();
        let e = c.claim(b"osc#0", 8, 8).unwrap_err();
        assert_eq!(e.code, ClaimCode::NoStateRegion);
        assert_eq!(e.code as i32, -6);
        assert_eq!(
            e.message,
            "claim \"osc#0\" made by a module with no state region (export `state-ptr` and `state-len`, or claim nothing)"
        );
    }
}
