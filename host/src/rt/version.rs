//! One loaded version of a signal: a ready wasmtime instance. Built (compiled,
//! instantiated, `init`-ed) by the loader; its methods here run on the audio
//! thread and never allocate on the fault-free path.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Memory, Store, TypedFunc};

use super::guest::{CallLimits, GrowKind, HostState};
use super::layout::Layout;
use super::messages::Fault;

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
    pub(crate) process: TypedFunc<(i32, i64), i32>,
    pub(crate) memory: Memory,
    /// Where the state region starts in the module's memory.
    pub(crate) state_base: u32,
    /// The claimed blocks, in claim order.
    pub(crate) layout: Layout,
}

impl Version {
    /// Call `process` within the CPU budget of `limits` (judged as in
    /// [`super::guest::Overrun`]); returns the address
    /// of the interleaved samples after checking they lie inside memory.
    ///
    /// # Errors
    /// The fault, plus wasmtime's error when there was one: it allocated, and
    /// must be dropped off the audio thread.
    pub fn process(
        &mut self,
        frames: u32,
        clock: u64,
        limits: CallLimits,
    ) -> Result<usize, (Fault, Option<wasmtime::Error>)> {
        let ticks = self.store.data_mut().overrun.start(limits);
        self.store.set_epoch_deadline(ticks);
        let ptr = match self
            .process
            .call(&mut self.store, (frames as i32, clock as i64))
        {
            Ok(p) => p as u32,
            Err(e) => {
                let fault = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) if self.store.data().overrun.starved => {
                        Fault::Starved
                    }
                    Some(wasmtime::Trap::Interrupt) => Fault::Timeout,
                    Some(&t) => Fault::Trap(t),
                    None => Fault::Failed,
                };
                return Err((fault, Some(e)));
            }
        };
        let bytes = frames as u64 * self.channels as u64 * 4;
        let memory = self.memory.data_size(&self.store) as u64;
        if ptr as u64 + bytes > memory {
            return Err((
                Fault::BadPointer {
                    ptr,
                    bytes: bytes as u32,
                    memory: memory.min(u32::MAX as u64) as u32,
                },
                None,
            ));
        }
        Ok(ptr as usize)
    }

    /// CPU time the last call used at least (a system call: for the
    /// slow-call path only, never per block).
    pub fn last_call_cpu(&self) -> std::time::Duration {
        self.store.data().overrun.cpu_used()
    }

    /// The samples a successful [`Version::process`] returned, as bytes.
    pub fn output(&self, ptr: usize, frames: u32) -> &[u8] {
        let len = frames as usize * self.channels as usize * 4;
        &self.memory.data(&self.store)[ptr..ptr + len]
    }

    /// Copy the carried state blocks from `old` (the version playing until
    /// now) into this one. Blocks are matched by key, size and offset, so a
    /// layout computed against another version copies nothing wrong.
    /// Returns how many blocks were copied.
    pub fn carry_state_from(&mut self, old: &Version) -> u32 {
        let mut copied = 0;
        let src_mem = old.memory.data(&old.store);
        let dst_mem = self.memory.data_mut(&mut self.store);
        for block in self.layout.blocks.iter().filter(|b| b.carried) {
            // Where the claim found it, if `old` is the layout it was placed
            // against (the usual case: O(1)); else look it up by key.
            let src = old
                .layout
                .blocks
                .get(block.source as usize)
                .filter(|o| o.key == block.key)
                .or_else(|| old.layout.blocks.iter().find(|o| o.key == block.key));
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
        copied
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
