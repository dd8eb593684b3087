//! Native test harness (not on wasm32): renders a signal the way lel-host
//! does, with a claimer that follows the host's rules, including carrying
//! state over to a new version (`swap`), so helpers and whole signals can be
//! tested with `cargo test`.

use std::boxed::Box;
use std::string::String;
use std::vec;
use std::vec::Vec;

use core::ptr::NonNull;

use crate::claim::{Binder, Claimer, Error, check_claim};
use crate::ctx::Ctx;
use crate::frame::Frame;
use crate::key::Session;
use crate::node::Node;

/// A claimed block: key, offset in the region, size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The key.
    pub key: String,
    /// Offset from the start of the state region.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// True when the block was carried over from the previous version.
    pub carried: bool,
}

/// The host's claim rules over a region: a key claimed again with the same
/// size gets the same offset (and the previous version's bytes), anything
/// else a fresh zeroed block past every block handed out so far.
struct HostLike<'a> {
    base: NonNull<u8>,
    len: usize,
    high: &'a mut usize,
    previous: &'a [Claimed],
    now: Vec<Claimed>,
}

impl Claimer for HostLike<'_> {
    fn claim(&mut self, key: &[u8], size: u32, align: u32) -> Result<NonNull<u8>, i32> {
        check_claim(key, align)?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| Error::BAD_KEY.0)?;
        if self.now.iter().any(|c| c.key == key) {
            return Err(Error::DUPLICATE_KEY.0);
        }
        let size = size as usize;
        let kept = self
            .previous
            .iter()
            .find(|c| c.key == key && c.size == size)
            .map(|c| c.offset);
        let (offset, carried) = match kept {
            Some(o) => (o, true),
            None => {
                let base = self.base.as_ptr() as usize;
                let start = (base + *self.high).next_multiple_of(align as usize) - base;
                let end = start.checked_add(size).ok_or(Error::REGION_FULL.0)?;
                if end > self.len {
                    return Err(Error::REGION_FULL.0);
                }
                *self.high = end;
                (start, false)
            }
        };
        // SAFETY: `offset..offset + size` lies in the region (checked when
        // the block was first handed out); no live view covers a block
        // that is being claimed (the previous graph is not ticked until it
        // is dropped).
        let p = unsafe { self.base.as_ptr().add(offset) };
        if !carried {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(p, 0, size) };
        }
        self.now.push(Claimed {
            key,
            offset,
            size,
            carried,
        });
        // SAFETY: `p` is inside the region, which is not null.
        Ok(unsafe { NonNull::new_unchecked(p) })
    }
}

/// Renders a signal natively, block by block, like lel-host.
///
/// ```
/// use lel::prelude::*;
/// use lel::testing::Harness;
///
/// let mut h = Harness::new(48_000, || osc(440).lowpass(800)).unwrap();
/// let before = h.render(4800);
/// // Reload: the rebuilt signal keeps the oscillator's phase and the
/// // filter's memory.
/// let mut h = h.swap(|| osc(440).lowpass(800)).unwrap();
/// let after = h.render(4800);
/// assert_eq!(h.claimed()[0].key, "osc#0");
/// assert!(h.claimed().iter().all(|c| c.carried));
/// # let _ = (before, after);
/// ```
pub struct Harness<N: Node> {
    graph: N,
    claimed: Vec<Claimed>,
    high: usize,
    sample_rate: u32,
    block: usize,
    clock: u64,
    // Declared last: dropped after the graph that points into it.
    region: Region,
}

/// The state region: heap memory owned through a raw pointer, so the
/// blocks' pointers into it stay valid however the harness is moved.
struct Region {
    ptr: NonNull<[u128]>,
}

impl Region {
    fn new(bytes: usize) -> Region {
        let b: Box<[u128]> = vec![0u128; bytes.div_ceil(16).max(1)].into_boxed_slice();
        Region {
            ptr: NonNull::from(Box::leak(b)),
        }
    }

    fn base(&self) -> NonNull<u8> {
        self.ptr.cast()
    }

    fn len(&self) -> usize {
        self.ptr.len() * 16
    }

    fn snapshot(&self) -> Vec<u8> {
        // SAFETY: the region is `len()` initialised bytes, and no graph is
        // being ticked while the harness (which owns both) is borrowed.
        unsafe { core::slice::from_raw_parts(self.base().as_ptr(), self.len()) }.to_vec()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::leak` in `Region::new` and is freed
        // only here; the graph pointing into it was dropped before (field
        // order in `Harness`).
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<N: Node> Harness<N> {
    /// Default state region size: 4 MiB.
    pub const REGION_BYTES: usize = 4 << 20;

    /// Builds and binds `build()`'s signal at `sample_rate` (blocks of 128
    /// frames, a 4 MiB region), starting at clock 0.
    pub fn new(sample_rate: u32, build: impl FnOnce() -> N) -> Result<Self, Error> {
        Self::with(sample_rate, 128, Self::REGION_BYTES, build)
    }

    /// Like [`Harness::new`] with a block size and region size.
    pub fn with(
        sample_rate: u32,
        block: usize,
        region_bytes: usize,
        build: impl FnOnce() -> N,
    ) -> Result<Self, Error> {
        let region = Region::new(region_bytes);
        let mut high = 0;
        let (graph, claimed) = bind(build, &region, &mut high, &[], sample_rate, block)?;
        Ok(Harness {
            graph,
            claimed,
            high,
            sample_rate,
            block: block.max(1),
            clock: 0,
            region,
        })
    }

    /// Loads a new version of the signal, the way lel-host swaps: the new
    /// graph claims its state (keys claimed again with the same size keep
    /// their offset), then the carried blocks get the playing version's
    /// bytes, and rendering goes on from the same clock.
    pub fn swap<M: Node>(self, build: impl FnOnce() -> M) -> Result<Harness<M>, Error> {
        let Harness {
            graph,
            claimed,
            mut high,
            sample_rate,
            block,
            clock,
            region,
        } = self;
        let snapshot = region.snapshot();
        let (new_graph, new_claimed) =
            bind(build, &region, &mut high, &claimed, sample_rate, block)?;
        drop(graph);
        let base = region.base().as_ptr();
        for c in new_claimed.iter().filter(|c| c.carried) {
            let from = &snapshot[c.offset..c.offset + c.size];
            // SAFETY: the block lies within the region (it was handed out
            // from it); the old graph is gone and the new one holds no
            // reference across this call.
            unsafe { core::ptr::copy_nonoverlapping(from.as_ptr(), base.add(c.offset), c.size) };
        }
        Ok(Harness {
            graph: new_graph,
            claimed: new_claimed,
            high,
            sample_rate,
            block,
            clock,
            region,
        })
    }

    /// Renders `frames` frames (interleaved `f32`, `channels()` per frame)
    /// and advances the clock.
    pub fn render(&mut self, frames: usize) -> Vec<f32> {
        let ch = N::Frame::CHANNELS;
        let mut out = vec![0.0f32; frames * ch];
        let mut cx = Ctx::new(self.sample_rate as f64, self.clock, ch as u32);
        for chunk in out.chunks_mut(self.block * ch) {
            let n = chunk.len() / ch;
            let start = self.clock;
            for (i, o) in chunk.chunks_exact_mut(ch).enumerate() {
                cx.seek(start, n as u32, i as u32);
                let f = self.graph.tick(&cx);
                for (d, s) in o.iter_mut().zip(f.as_slice()) {
                    *d = *s as f32;
                }
            }
            self.clock += n as u64;
        }
        out
    }

    /// Renders `frames` frames of channel `ch` only.
    pub fn render_channel(&mut self, frames: usize, ch: usize) -> Vec<f32> {
        let n = N::Frame::CHANNELS;
        self.render(frames)
            .into_iter()
            .skip(ch)
            .step_by(n)
            .collect()
    }

    /// Skips `frames` frames of the timeline without rendering (like a
    /// signal loaded later on the host's running clock).
    pub fn advance_clock(&mut self, frames: u64) {
        self.clock += frames;
    }

    /// Channels of the signal.
    pub fn channels(&self) -> usize {
        N::Frame::CHANNELS
    }

    /// The clock: frames rendered (or skipped) so far.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The blocks the current version claimed, in claim order.
    pub fn claimed(&self) -> &[Claimed] {
        &self.claimed
    }

    /// The keys the current version claimed, in claim order.
    pub fn keys(&self) -> Vec<&str> {
        self.claimed.iter().map(|c| c.key.as_str()).collect()
    }
}

fn bind<M: Node>(
    build: impl FnOnce() -> M,
    region: &Region,
    high: &mut usize,
    previous: &[Claimed],
    sample_rate: u32,
    block: usize,
) -> Result<(M, Vec<Claimed>), Error> {
    let base = region.base();
    let len = region.len();
    let session = Session::begin();
    let mut graph = build();
    let mut claimer = HostLike {
        base,
        len,
        high,
        previous,
        now: Vec::new(),
    };
    let mut b = Binder::new(
        &mut claimer,
        base.as_ptr() as usize,
        len,
        sample_rate as f64,
        block as u32,
        M::Frame::CHANNELS as u32,
    );
    graph.bind(&mut b)?;
    drop(session);
    Ok((graph, claimer.now))
}
