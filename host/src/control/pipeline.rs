//! The load pipeline, the one way a version reaches the audio thread, for
//! startup, `render`, `check` and the file watcher alike: read the file, skip
//! it if its bytes are those playing already, prepare it (validate, compile,
//! instantiate, `init`) on a worker, and hand it over. Loads of different
//! signals run side by side, so a slow or hanging `init` holds back no one;
//! loads of one signal run in order (a newer request waits for the one being
//! prepared), so every version claims its state against the version it
//! replaces. The control side runs here; the reading and preparing run on
//! worker threads.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::contract;
use crate::files::{is_text, read_file};
use crate::loader::cache::{self, Hash, Source};
use crate::loader::{LoadError, LoadReport, Loader, Prepared};
use crate::rt::layout::Layout;
use crate::rt::messages::SlotId;

use super::{Control, LoadOutcome, Signal};

/// A version asked for: `signal` from a file, or from module bytes.
#[derive(Debug)]
pub struct Request {
    pub signal: String,
    /// The file, for reading (unless `bytes` are given) and for messages.
    pub path: Option<PathBuf>,
    /// Binary module bytes; `None`: read `path`.
    bytes: Option<Vec<u8>>,
    /// When the change that asked for it was noticed (for latency figures).
    pub noticed: Option<Instant>,
    /// Start with fresh state: carry nothing, even if the bytes are those
    /// playing (a restart after a fault the carried state may have caused).
    fresh_state: bool,
    /// One of the first versions `run` starts with: it starts without a
    /// fade-in even when it joins a stream already running.
    first: bool,
    /// Load even when the bytes are those playing (a retry, a replay).
    always: bool,
    /// A restart: fresh state, crossfaded in so the fresh start does not click.
    restart: bool,
    /// A session replay: the slot, the fade-in and the version (by its id
    /// in the session, and layout) whose state layout it claims against,
    /// exactly as in the run that recorded it.
    slot: Option<SlotId>,
    fade_in: Option<bool>,
    against: Option<(u64, Layout)>,
}

impl Request {
    /// Load `path` as `signal`.
    pub fn file(signal: impl Into<String>, path: PathBuf) -> Self {
        Request {
            signal: signal.into(),
            path: Some(path),
            bytes: None,
            noticed: None,
            fresh_state: false,
            first: false,
            always: false,
            restart: false,
            slot: None,
            fade_in: None,
            against: None,
        }
    }

    /// Load binary module `bytes` as `signal` (`path`: where they came from).
    pub fn bytes(signal: impl Into<String>, bytes: Vec<u8>, path: Option<PathBuf>) -> Self {
        Request {
            signal: signal.into(),
            path,
            bytes: Some(bytes),
            noticed: None,
            fresh_state: false,
            first: false,
            always: false,
            restart: false,
            slot: None,
            fade_in: None,
            against: None,
        }
    }

    /// Carry no state into this version: it starts as if loaded for the
    /// first time (and loads even if its bytes are those playing).
    pub fn with_fresh_state(mut self) -> Self {
        self.fresh_state = true;
        self
    }

    /// Load even if the bytes are those playing (retrying a faulted
    /// version, say).
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// Restart the signal with fresh state: as [`Request::with_fresh_state`],
    /// and the fresh version is crossfaded in (equal power, at least the
    /// fade time) rather than swapped, so its fresh start does not click.
    pub fn restart(mut self) -> Self {
        self.fresh_state = true;
        self.always = true;
        self.restart = true;
        self
    }

    /// A replayed version: in `slot`, with or without a fade-in, its state
    /// claimed against `against` (a version's id and layout; `None`:
    /// nothing carried), whatever plays now.
    pub(crate) fn replayed(
        mut self,
        slot: SlotId,
        fade_in: bool,
        restart: bool,
        against: Option<(u64, Layout)>,
    ) -> Self {
        self.always = true;
        self.slot = Some(slot);
        self.fade_in = Some(fade_in);
        self.restart = restart;
        self.fresh_state = against.is_none();
        self.against = against;
        self
    }

    /// One of the first versions: no fade-in when it joins.
    pub fn first_version(mut self) -> Self {
        self.first = true;
        self
    }

    /// The change behind this request was noticed at `at`.
    pub fn noticed_at(mut self, at: Instant) -> Self {
        self.noticed = Some(at);
        self
    }
}

/// A signal that used more of the block than this (recently) plays new
/// code only from its optimised build: its fast build runs 2x to 3.6x as
/// slow (Winch; 2x to 2.4x for Cranelift unoptimised, `cargo bench -p
/// lel-host` part 6), and more than a block's work would make late blocks.
pub const FAST_BUILD_MAX_SHARE: f64 = 0.2;

/// A request, finished.
#[derive(Debug)]
pub struct Loaded {
    pub signal: String,
    pub path: Option<PathBuf>,
    pub noticed: Option<Instant>,
    /// Did a version of the signal play before this one?
    pub was_playing: bool,
    pub result: Result<LoadOutcome, LoadError>,
}

impl Loaded {
    /// One log line saying what became of the request.
    pub fn log(&self) {
        let name = &self.signal;
        let file = self
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| name.clone());
        match &self.result {
            Ok(LoadOutcome::Loaded(r)) if self.was_playing => {
                tracing::info!("{name}: new version from {file}, {}", describe(r))
            }
            Ok(LoadOutcome::Loaded(r)) => {
                tracing::info!("{name}: loaded ({file}), {}", describe(r))
            }
            Ok(LoadOutcome::Unchanged) => {
                tracing::debug!("{name}: {file} changed on disk but not in content")
            }
            Err(e) => {
                let playing = if self.was_playing {
                    "; the playing version keeps playing"
                } else {
                    ""
                };
                tracing::error!("{name}: rejected: {file}: {e}{playing}");
            }
        }
    }
}

/// How a version was loaded, for a log line: channels, compile and `init` time.
pub(crate) fn describe(r: &LoadReport) -> String {
    let how = match r.source {
        Source::Compiled => "compiled",
        Source::Memory => "from the in-memory cache",
        Source::Disk => "from the disk cache",
    };
    let ch = if r.channels == 1 {
        "channel"
    } else {
        "channels"
    };
    format!(
        "{} {ch}, {how} in {:.1} ms, init {:.1} ms",
        r.channels,
        r.compile.as_secs_f64() * 1e3,
        r.init.as_secs_f64() * 1e3
    )
}

/// Where a signal's next version stands.
#[derive(Debug, Default)]
pub(super) enum Status {
    /// Nothing being prepared.
    #[default]
    Idle,
    /// Ticket `ticket` is on a worker; `queued` waits for it.
    Preparing {
        ticket: u64,
        queued: Option<Request>,
    },
}

/// A worker's result.
pub(super) struct Done {
    signal: String,
    ticket: u64,
    /// Hash of the raw bytes read (text or binary), when they were read.
    raw: Option<Hash>,
    /// `None`: the bytes are those of the version playing. With the
    /// prepared version, its binary module.
    result: Result<Option<Ready>, LoadError>,
    /// The optimised build of this version (by id), which plays from its
    /// fast build: not a request's result.
    tier_up: Option<u64>,
}

/// A prepared version and its binary module.
pub(super) type Ready = (Prepared, Arc<[u8]>);

/// A request on a worker: what to report and how to hand it over.
struct InFlight {
    ticket: u64,
    path: PathBuf,
    noticed: Option<Instant>,
    first: bool,
    hand: HandOver,
}

/// How a prepared version is handed to the audio thread (and recorded in
/// a session).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HandOver {
    /// The fade-in asked for (`None`: as the stream's state decides).
    pub fade_in: Option<bool>,
    pub restart: bool,
    /// The version whose state layout this one claimed against.
    pub against: Option<u64>,
}

/// The pipeline's own state inside [`Control`].
pub(super) struct Pipeline {
    tx: mpsc::Sender<Done>,
    rx: mpsc::Receiver<Done>,
    /// Finished requests not yet taken.
    ready: VecDeque<Loaded>,
    /// Requests in flight, by ticket: what to report when they finish.
    next_ticket: u64,
    in_flight: Vec<InFlight>,
    /// Called by a worker after it sends a result (to wake a control loop).
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
    pool: Pool,
    /// Recent failures decided by the bytes alone, by the hash of the file's
    /// raw bytes: identical bytes are never parsed or compiled twice.
    failures: Arc<Failures>,
}

/// Most failures remembered by their bytes.
const FAILURES_KEPT: usize = 64;

/// Failures decided by the bytes alone (parse, validation, compile), newest
/// last.
#[derive(Default)]
struct Failures(std::sync::Mutex<VecDeque<(Hash, String, bool)>>);

impl Failures {
    fn get(&self, raw: &Hash) -> Option<LoadError> {
        let list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|(h, _, _)| h == raw)
            .map(|(_, message, partial)| LoadError::Repeated {
                message: message.clone(),
                partial: *partial,
            })
    }

    fn remember(&self, raw: Hash, e: &LoadError) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() >= FAILURES_KEPT {
            list.pop_front();
        }
        list.push_back((raw, e.to_string(), e.may_be_partial_write()));
    }
}

/// Workers that run loads: at most [`Pool::size`] at once, at a lower
/// priority than the audio (nice 5), started as needed.
/// One load, run on a worker.
type Work = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: mpsc::Sender<Work>,
    queue: Arc<std::sync::Mutex<mpsc::Receiver<Work>>>,
    started: usize,
}

impl Pool {
    fn new() -> Self {
        let (jobs, queue) = mpsc::channel();
        Pool {
            jobs,
            queue: Arc::new(std::sync::Mutex::new(queue)),
            started: 0,
        }
    }

    /// Loads at once: the machine's cores plus two (at least 4), so that two
    /// slow `init`s (each stopped after 1 s of CPU) hold back no other load.
    fn size() -> usize {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .saturating_add(2)
            .clamp(4, 16)
    }

    fn run(&mut self, job: Work) {
        if self.started < Self::size() {
            let queue = self.queue.clone();
            let spawned = std::thread::Builder::new()
                .name("lel-load".into())
                .spawn(move || {
                    crate::rt::priority::background();
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break, // the pipeline is gone
                        }
                    }
                });
            match spawned {
                Ok(_) => self.started += 1,
                Err(e) if self.started == 0 => {
                    tracing::error!("cannot start a loader thread: {e}");
                }
                Err(_) => {}
            }
        }
        let _ = self.jobs.send(job);
    }
}

impl Pipeline {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Pipeline {
            tx,
            rx,
            ready: VecDeque::new(),
            next_ticket: 1,
            in_flight: Vec::new(),
            wake: None,
            pool: Pool::new(),
            failures: Arc::default(),
        }
    }
}

impl Control {
    /// Ask for a version. It is read and prepared on a worker; the result
    /// comes out of [`Control::take_loaded`] (or [`Control::load`] waits for
    /// it). A request for a signal whose previous request is still being
    /// prepared waits for it (only the newest waiting request is kept).
    pub fn request(&mut self, req: Request) {
        let rec = match self.signals.get_mut(&req.signal) {
            Some(rec) => rec,
            None => {
                let slot = match req.slot {
                    Some(s) => self
                        .free
                        .iter()
                        .position(|f| *f == s)
                        .map(|i| self.free.remove(i)),
                    None => self.free.pop(),
                };
                let Some(slot) = slot else {
                    let slots = self.settings.slots;
                    self.pipeline.ready.push_back(Loaded {
                        signal: req.signal,
                        path: req.path,
                        noticed: req.noticed,
                        was_playing: false,
                        result: Err(LoadError::NoFreeSlot(slots)),
                    });
                    return;
                };
                self.signals.entry(req.signal.clone()).or_insert(Signal {
                    slot,
                    path: None,
                    playing: None,
                    load: Status::Idle,
                    params: Default::default(),
                })
            }
        };
        if req.path.is_some() {
            rec.path.clone_from(&req.path);
        }
        if let Status::Preparing { queued, .. } = &mut rec.load {
            *queued = Some(req);
            return;
        }
        self.dispatch(req);
    }

    /// Call `wake` (on a worker thread) whenever a load finishes.
    pub fn on_load_finished(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        self.pipeline.wake = Some(Arc::new(wake));
    }

    /// Start preparing `req` on a worker.
    fn dispatch(&mut self, mut req: Request) {
        let rec = self
            .signals
            .get_mut(&req.signal)
            .expect("a requested signal has a record");
        let (current, previous, against) = match (&rec.playing, req.against.take()) {
            (_, Some((id, layout))) => (None, layout, Some(id)),
            _ if req.fresh_state => (None, Layout::default(), None),
            (Some(p), None) => (
                Some((p.raw.clone(), p.hash.clone())),
                p.layouts
                    .iter()
                    .find(|(id, ..)| *id == p.current)
                    .map(|(_, l, ..)| l.clone())
                    .unwrap_or_default(),
                Some(p.current),
            ),
            (None, None) => (None, Layout::default(), None),
        };
        let current = current.filter(|_| !req.always);
        // A new version of a playing signal may sound from a fast build
        // first (not a replay: it loads exactly what the session says), if
        // the signal is light enough that its fast build, about twice as
        // slow, still leaves most of the block.
        let fast = self.settings.fast_tier
            && rec.playing.is_some()
            && req.slot.is_none()
            && self.link.meters.recent(rec.slot) < FAST_BUILD_MAX_SHARE;
        let hand = HandOver {
            fade_in: req.fade_in,
            restart: req.restart,
            against,
        };
        let ticket = self.pipeline.next_ticket;
        self.pipeline.next_ticket += 1;
        rec.load = Status::Preparing {
            ticket,
            queued: None,
        };
        let Request {
            signal,
            path,
            bytes,
            noticed,
            first,
            ..
        } = req;
        self.pipeline.in_flight.push(InFlight {
            ticket,
            path: path.clone().unwrap_or_default(),
            noticed,
            first,
            hand,
        });
        let (loader, tx, wake, failures) = (
            self.loader.clone(),
            self.pipeline.tx.clone(),
            self.pipeline.wake.clone(),
            self.pipeline.failures.clone(),
        );
        let work = move || {
            let job = Job {
                loader: &loader,
                failures: &failures,
                signal: &signal,
                current,
                previous: &previous,
                fast,
            };
            let panicked = || LoadError::Instantiate("the loader panicked".into());
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(path, bytes)))
                    .unwrap_or_else(|_| (None, Err(panicked())));
            // Played from a fast build: the optimised build next, on this
            // worker, its claims placed against the same layout.
            let optimise = match &result.1 {
                Ok(Some((p, binary))) if p.report.fast => Some((p.report.version, binary.clone())),
                _ => None,
            };
            let send = |done: Done| {
                let _ = tx.send(done);
                if let Some(wake) = &wake {
                    wake();
                }
            };
            send(Done {
                signal: signal.clone(),
                ticket,
                raw: result.0,
                result: result.1,
                tier_up: None,
            });
            if let Some((fast_id, binary)) = optimise {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    loader.prepare_optimised(&signal, &binary, &previous, fast_id)
                }))
                .unwrap_or_else(|_| Err(panicked()));
                send(Done {
                    signal,
                    ticket,
                    raw: None,
                    result: result.map(|p| Some((p, binary))),
                    tier_up: Some(fast_id),
                });
            }
        };
        self.pipeline.pool.run(Box::new(work));
    }

    /// Finished requests, handed over to the audio thread. Waits up to
    /// `wait` for the first when none is ready.
    pub fn take_loaded(&mut self, wait: Duration) -> Vec<Loaded> {
        if self.pipeline.ready.is_empty()
            && let Ok(done) = self.pipeline.rx.recv_timeout(wait)
        {
            self.finish(done);
        }
        while let Ok(done) = self.pipeline.rx.try_recv() {
            self.finish(done);
        }
        self.pipeline.ready.drain(..).collect()
    }

    /// Whether a request is being prepared or ready to be handed over.
    pub fn loading(&self) -> bool {
        !self.pipeline.in_flight.is_empty() || !self.pipeline.ready.is_empty()
    }

    /// A worker finished: hand the version over (if the signal still wants
    /// it), record the outcome, and start the request that waited for it.
    fn finish(&mut self, done: Done) {
        let Done {
            signal,
            ticket,
            raw,
            result,
            tier_up,
        } = done;
        if let Some(fast_id) = tier_up {
            self.tier_up(&signal, fast_id, result);
            return;
        }
        let Some(at) = self
            .pipeline
            .in_flight
            .iter()
            .position(|f| f.ticket == ticket)
        else {
            return;
        };
        let InFlight {
            path,
            noticed,
            first,
            hand,
            ..
        } = self.pipeline.in_flight.swap_remove(at);
        let path = (!path.as_os_str().is_empty()).then_some(path);
        let Some(rec) = self.signals.get_mut(&signal) else {
            return; // unloaded meanwhile
        };
        let queued = match std::mem::take(&mut rec.load) {
            Status::Preparing { ticket: t, queued } if t == ticket => queued,
            other => {
                rec.load = other; // unloaded and asked for again meanwhile
                return;
            }
        };
        let was_playing = rec.playing.is_some();
        let result = match result {
            Ok(Some((prepared, binary))) => Ok(LoadOutcome::Loaded(self.hand_over(
                &signal,
                prepared,
                binary,
                raw.unwrap_or_default(),
                noticed,
                !first,
                hand,
            ))),
            Ok(None) => Ok(LoadOutcome::Unchanged),
            Err(e) => Err(e),
        };
        if result.is_err() && !was_playing && queued.is_none() {
            // Never played: give its slot back.
            if let Some(rec) = self.signals.remove(&signal) {
                self.free.push(rec.slot);
            }
        }
        self.pipeline.ready.push_back(Loaded {
            signal,
            path,
            noticed,
            was_playing,
            result,
        });
        if let Some(next) = queued {
            self.dispatch(next);
        }
    }

    /// Wait for the next finished request for `signal`.
    fn wait_for(&mut self, signal: &str) -> Loaded {
        loop {
            if let Some(i) = self.pipeline.ready.iter().position(|l| l.signal == signal) {
                return self.pipeline.ready.remove(i).expect("found above");
            }
            let done = self
                .pipeline
                .rx
                .recv()
                .expect("the pipeline holds a sender itself");
            self.finish(done);
        }
    }

    /// Make a request and wait for its result.
    ///
    /// # Errors
    /// Why the version was rejected; the version playing keeps playing.
    pub fn load_request(&mut self, req: Request) -> Result<LoadOutcome, LoadError> {
        let signal = req.signal.clone();
        self.request(req);
        self.wait_for(&signal).result
    }

    /// Load (or reload) `signal` from binary module bytes and wait for it. On
    /// success the version plays from the next block, carrying state from
    /// the one before.
    ///
    /// # Errors
    /// Why the version was rejected; the version playing keeps playing.
    pub fn load(
        &mut self,
        signal: &str,
        bytes: &[u8],
        path: Option<&std::path::Path>,
    ) -> Result<LoadOutcome, LoadError> {
        self.load_request(Request::bytes(
            signal,
            bytes.to_vec(),
            path.map(|p| p.to_path_buf()),
        ))
    }

    /// Load (or reload) several files at once and wait for all of them.
    /// Each is prepared on a worker of its own and handed to the audio
    /// thread as soon as it is ready, so one slow or hanging `init` holds
    /// back none of the others. Results come in the order of `items`
    /// (signal name, file).
    pub fn load_all(&mut self, items: &[(String, PathBuf)]) -> Vec<Loaded> {
        for (name, path) in items {
            self.request(Request::file(name.clone(), path.clone()));
        }
        items.iter().map(|(name, _)| self.wait_for(name)).collect()
    }

    /// [`Control::load_all`], only the results.
    pub fn load_files(
        &mut self,
        items: &[(String, PathBuf)],
    ) -> Vec<Result<LoadOutcome, LoadError>> {
        self.load_all(items).into_iter().map(|l| l.result).collect()
    }
}

/// A worker's job: read, skip if unchanged, prepare.
struct Job<'a> {
    loader: &'a Loader,
    failures: &'a Failures,
    signal: &'a str,
    /// Hashes of the version playing: of its raw bytes and of its binary.
    current: Option<(Hash, Hash)>,
    previous: &'a Layout,
    /// New code may be built by the fast tier first.
    fast: bool,
}

impl Job<'_> {
    /// Read `path` (unless `bytes` are given), skip bytes that play already
    /// or failed before, parse and prepare. Returns the raw bytes' hash too.
    fn run(
        &self,
        path: Option<PathBuf>,
        bytes: Option<Vec<u8>>,
    ) -> (Option<Hash>, Result<Option<Ready>, LoadError>) {
        let (raw, text) = match (bytes, &path) {
            (Some(b), _) => (b, false),
            (None, Some(p)) => match read_file(p) {
                Ok(b) => (b, is_text(p)),
                Err(e) => return (None, Err(e)),
            },
            (None, None) => {
                return (
                    None,
                    Err(LoadError::Io(std::io::ErrorKind::NotFound.into())),
                );
            }
        };
        let raw_hash = cache::hash(&raw);
        let result = self.prepare(&raw_hash, raw, text);
        if let Err(e) = &result
            && e.is_of_the_bytes()
        {
            self.failures.remember(raw_hash.clone(), e);
        }
        (Some(raw_hash), result)
    }

    fn prepare(
        &self,
        raw_hash: &Hash,
        raw: Vec<u8>,
        text: bool,
    ) -> Result<Option<Ready>, LoadError> {
        if self.current.as_ref().is_some_and(|(r, _)| r == raw_hash) {
            return Ok(None);
        }
        if let Some(e) = self.failures.get(raw_hash) {
            return Err(e);
        }
        let binary = if text {
            contract::to_binary(&raw, true)?
        } else {
            raw
        };
        if self
            .current
            .as_ref()
            .is_some_and(|(_, b)| *b == cache::hash(&binary))
        {
            return Ok(None);
        }
        let prepared = self
            .loader
            .prepare_tier(self.signal, &binary, self.previous, self.fast)?;
        Ok(Some((prepared, binary.into())))
    }
}
