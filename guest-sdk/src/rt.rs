//! The runtime behind `lel::signal!`: the statics a module needs (state
//! region, output buffer, event buffer, the built graph) and the bodies of
//! its exports `state-ptr`, `state-len`, `events-ptr`, `events-len`, `init`
//! and `process`. `init` runs on the host's loader thread, `process` on its
//! audio thread (never both at once).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::claim::{Binder, Error};
use crate::ctx::Ctx;
use crate::events::{EVENT_CAPACITY, Event, EventBuf, Input};
use crate::frame::Frame;
use crate::key::Session;
use crate::log::{Level, Line};
use crate::node::Node;

/// Bytes reserved for the built graph (the helpers' parameters, keys and
/// pointers to their state, not the state itself). A signal whose graph
/// does not fit fails to compile.
pub const GRAPH_BYTES: usize = 64 * 1024;

/// Frames `process` renders per loop iteration (see `run`). 8 measured no
/// faster than 4 on the SDK chain (`cargo bench -p lel-host`, part 3) and
/// made the examples' code too large (`drum-pattern` over 64 KB).
const UNROLL: usize = 4;

/// The state region: a static buffer aligned to 16 bytes.
#[repr(C, align(16))]
pub struct Region<const N: usize>(UnsafeCell<[u8; N]>);

#[repr(C, align(16))]
struct OutBuf<const N: usize>([f32; N]);

#[repr(C, align(16))]
struct GraphBuf([MaybeUninit<u8>; GRAPH_BYTES]);

struct Status {
    ready: bool,
    sample_rate: f64,
    max_frames: u32,
    out: *mut f32,
    input: Input,
}

/// A module's runtime, in a `static` the `signal!` macro declares.
///
/// Every access to its cells goes through `Runtime::enter`, which takes
/// the `busy` flag: exports never run concurrently (wasm32 is single
/// threaded; natively a second caller gets an error instead of a race).
pub struct Runtime<const STATE: usize, const OUT: usize> {
    state: Region<STATE>,
    out: UnsafeCell<OutBuf<OUT>>,
    events: UnsafeCell<EventBuf>,
    graph: UnsafeCell<GraphBuf>,
    status: UnsafeCell<Status>,
    busy: AtomicBool,
}

// SAFETY: the cells are only touched while `busy` is held (see `enter`),
// so at most one thread uses them at a time; the raw pointers point into
// the runtime's own statics or memory grown for it.
unsafe impl<const STATE: usize, const OUT: usize> Sync for Runtime<STATE, OUT> {}

struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<const STATE: usize, const OUT: usize> Default for Runtime<STATE, OUT> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const STATE: usize, const OUT: usize> Runtime<STATE, OUT> {
    /// An uninitialised runtime (all zero: lives in `.bss`).
    pub const fn new() -> Self {
        Runtime {
            state: Region(UnsafeCell::new([0; STATE])),
            out: UnsafeCell::new(OutBuf([0.0; OUT])),
            events: UnsafeCell::new(EventBuf(
                [Event {
                    frame: 0,
                    kind: 0,
                    channel: 0,
                    number: 0,
                    value: 0.0,
                    reserved: 0,
                }; EVENT_CAPACITY],
            )),
            graph: UnsafeCell::new(GraphBuf([MaybeUninit::uninit(); GRAPH_BYTES])),
            status: UnsafeCell::new(Status {
                ready: false,
                sample_rate: 0.0,
                max_frames: 0,
                out: ptr::null_mut(),
                input: Input::new(),
            }),
            busy: AtomicBool::new(false),
        }
    }

    fn enter(&self) -> Option<Busy<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Busy(&self.busy))
    }

    /// `state-ptr`: the region's address (meaningful on wasm32).
    pub fn state_ptr(&self) -> u32 {
        self.state.0.get() as usize as u32
    }

    /// `state-len`: the region's length in bytes.
    pub fn state_len(&self) -> u32 {
        STATE as u32
    }

    /// `events-ptr`: the event buffer's address (meaningful on wasm32).
    pub fn events_ptr(&self) -> u32 {
        self.events.get() as usize as u32
    }

    /// `events-len`: the event buffer's length in bytes.
    pub fn events_len(&self) -> u32 {
        size_of::<EventBuf>() as u32
    }

    /// Writes `events` into the event buffer, as the host does before
    /// `process` (native tests of a `signal!` module); returns how many
    /// fit.
    pub fn write_events(&self, events: &[Event]) -> u32 {
        let Some(_busy) = self.enter() else {
            return 0;
        };
        // SAFETY: `busy` is held: nothing else touches the buffer.
        let buf = unsafe { &mut (*self.events.get()).0 };
        let n = events.len().min(EVENT_CAPACITY);
        buf[..n].copy_from_slice(&events[..n]);
        n as u32
    }

    /// `init`: builds the signal with `build`, claims its state, returns its
    /// channel count or a negative [`Error`] code (logged).
    pub fn init<N: Node>(&self, sample_rate: u32, max_frames: u32, build: fn() -> N) -> i32 {
        const {
            assert!(
                size_of::<N>() <= GRAPH_BYTES,
                "the signal's graph is larger than lel::rt::GRAPH_BYTES"
            );
            assert!(align_of::<N>() <= 16);
        }
        let Some(_busy) = self.enter() else {
            return Error::BUSY.0;
        };
        // SAFETY: `busy` is held: nothing else touches the cells.
        let status = unsafe { &mut *self.status.get() };
        if status.ready {
            status.ready = false;
            // SAFETY: `ready` means the graph buffer holds an `N` written by
            // a previous `init` of this same module (same `build`, same `N`).
            unsafe { ptr::drop_in_place(self.graph.get().cast::<N>()) };
        }
        match self.setup(status, sample_rate, max_frames, build) {
            Ok(ch) => ch as i32,
            Err(e) => e.0,
        }
    }

    fn setup<N: Node>(
        &self,
        status: &mut Status,
        sample_rate: u32,
        max_frames: u32,
        build: fn() -> N,
    ) -> Result<usize, Error> {
        if sample_rate == 0 || max_frames == 0 {
            return Err(fail(Error::BAD_ARGS, b""));
        }
        let ch = N::Frame::CHANNELS;
        let need = (max_frames as usize)
            .checked_mul(ch)
            .ok_or(Error::OUTPUT_TOO_SMALL)?;
        status.out = if need <= OUT {
            self.out.get().cast::<f32>()
        } else {
            grow(need).ok_or_else(|| fail(Error::OUTPUT_TOO_SMALL, b""))?
        };

        let region = self.state.0.get().cast::<u8>();
        let session = Session::begin();
        let mut graph = build();
        #[cfg(target_arch = "wasm32")]
        let mut claimer = crate::claim::HostClaimer;
        #[cfg(not(target_arch = "wasm32"))]
        // SAFETY: the region is this runtime's own static, used by nothing
        // else while `busy` is held; the previous graph (if any) is gone.
        let mut claimer = unsafe {
            crate::claim::Bump::new(
                core::ptr::NonNull::new(region).ok_or(Error::NO_STATE_REGION)?,
                STATE,
            )
        };
        let mut b = Binder::new(
            &mut claimer,
            region as usize,
            STATE,
            sample_rate as f64,
            max_frames,
            ch as u32,
        );
        if let Err(e) = graph.bind(&mut b) {
            return Err(fail(e, b.failed_key()));
        }
        status.input = b.input();
        drop(session);

        // SAFETY: the buffer is large and aligned enough for `N` (checked at
        // compile time above) and holds no live value (`ready` is false).
        unsafe { ptr::write(self.graph.get().cast::<N>(), graph) };
        status.sample_rate = sample_rate as f64;
        status.max_frames = max_frames;
        status.ready = true;
        Ok(ch)
    }

    /// `process`: renders `frames` frames starting at `clock` and returns
    /// the address of the interleaved `f32` samples (0 if re-entered).
    pub fn process<N: Node>(&self, frames: u32, clock: u64, events: u32, build: fn() -> N) -> u32 {
        match self.render::<N>(frames, clock, events, build) {
            Some(p) => p as usize as u32,
            None => 0,
        }
    }

    /// Renders like `process` and copies the samples into `dst` (native
    /// tests of a `signal!` module); returns how many were copied.
    pub fn render_into<N: Node>(
        &self,
        frames: u32,
        clock: u64,
        events: u32,
        build: fn() -> N,
        dst: &mut [f32],
    ) -> usize {
        let Some(p) = self.render::<N>(frames, clock, events, build) else {
            return 0;
        };
        let Some(_busy) = self.enter() else {
            return 0;
        };
        // SAFETY: `busy` is held; the status was written by `init`.
        let status = unsafe { &*self.status.get() };
        let n = (frames.min(status.max_frames.max(1)) as usize * N::Frame::CHANNELS).min(dst.len());
        // SAFETY: `p` points to at least `frames * channels` samples just
        // rendered (or zeroed), and `busy` keeps anyone from writing them.
        dst[..n].copy_from_slice(unsafe { core::slice::from_raw_parts(p, n) });
        n
    }

    fn render<N: Node>(
        &self,
        frames: u32,
        clock: u64,
        events: u32,
        _build: fn() -> N,
    ) -> Option<*const f32> {
        let _busy = self.enter()?;
        let ch = N::Frame::CHANNELS;
        // SAFETY: `busy` is held: nothing else touches the cells.
        let status = unsafe { &mut *self.status.get() };
        if !status.ready {
            // No signal (init failed or never ran): silence from the static
            // buffer, as much of it as asked for and fits.
            let p = self.out.get().cast::<f32>();
            let n = (frames as usize * ch).min(OUT);
            // SAFETY: `p` is the static output buffer of `OUT` samples.
            unsafe { ptr::write_bytes(p, 0, n) };
            return Some(p);
        }
        let frames = frames.min(status.max_frames);
        // SAFETY: `init` made `status.out` point to at least
        // `max_frames * ch` samples that only the runtime uses, and
        // `frames <= max_frames`.
        let out = unsafe { core::slice::from_raw_parts_mut(status.out, frames as usize * ch) };
        // SAFETY: `ready` means the graph buffer holds the `N` `init` built
        // (the same `build`, hence the same type); `busy` makes this the
        // only reference.
        let graph = unsafe { &mut *self.graph.get().cast::<N>() };
        // SAFETY: `busy` is held; the host wrote the events before calling.
        let evs = unsafe { &(*self.events.get()).0 };
        let evs = &evs[..(events as usize).min(EVENT_CAPACITY)];
        let mut cx = Ctx::new(status.sample_rate, clock, ch as u32);
        // The graph goes in as an opaque `&mut` argument of a function
        // that is not inlined. Otherwise the compiler sees through it to the
        // static it lives in, and, not knowing that the state the nodes
        // write is elsewhere, reloads every node's state pointer and
        // coefficient from that static after every store, frame after frame:
        // the SDK chain ran 1.2x slower in wasm than the same Rust natively,
        // where the harness passes the graph by reference (`cargo bench -p
        // lel-host`, part 6: 1.21x; 1.03x this way).
        render_block(
            core::hint::black_box(graph),
            &mut cx,
            clock,
            frames,
            out,
            evs,
            &status.input,
        );
        Some(status.out)
    }
}

/// Renders one block of `frames` frames from `clock` into `out`
/// (interleaved), applying `events` at their frames: before the frame an
/// event is at renders, parameter events write their cell and note events
/// update the note state, and the frame's context lists them (for `poly`).
/// Events out of order or past the block are applied at the next frame
/// still to render (the last one at the latest).
///
/// Never inlined: `graph` must stay an argument (see `Runtime::render`).
#[inline(never)]
pub(crate) fn render_block<N: Node>(
    graph: &mut N,
    cx: &mut Ctx,
    clock: u64,
    frames: u32,
    out: &mut [f32],
    events: &[Event],
    input: &Input,
) {
    let ch = N::Frame::CHANNELS;
    let mut frame = 0u32;
    let mut rest = events;
    while frame < frames {
        // The frames before the next event: no events in their context.
        let next = match rest.first() {
            Some(e) => e.frame.clamp(frame, frames - 1),
            None => frames,
        };
        let a = frame as usize * ch;
        let b = next as usize * ch;
        cx.events = core::ptr::null();
        cx.n_events = 0;
        run(graph, cx, clock, frames, frame, &mut out[a..b]);
        frame = next;
        if frame == frames {
            break;
        }
        // The events at `frame` (and any stragglers before it).
        let n = rest
            .iter()
            .position(|e| e.frame.clamp(frame, frames - 1) > frame)
            .unwrap_or(rest.len());
        let (now, later) = rest.split_at(n);
        for e in now {
            input.apply(e);
        }
        cx.events = now.as_ptr();
        cx.n_events = now.len() as u32;
        let a = frame as usize * ch;
        run(graph, cx, clock, frames, frame, &mut out[a..a + ch]);
        cx.events = core::ptr::null();
        cx.n_events = 0;
        rest = later;
        frame += 1;
    }
}

/// Renders the frames of `out` (interleaved), the first one being frame
/// `frame` of the block.
#[inline(always)]
fn run<N: Node>(graph: &mut N, cx: &mut Ctx, clock: u64, frames: u32, frame: u32, out: &mut [f32]) {
    let ch = N::Frame::CHANNELS;
    let mut frame = frame;
    #[inline(always)]
    fn one<N: Node>(graph: &mut N, cx: &mut Ctx, at: (u64, u32, u32), o: &mut [f32]) {
        cx.seek(at.0, at.1, at.2);
        let f = graph.tick(cx);
        for (d, s) in o.iter_mut().zip(f.as_slice()) {
            *d = *s as f32;
        }
    }
    // UNROLL frames per loop iteration, the graph's `tick` written out
    // UNROLL times: the same samples, in the same order, as one frame
    // per iteration, but a runtime that checks for runaways on every
    // loop back-edge (lel-host's stop check) checks UNROLL times less.
    let mut chunks = out.chunks_exact_mut(ch * UNROLL);
    for chunk in &mut chunks {
        let (a, rest) = chunk.split_at_mut(ch);
        let (b, rest) = rest.split_at_mut(ch);
        let (c, d) = rest.split_at_mut(ch);
        one(graph, cx, (clock, frames, frame), a);
        one(graph, cx, (clock, frames, frame + 1), b);
        one(graph, cx, (clock, frames, frame + 2), c);
        one(graph, cx, (clock, frames, frame + 3), d);
        frame += UNROLL as u32;
    }
    for o in chunks.into_remainder().chunks_exact_mut(ch) {
        one(graph, cx, (clock, frames, frame), o);
        frame += 1;
    }
}

/// Logs why `init` failed and passes the error on.
fn fail(e: Error, key: &[u8]) -> Error {
    let mut line = Line::new();
    line.text(b"lel: init failed");
    if !key.is_empty() {
        line.text(b", key '").text(key).text(b"'");
    }
    line.text(b": ")
        .text(e.describe().as_bytes())
        .text(b" (")
        .int(e.0 as i64)
        .text(b")")
        .send(Level::Error);
    e
}

/// Memory for an output buffer of `samples` `f32`s beyond the static one:
/// fresh pages grown for it (zeroed, used by nothing else: the module has
/// no allocator).
#[cfg(target_arch = "wasm32")]
fn grow(samples: usize) -> Option<*mut f32> {
    let pages = samples.checked_mul(4)?.div_ceil(65536);
    let prev = core::arch::wasm32::memory_grow::<0>(pages);
    if prev == usize::MAX {
        return None;
    }
    Some((prev * 65536) as *mut f32)
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_samples: usize) -> Option<*mut f32> {
    None
}
