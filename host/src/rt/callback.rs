//! The audio callback: what the device (or the silent clock) calls for every
//! buffer. Renders through the mixer under the real-time guard, converts to
//! the device's sample format, copies what was played into the recorder's
//! ring and notices late callbacks. Runs on the audio thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Engine, Module, Store, TypedFunc};

use super::guard::Stats;
use super::mixer::Mixer;

/// Largest device buffer converted in one piece (larger ones are split).
const SCRATCH_FRAMES: usize = 4096;

/// `(module (func (export "w")))` in the binary format: wasmtime is built
/// without its text parser, so text would not compile (and the warm-up would
/// silently not happen).
pub const WARM_UP_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x07, 0x05, 0x01, 0x01, b'w', 0x00, 0x00, // exports: "w" = function 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: an empty body
];

/// A trivial wasm function called once on the audio thread before the first
/// block: wasmtime sets up per-thread state (a signal stack) on a thread's
/// first call into wasm, which allocates and makes system calls.
pub struct WarmUp {
    store: Store<()>,
    func: TypedFunc<(), ()>,
}

impl WarmUp {
    /// # Errors
    /// When the tiny module does not compile (it always does).
    pub fn new(engine: &Engine) -> anyhow::Result<Self> {
        let module = Module::new(engine, WARM_UP_MODULE)?;
        let mut store = Store::new(engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[])?;
        let func = instance.get_typed_func(&mut store, "w")?;
        Ok(WarmUp { store, func })
    }

    pub fn call(&mut self) {
        let _ = self.func.call(&mut self.store, ());
    }
}

thread_local! {
    /// This thread was prepared for audio (see [`AudioCallback::first_call`]).
    static PREPARED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Everything the audio thread owns.
pub struct AudioCallback {
    mixer: Mixer,
    record: Option<rtrb::Producer<f32>>,
    stats: Arc<Stats>,
    warm_up: Option<WarmUp>,
    scratch: Box<[f32]>,
    last: Option<Instant>,
    /// Timed by the silent clock (see [`AudioCallback::set_clocked`]).
    clocked: bool,
    /// Samples the recorder's ring had no room for.
    pub record_overruns: u64,
}

impl AudioCallback {
    pub fn new(
        mixer: Mixer,
        stats: Arc<Stats>,
        record: Option<rtrb::Producer<f32>>,
        warm_up: Option<WarmUp>,
    ) -> Self {
        let channels = mixer.config().channels;
        AudioCallback {
            mixer,
            record,
            stats,
            warm_up,
            scratch: vec![0.0; SCRATCH_FRAMES * channels].into_boxed_slice(),
            last: None,
            clocked: false,
            record_overruns: 0,
        }
    }

    pub fn channels(&self) -> usize {
        self.mixer.config().channels
    }

    pub fn sample_rate(&self) -> u32 {
        self.mixer.config().sample_rate
    }

    /// Once per thread, before its first block (outside the real-time
    /// guard): real-time priority, CPU-clock registration and wasmtime's
    /// per-thread warm-up. A reopened device calls from a new thread.
    fn first_call(&mut self) {
        if !PREPARED.with(|p| p.replace(true)) {
            super::priority::promote(super::priority::Role::Audio);
            super::cpu::ensure_registered();
            if let Some(w) = self.warm_up.as_mut() {
                w.call();
            }
        }
    }

    fn note_timing(&mut self, frames: usize) {
        if self.clocked {
            return;
        }
        let now = Instant::now();
        if let Some(last) = self.last {
            // Later than 1.5 buffer periods after the previous callback: the
            // device most likely ran dry for the time beyond one period.
            let period_ns = frames as u64 * 1_000_000_000 / self.sample_rate() as u64;
            let gap = now.duration_since(last).as_nanos() as u64;
            if gap > period_ns * 3 / 2 + 2_000_000 {
                self.missed_deadline(gap - period_ns);
            }
        }
        self.last = Some(now);
    }

    /// The output is timed by a clock that reports missed deadlines itself
    /// ([`AudioCallback::missed_deadline`]), exactly.
    pub fn set_clocked(&mut self, clocked: bool) {
        self.clocked = clocked;
    }

    /// A block came late: the output had nothing to play for `lost_ns`.
    pub fn missed_deadline(&self, lost_ns: u64) {
        self.stats.late_callbacks.fetch_add(1, Ordering::Relaxed);
        self.stats.lost_nanos.fetch_add(lost_ns, Ordering::Relaxed);
    }

    /// Fill an `f32` device buffer (interleaved, the mixer's channel count).
    pub fn process_f32(&mut self, out: &mut [f32]) {
        self.first_call();
        self.note_timing(out.len() / self.channels());
        self.mixer.render(out);
        self.record(out.len());
        if let Some(ring) = self.record.as_mut()
            && let Ok(chunk) = ring.write_chunk_uninit(out.len())
        {
            chunk.fill_from_iter(out.iter().copied());
        }
    }

    /// Fill a device buffer of another sample type, converting from `f32`.
    pub fn process_with<T: Copy>(&mut self, out: &mut [T], convert: impl Fn(f32) -> T) {
        self.first_call();
        let ch = self.channels();
        self.note_timing(out.len() / ch);
        let mut scratch = std::mem::take(&mut self.scratch);
        for piece in out.chunks_mut(scratch.len()) {
            let buf = &mut scratch[..piece.len()];
            self.mixer.render(buf);
            for (d, s) in piece.iter_mut().zip(buf.iter()) {
                *d = convert(*s);
            }
            self.record(buf.len());
            if let Some(ring) = self.record.as_mut()
                && let Ok(chunk) = ring.write_chunk_uninit(buf.len())
            {
                chunk.fill_from_iter(buf.iter().copied());
            }
        }
        self.scratch = scratch;
    }

    fn record(&mut self, samples: usize) {
        if let Some(ring) = self.record.as_ref()
            && ring.slots() < samples
        {
            self.record_overruns += samples as u64;
        }
    }
}
