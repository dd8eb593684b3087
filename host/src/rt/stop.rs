//! Stop flags: one 32-bit word per guest instance in a one-page shared
//! memory that every module of an engine imports (the loader writes the
//! imports and the checks that read them into each module, see
//! `loader::instrument`). A word holds the number of the call its instance
//! is running or last ran; the CPU-clock watchdog ([`super::cpu`]) sets
//! the sign bit of exactly that number once the call has used its budget,
//! and the guest's next check (at every function entry and loop header)
//! traps. A call number the watchdog read too late no longer matches the
//! word, so the next call is never stopped for the last one's time.
//!
//! Words are handed out when a store is built (loader side) and returned
//! when it is dropped (never on the audio thread); the audio thread only
//! stores to and loads from its instance's word.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// The sign bit: the call whose number the word holds is to stop.
pub const STOP: i32 = i32::MIN;

/// The stop flags of one engine.
pub struct StopFlags {
    memory: wasmtime::SharedMemory,
    /// Address of the memory's first byte (a shared memory never moves).
    base: usize,
    /// Words not in use.
    free: Mutex<Vec<u32>>,
}

impl StopFlags {
    /// Words in the one page: instances of one engine alive at once.
    pub const WORDS: u32 = 65_536 / 4;

    /// # Errors
    /// When the engine cannot create shared memories (configured without
    /// `Config::shared_memory`).
    pub fn new(engine: &wasmtime::Engine) -> anyhow::Result<Arc<Self>> {
        let memory = wasmtime::SharedMemory::new(engine, wasmtime::MemoryType::shared(1, 1))?;
        let base = memory.data().as_ptr() as usize;
        anyhow::ensure!(
            memory.data().len() >= Self::WORDS as usize * 4,
            "the stop flags' memory is smaller than a page"
        );
        Ok(Arc::new(StopFlags {
            memory,
            base,
            // Handed out from the front: word 0 first.
            free: Mutex::new((0..Self::WORDS).rev().collect()),
        }))
    }

    /// The memory every module of the engine imports.
    pub fn memory(&self) -> &wasmtime::SharedMemory {
        &self.memory
    }

    /// A word for a new instance; `None` when all are in use.
    pub fn word(self: &Arc<Self>) -> Option<StopWord> {
        let index = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        let word = StopWord {
            flags: self.clone(),
            index,
        };
        word.cell().store(0, Ordering::Relaxed);
        Some(word)
    }
}

/// One instance's word; returned to its [`StopFlags`] when dropped.
pub struct StopWord {
    flags: Arc<StopFlags>,
    index: u32,
}

impl StopWord {
    /// Its byte offset in the flags' memory (the module's `word` import).
    pub fn offset(&self) -> i32 {
        (self.index * 4) as i32
    }

    /// The word itself.
    pub fn cell(&self) -> &AtomicI32 {
        // SAFETY: `index < WORDS`, so the 4 bytes at `base + 4 * index` lie
        // in the shared memory's one page (checked in `StopFlags::new`),
        // 4-byte aligned (the page is). That memory never moves or shrinks
        // and lives as long as `self.flags`, which this borrow keeps alive.
        // Every access from the host is atomic; guest code reads it with
        // `i32.atomic.load` only.
        unsafe { &*((self.flags.base + self.index as usize * 4) as *const AtomicI32) }
    }
}

impl Drop for StopWord {
    fn drop(&mut self) {
        // The watchdog may hold this word's address from a call that ended
        // just now: let it finish with it first.
        super::cpu::wait_for_watch_pass();
        self.cell().store(0, Ordering::Relaxed);
        self.flags
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.index);
    }
}

impl std::fmt::Debug for StopWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopWord({})", self.index)
    }
}
