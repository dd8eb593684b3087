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

    pub fn get(&self, key: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| &*b.key == key)
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
#[derive(Debug)]
pub struct Claims {
    previous: Layout,
    /// Previous blocks whose space a fresh block took.
    evicted: Vec<bool>,
    region_len: u32,
    layout: Layout,
}

impl Claims {
    /// Start placing claims in a region of `region_len` bytes, given the layout
    /// of the version now playing (empty for a first load).
    pub fn new(previous: Layout, region_len: u32) -> Self {
        let evicted = vec![false; previous.blocks.len()];
        Claims {
            previous,
            evicted,
            region_len,
            layout: Layout::default(),
        }
    }

    /// Claim `size` bytes under `key`; returns the offset in the region.
    pub fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<u32, ClaimError> {
        let shown = String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned();
        let err = |code, message: String| Err(ClaimError { code, message });
        let key = match std::str::from_utf8(key) {
            Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k,
            Ok("") => return err(ClaimCode::BadKey, "claim with an empty key".into()),
            Ok(_) => {
                return err(
                    ClaimCode::BadKey,
                    format!(
                        "claim key \"{shown}...\" is {} bytes, the limit is {MAX_KEY_LEN}",
                        key.len()
                    ),
                );
            }
            Err(_) => {
                return err(
                    ClaimCode::BadKey,
                    format!("claim key {shown:?} is not valid UTF-8"),
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
        if self.layout.get(key).is_some() {
            return err(
                ClaimCode::DuplicateKey,
                format!("claim \"{key}\" is made twice in one init (give each helper its own key)"),
            );
        }
        if size > self.region_len {
            return err(
                ClaimCode::RegionFull,
                format!(
                    "state region of {} bytes cannot hold claim \"{key}\" of {size} bytes (enlarge the module's state region)",
                    self.region_len
                ),
            );
        }
        // Carry: same key, same size, still in place and suitably aligned.
        if let Some(i) = self.previous.blocks.iter().position(|b| &*b.key == key) {
            let b = &self.previous.blocks[i];
            if !self.evicted[i]
                && b.size == size
                && b.offset.is_multiple_of(align)
                && b.offset as u64 + size as u64 <= self.region_len as u64
            {
                let offset = b.offset;
                self.push(key, offset, size, true);
                return Ok(offset);
            }
        }
        // Fresh: avoid every block still live; failing that, take the space
        // of playing blocks not claimed so far.
        let mine: Vec<(u32, u32)> = self
            .layout
            .blocks
            .iter()
            .map(|b| (b.offset, b.size))
            .collect();
        let mut busy = mine.clone();
        busy.extend(
            self.previous
                .blocks
                .iter()
                .zip(&self.evicted)
                .filter(|(b, evicted)| !**evicted && self.layout.get(&b.key).is_none())
                .map(|(b, _)| (b.offset, b.size)),
        );
        let offset = match first_fit(&busy, self.region_len, size, align)
            .or_else(|| first_fit(&mine, self.region_len, size, align))
        {
            Some(o) => o,
            None => {
                return err(
                    ClaimCode::RegionFull,
                    format!(
                        "state region of {} bytes is full: claim \"{key}\" of {size} bytes does not fit beside the {} bytes already claimed (enlarge the module's state region)",
                        self.region_len,
                        self.layout.claimed_bytes()
                    ),
                );
            }
        };
        for (i, b) in self.previous.blocks.iter().enumerate() {
            if overlaps((b.offset, b.size), (offset, size)) && self.layout.get(&b.key).is_none() {
                self.evicted[i] = true;
            }
        }
        self.push(key, offset, size, false);
        Ok(offset)
    }

    fn push(&mut self, key: &str, offset: u32, size: u32, carried: bool) {
        self.layout.blocks.push(Block {
            key: key.into(),
            offset,
            size,
            carried,
        });
    }

    /// The finished layout of the new version.
    pub fn finish(self) -> Layout {
        self.layout
    }
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let (a0, a1) = (a.0 as u64, a.0 as u64 + a.1 as u64);
    let (b0, b1) = (b.0 as u64, b.0 as u64 + b.1 as u64);
    a0 < b1 && b0 < a1
}

/// Lowest aligned offset where `size` bytes fit in `len` without touching `busy`.
fn first_fit(busy: &[(u32, u32)], len: u32, size: u32, align: u32) -> Option<u32> {
    let mut sorted: Vec<(u64, u64)> = busy
        .iter()
        .map(|&(o, s)| (o as u64, o as u64 + s as u64))
        .collect();
    sorted.sort_unstable();
    let align = align as u64;
    let mut at = 0u64;
    for (start, end) in sorted {
        if at + size as u64 <= start {
            break;
        }
        at = at.max(end.div_ceil(align) * align);
    }
    (at + size as u64 <= len as u64).then_some(at as u32)
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
}
