//! Native test harness (not on wasm32): renders a signal the way lel-host
//! does, with a claimer that follows the host's rules, including carrying
//! state over to a new version (`swap`), parameters kept by key and events
//! delivered at their frames (contract 0.2), so helpers and whole signals
//! can be tested with `cargo test`. Runs on the test's thread.

use std::boxed::Box;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use core::ptr::NonNull;

use crate::claim::{Binder, Claimer, Error, ParamDecl, check_claim, check_param};
use crate::ctx::Ctx;
use crate::events::{EVENT_CAPACITY, Event, Input, kind};
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

/// A parameter as the host keeps it (per signal, by key, across versions).
#[derive(Clone, Debug, PartialEq)]
pub struct HostParam {
    /// The key.
    pub key: String,
    /// Its index in the current version (declaration order).
    pub index: usize,
    /// The current value.
    pub value: f32,
    /// The current version's default.
    pub default: f32,
    /// Lowest value.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// Unit.
    pub unit: String,
    /// 0 continuous, else the number of values.
    pub steps: u32,
    /// True once set by the user (then a reload keeps the value).
    pub user_set: bool,
    /// True when the current version declared it.
    pub declared: bool,
    cell: usize,
}

/// `v` clamped to `[min, max]` and snapped to `steps` values (the host's
/// rule).
pub fn snap(v: f32, min: f32, max: f32, steps: u32) -> f32 {
    let v = v.clamp(min, max);
    if steps >= 2 {
        let n = (steps - 1) as f32;
        let i = ((v - min) / (max - min) * n).round();
        (min + i * (max - min) / n).clamp(min, max)
    } else {
        v
    }
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
    params: &'a mut Vec<HostParam>,
    declared: usize,
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

    fn param(&mut self, d: &ParamDecl<'_>) -> Result<NonNull<u8>, i32> {
        check_param(d)?;
        let key = String::from_utf8(d.key.to_vec()).map_err(|_| Error::BAD_KEY.0)?;
        if self.params.iter().any(|p| p.declared && p.key == key) {
            return Err(Error::DUPLICATE_KEY.0);
        }
        if self.declared == crate::contract::MAX_PARAMS {
            return Err(Error::TOO_MANY_PARAMS.0);
        }
        let base = self.base.as_ptr() as usize;
        let start = (base + *self.high).next_multiple_of(4) - base;
        if start + 4 > self.len {
            return Err(Error::REGION_FULL.0);
        }
        *self.high = start + 4;
        let index = self.declared;
        self.declared += 1;
        let unit = String::from_utf8_lossy(d.unit).into_owned();
        let value = match self.params.iter_mut().find(|p| p.key == key) {
            Some(p) => {
                p.value = if p.user_set {
                    snap(p.value, d.min, d.max, d.steps)
                } else {
                    d.default
                };
                *p = HostParam {
                    index,
                    default: d.default,
                    min: d.min,
                    max: d.max,
                    unit,
                    steps: d.steps,
                    declared: true,
                    cell: start,
                    ..p.clone()
                };
                p.value
            }
            None => {
                self.params.push(HostParam {
                    key,
                    index,
                    value: d.default,
                    default: d.default,
                    min: d.min,
                    max: d.max,
                    unit,
                    steps: d.steps,
                    user_set: false,
                    declared: true,
                    cell: start,
                });
                d.default
            }
        };
        // SAFETY: `start..start + 4` lies in the region (checked above),
        // fresh, 4-aligned.
        let p = unsafe { self.base.as_ptr().add(start) };
        // SAFETY: as above.
        unsafe { p.cast::<f32>().write(value) };
        // SAFETY: inside the region, not null.
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
    input: Input,
    params: Vec<HostParam>,
    /// Events to deliver: (clock frame, event), in the order sent.
    pending: Vec<(u64, Event)>,
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
        let mut params = Vec::new();
        let (graph, claimed, input) = bind(
            build,
            &region,
            &mut high,
            &[],
            &mut params,
            sample_rate,
            block,
        )?;
        Ok(Harness {
            graph,
            input,
            params,
            pending: Vec::new(),
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
            input: _,
            mut params,
            pending,
            claimed,
            mut high,
            sample_rate,
            block,
            clock,
            region,
        } = self;
        let snapshot = region.snapshot();
        for p in &mut params {
            p.declared = false;
        }
        let (new_graph, new_claimed, input) = bind(
            build,
            &region,
            &mut high,
            &claimed,
            &mut params,
            sample_rate,
            block,
        )?;
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
            input,
            params,
            pending,
            claimed: new_claimed,
            high,
            sample_rate,
            block,
            clock,
            region,
        })
    }

    /// Renders `frames` frames (interleaved `f32`, `channels()` per frame)
    /// and advances the clock, delivering the events sent for them the way
    /// lel-host does: per block, at their frames, parameter cells holding
    /// the value in force at each block's first frame, at most 256 events a
    /// block (the rest at frame 0 of the next).
    pub fn render(&mut self, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; frames * N::Frame::CHANNELS];
        self.render_into(&mut out);
        out
    }

    /// [`Harness::render`] into `out` (whole frames; every sample written).
    pub fn render_into(&mut self, out: &mut [f32]) {
        let ch = N::Frame::CHANNELS;
        let mut cx = Ctx::new(self.sample_rate as f64, self.clock, ch as u32);
        for chunk in out.chunks_mut(self.block * ch) {
            let n = chunk.len() / ch;
            let start = self.clock;
            let events = self.block_events(start, n as u64);
            crate::rt::render_block(
                &mut self.graph,
                &mut cx,
                start,
                n as u32,
                chunk,
                &events,
                &self.input,
            );
            self.clock += n as u64;
        }
    }

    /// The events of the block `start..start + n`, with the parameter cells
    /// set to the values in force at `start`.
    fn block_events(&mut self, start: u64, n: u64) -> Vec<Event> {
        self.pending.sort_by_key(|(at, _)| *at);
        let due = self
            .pending
            .iter()
            .take_while(|(at, _)| *at < start + n)
            .count();
        let taken: Vec<(u64, Event)> = self.pending.drain(..due).collect();
        let mut events = Vec::new();
        for (at, mut e) in taken {
            let at = at.max(start);
            if e.kind == kind::PARAM && at == start {
                // In force at the first frame: in the cell, no event.
                self.set_table(e.number as usize, e.value);
                continue;
            }
            e.frame = (at - start) as u32;
            events.push(e);
        }
        if events.len() > EVENT_CAPACITY {
            for mut e in events.drain(EVENT_CAPACITY..) {
                e.frame = 0;
                self.pending.push((start + n, e));
            }
        }
        let base = self.region.base().as_ptr();
        for p in self.params.iter().filter(|p| p.declared) {
            // SAFETY: the cell lies in the region (handed out by the
            // claimer, 4-aligned); the graph is not ticking.
            unsafe { base.add(p.cell).cast::<f32>().write(p.value) };
        }
        for e in events.iter().filter(|e| e.kind == kind::PARAM) {
            self.set_table(e.number as usize, e.value);
        }
        events
    }

    fn set_table(&mut self, index: usize, value: f32) {
        if let Some(p) = self
            .params
            .iter_mut()
            .find(|p| p.declared && p.index == index)
        {
            p.value = value;
        }
    }

    /// Sends `ev` for clock frame `at` (a past frame: the next block's
    /// first frame).
    pub fn send(&mut self, at: u64, ev: Event) {
        self.pending.push((at, ev));
    }

    /// A note-on of `key` at `velocity` (0..1) at clock frame `at`.
    pub fn note_on(&mut self, at: u64, key: u8, velocity: f32) {
        self.send(at, Event::note_on(key, velocity));
    }

    /// A note-off of `key` at clock frame `at`.
    pub fn note_off(&mut self, at: u64, key: u8) {
        self.send(at, Event::note_off(key));
    }

    /// Sets parameter `key` to `value` at clock frame `at`, as the host
    /// does: out of range or unknown is an error and changes nothing;
    /// returns the value applied (snapped to the steps).
    pub fn set_param(&mut self, key: &str, value: f32, at: u64) -> Result<f32, String> {
        let p = self
            .params
            .iter_mut()
            .find(|p| p.declared && p.key == key)
            .ok_or_else(|| format!("no parameter '{key}'"))?;
        if !(value >= p.min && value <= p.max) {
            return Err(format!(
                "parameter '{key}': {value} is outside {} to {}",
                p.min, p.max
            ));
        }
        let v = snap(value, p.min, p.max, p.steps);
        p.user_set = true;
        let index = p.index as u16;
        self.send(at, Event::new(kind::PARAM, index, v));
        Ok(v)
    }

    /// The host's parameter table (every key ever declared; `declared`
    /// marks the current version's).
    pub fn params(&self) -> &[HostParam] {
        &self.params
    }

    /// The current value of parameter `key`.
    pub fn param(&self, key: &str) -> Option<f32> {
        self.params
            .iter()
            .find(|p| p.declared && p.key == key)
            .map(|p| p.value)
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
    params: &mut Vec<HostParam>,
    sample_rate: u32,
    block: usize,
) -> Result<(M, Vec<Claimed>, Input), Error> {
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
        params,
        declared: 0,
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
    let input = b.input();
    drop(session);
    Ok((graph, claimer.now, input))
}
