//! One loaded version of a signal: a ready wasmtime instance. Built (compiled,
//! instantiated, `init`-ed) by the loader; its methods here run on the audio
//! thread and never allocate on the fault-free path.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Memory, Store, TypedFunc};

use super::guest::{CallLimits, GrowKind, HostState};
use super::layout::Layout;
use super::messages::Fault;
use super::params::{BlockEvent, Controls};

/// A version's `process` export: `lel:signal@0.1.0`'s `(frames, clock)`
/// or `0.2.0`'s `(frames, clock, events)`.
pub enum Process {
    V1(TypedFunc<(i32, i64), i32>),
    V2(TypedFunc<(i32, i64, i32), i32>),
}

/// Versions dropped so far, and how many of those on the audio thread
/// (which must stay zero: dropping a wasmtime store frees memory and may
/// lock). Read by tests and `--stats`.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
pub static DROPPED_ON_AUDIO_THREAD: AtomicU64 = AtomicU64::new(0);

/// A version ready to play.
pub struct Version {
    /// Unique among all versions the process ever loaded.
    pub id: u64,
    pub channels: u32,
    pub(crate) store: Store<HostState>,
    pub(crate) process: Process,
    pub(crate) memory: Memory,
    /// Where the state region starts in the module's memory.
    pub(crate) state_base: u32,
    /// The claimed blocks, in claim order.
    pub(crate) layout: Layout,
    /// Its parameters (values, cells), event buffer and event backlog
    /// (empty for a 0.1.0 module).
    pub(crate) controls: Controls,
    /// The memory's base address and a length it had (0, 0: not looked up
    /// yet), for [`Version::output`]. lel-host's engines never move a
    /// memory (`Config::memory_may_move(false)`) and memories never
    /// shrink, so the bytes up to that length stay the memory's.
    pub(crate) seen_memory: (usize, usize),
    /// The module's mutable numeric globals (exported for the host by the
    /// loader's rewrite), in index order: a tier-up copies them.
    pub(crate) globals: Vec<wasmtime::Global>,
}

impl Version {
    /// Call `process` within the CPU budget of `limits` (judged as in
    /// [`super::guest::Overrun`]: the watchdog stops it); returns the address of the interleaved
    /// samples ([`Version::output`] checks that they lie inside memory).
    ///
    /// # Errors
    /// The fault, plus wasmtime's error when there was one: it allocated, and
    /// must be dropped off the audio thread.
    pub fn process(
        &mut self,
        frames: u32,
        clock: u64,
        events: u32,
        limits: CallLimits,
    ) -> Result<usize, (Fault, Option<wasmtime::Error>)> {
        {
            let data = self.store.data_mut();
            data.overrun.start(limits, data.stop.as_ref());
        }
        let result = match &self.process {
            Process::V1(f) => f.call(&mut self.store, (frames as i32, clock as i64)),
            Process::V2(f) => f.call(
                &mut self.store,
                (frames as i32, clock as i64, events as i32),
            ),
        };
        let data = self.store.data_mut();
        let stopped = data.overrun.finish(data.stop.as_ref());
        match result {
            Ok(p) => Ok(p as u32 as usize),
            Err(e) => {
                let fault = match e.downcast_ref::<wasmtime::Trap>() {
                    // Trapped at a stop check (or just as it was stopped).
                    _ if stopped && self.store.data().overrun.starved => Fault::Starved,
                    _ if stopped => Fault::Timeout,
                    Some(&t) => Fault::Trap(t),
                    None => Fault::Failed,
                };
                Err((fault, Some(e)))
            }
        }
    }

    /// Before the `process` call of the block at `clock`: write the
    /// parameter cells (the values at the block's first frame) and this
    /// block's `events` (after any backlog) into the guest's memory. Returns
    /// how many events were written (the `events` argument of `process`).
    pub fn feed(&mut self, clock: u64, events: &[BlockEvent]) -> u32 {
        if self.controls.cells.is_empty() && self.controls.buffer.is_none() {
            // Nothing to write (a 0.1.0 module, or one with no parameters
            // and no events): the store's memory is not looked up, which
            // for many small signals was a sixth of the engine's work per
            // signal (cache misses on the way to each store's memory).
            self.controls.fed_at = Some(clock);
            self.controls.follow(events);
            return 0;
        }
        let memory = self.memory.data_mut(&mut self.store);
        self.controls.feed(memory, clock, events)
    }

    /// A block's events for a version not rendered in it: the parameter
    /// values follow (notes are not kept).
    pub fn follow(&mut self, clock: u64, events: &[BlockEvent]) {
        if self.controls.fed_at != Some(clock) {
            self.controls.fed_at = Some(clock);
            self.controls.follow(events);
        }
    }

    /// The parameters (values, ranges, signal-wide ids), in declaration order.
    pub fn params(&self) -> &[super::params::ParamCell] {
        &self.controls.cells
    }

    /// Mutable: the control side gives each cell its id and starting value
    /// before handing the version over.
    pub fn params_mut(&mut self) -> &mut [super::params::ParamCell] {
        &mut self.controls.cells
    }

    /// Events dropped because the event backlog was full.
    pub fn dropped_events(&self) -> u64 {
        self.controls.dropped
    }

    /// Wall time since the last call started, in nanoseconds (one clock
    /// read: the start is the one the call's budget was set from).
    pub fn since_call_start_ns(&self) -> u64 {
        super::clock::now_ns().saturating_sub(self.store.data().overrun.started_ns())
    }

    /// CPU time the last call used at least (a system call: for the
    /// slow-call path only, never per block).
    pub fn last_call_cpu(&self) -> std::time::Duration {
        self.store.data().overrun.cpu_used()
    }

    /// The samples at `ptr` (as a successful [`Version::process`] returned
    /// it), as bytes, if they lie inside the module's memory. The memory is
    /// looked up through the store only when they lie beyond the length it
    /// had at the last look: with many signals, each lookup was a chain of
    /// cache misses (store, instance, memory), a sixth of a signal's time.
    ///
    /// # Errors
    /// [`Fault::BadPointer`] when they do not.
    pub fn output(&mut self, ptr: usize, frames: u32) -> Result<&[u8], Fault> {
        let len = frames as usize * self.channels as usize * 4;
        if ptr + len > self.seen_memory.1 {
            // First look, or the memory grew since, or a bad pointer.
            let data = self.memory.data(&self.store);
            self.seen_memory = (data.as_ptr() as usize, data.len());
            if ptr + len > data.len() {
                return Err(Fault::BadPointer {
                    ptr: ptr as u32,
                    bytes: len as u32,
                    memory: data.len().min(u32::MAX as usize) as u32,
                });
            }
        }
        let base = self.seen_memory.0;
        debug_assert_eq!(
            base,
            self.memory.data_ptr(&self.store) as usize,
            "memory moved"
        );
        // SAFETY: `base` is the memory's start and `ptr + len` is within a
        // length the memory had (checked above, now or at an earlier look):
        // the memory never moves (lel-host's engines set
        // `memory_may_move(false)`; the debug assertion above checks it) and
        // never shrinks while this version lives, so these bytes are
        // memory. The guest cannot run (no call) while the returned borrow
        // of `self` lives.
        Ok(unsafe { std::slice::from_raw_parts((base + ptr) as *const u8, len) })
    }

    /// Copy the carried state blocks from `old` (the version playing until
    /// now) into this one. Blocks are matched by key, size and offset, so a
    /// layout computed against another version copies nothing wrong.
    /// Returns how many blocks were copied.
    pub fn carry_state_from(&mut self, old: &Version) -> u32 {
        let mut copied = 0;
        let src_mem = old.memory.data(&old.store);
        let dst_mem = self.memory.data_mut(&mut self.store);
        // Parameter cells are not state: the host writes them before every
        // block (their values come along below, by key).
        for block in self.layout.blocks.iter().filter(|b| b.carried && !b.param) {
            // Where the claim found it, if `old` is the layout it was placed
            // against (the usual case: O(1)); else look it up by key.
            let src = old
                .layout
                .blocks
                .get(block.source as usize)
                .filter(|o| o.key == block.key)
                .filter(|o| o.param == block.param)
                .or_else(|| {
                    old.layout
                        .blocks
                        .iter()
                        .find(|o| o.key == block.key && o.param == block.param)
                });
            let Some(src) = src else {
                continue;
            };
            if src.size != block.size || src.offset != block.offset {
                continue;
            }
            let (s, d, n) = (
                (old.state_base + src.offset) as usize,
                (self.state_base + block.offset) as usize,
                block.size as usize,
            );
            if let (Some(from), Some(to)) = (src_mem.get(s..s + n), dst_mem.get_mut(d..d + n)) {
                to.copy_from_slice(from);
                copied += 1;
            }
        }
        self.controls.take_values_from(&old.controls);
        copied
    }

    /// A tier-up: this version is `old`'s optimised build (the same module,
    /// its claims placed against the same layout). Takes over everything
    /// `old` keeps from block to block as it is now: every claimed block,
    /// carried or new (one copy of the claimed part of the state region),
    /// its mutable globals, and the parameter values, event buffer state
    /// and backlog, so it continues exactly where `old` stops. Returns
    /// false, copying nothing, if the two layouts differ.
    pub fn take_over_from(&mut self, old: &mut Version) -> bool {
        if self.layout != old.layout
            || self.state_base != old.state_base
            || self.globals.len() != old.globals.len()
        {
            return false;
        }
        let end = self
            .layout
            .blocks
            .iter()
            .map(|b| b.offset as usize + b.size as usize)
            .max()
            .unwrap_or(0);
        let at = self.state_base as usize;
        let src = old.memory.data(&old.store).get(at..at + end);
        let dst = self.memory.data_mut(&mut self.store).get_mut(at..at + end);
        let (Some(src), Some(dst)) = (src, dst) else {
            return false;
        };
        dst.copy_from_slice(src);
        for (to, from) in self.globals.iter().zip(&old.globals) {
            // Numeric values (no allocation); the same module, so the same
            // types: `set` cannot fail.
            let value = from.get(&mut old.store);
            let _ = to.set(&mut self.store, value);
        }
        std::mem::swap(&mut self.controls, &mut old.controls);
        true
    }

    /// A limit that refused a grow and was not reported yet (each once).
    pub fn take_grow_refusal(&mut self) -> Option<GrowKind> {
        self.store.data_mut().limits.refused.take()
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        if super::guard::on_audio_thread() {
            DROPPED_ON_AUDIO_THREAD.fetch_add(1, Ordering::Relaxed);
        }
    }
}
