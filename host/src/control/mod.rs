//! The control side of the engine: owns the loader and the non-real-time ends
//! of the mixer's queues, and the one table that knows each signal's status
//! (its slot, the version playing, a version being prepared). Versions come
//! in through the load [`pipeline`]; this module hands them to the audio
//! thread, unloads signals, drops what the audio thread retires, and turns
//! its events into [`Notice`]s. Runs on a control thread (the caller of
//! `render`, `check`, or the live host's control loop), never on the audio
//! thread.

mod mixing;
mod notice;
mod params;
mod pipeline;
mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loader::runtime::Runtime;
use crate::loader::{LoadReport, Loader, LoaderConfig, Prepared};
use crate::rt::guard::Stats;
use crate::rt::layout::Layout;
use crate::rt::log_ring::LogConsumer;
use crate::rt::messages::{Command, Garbage, SlotId};
use crate::rt::mixer::{Mixer, MixerLink};

pub use notice::Notice;
pub use params::ParamInfo;
pub use pipeline::{Loaded, Request};
pub use settings::Settings;

/// What a load did.
#[derive(Clone, Debug)]
pub enum LoadOutcome {
    /// Handed to the audio thread: plays from the next block.
    Loaded(LoadReport),
    /// Same bytes as the version already playing: nothing to do.
    Unchanged,
}

impl LoadOutcome {
    /// The report of a version handed over; `None` when nothing changed.
    pub fn report(self) -> Option<LoadReport> {
        match self {
            LoadOutcome::Loaded(r) => Some(r),
            LoadOutcome::Unchanged => None,
        }
    }
}

/// Everything known about one signal, from its first request until it is
/// unloaded.
struct Signal {
    /// Its slot in the mixer, taken when the signal is first asked for.
    slot: SlotId,
    path: Option<PathBuf>,
    /// The version last handed over, if any.
    playing: Option<Playing>,
    /// Where its next version stands in the load pipeline.
    load: pipeline::Status,
    /// Its parameters by key, with the values the host owns.
    params: params::SignalParams,
}

/// The versions handed to the audio thread.
struct Playing {
    current: u64,
    /// Hash of the binary module of the version last handed over, and of
    /// the raw bytes (text or binary) it was read from.
    hash: String,
    raw: String,
    /// Layouts of recent versions (for rollback), newest last.
    layouts: Vec<(u64, Layout, String, Arc<[u8]>)>,
    /// When the change that led to the last hand-over was noticed, for
    /// latency figures.
    requested: Option<Instant>,
    /// Compile (or cache) time of versions on their way to the audio thread.
    compile_times: Vec<(u64, Duration)>,
    /// The binary module of the version last handed over (a restart with
    /// fresh state starts these same bytes again).
    binary: Arc<[u8]>,
    /// The version playing from a fast build whose optimised build is on
    /// its way.
    fast: Option<FastBuild>,
}

/// A version playing from its fast build, for the tier-up's log line.
#[derive(Clone, Copy)]
struct FastBuild {
    version: u64,
    /// When the change that led to it was noticed.
    noticed: Option<Instant>,
    /// The optimised build's compile time, once it is ready.
    optimised_compile: Option<Duration>,
}

pub struct Control {
    loader: Arc<Loader>,
    link: MixerLink,
    settings: Settings,
    signals: HashMap<String, Signal>,
    /// Who played in each slot last (name, file), kept after unloading so
    /// late events can still be named.
    slot_names: Vec<Option<(String, Option<PathBuf>)>>,
    free: Vec<SlotId>,
    logs: Vec<(Arc<str>, LogConsumer)>,
    /// Polls since the rings in `logs` were last read (see [`Control::poll`]).
    polls_since_logs: u32,
    /// Has the mixer been asked for any block since start? New signals fade
    /// in only once the stream is running.
    running: bool,
    /// Leaked versions and lost events already reported.
    overflows: (u64, u64),
    /// The load pipeline's side of this table.
    pipeline: pipeline::Pipeline,
    /// The next signal-wide parameter id (unique in the engine).
    next_param_id: u32,
    /// Where the run is recorded as a session (`run --session DIR`).
    session: Option<crate::session::Writer>,
    /// Replaying a session: the control side starts nothing by itself (no
    /// restart after a fault); the session says what was started.
    replaying: bool,
    /// Commands for the audio thread that did not fit its queue (nobody
    /// rendered for a while: many versions loaded into a `Renderer` at
    /// once, or a stalled device), sent in order as room frees up.
    unsent: std::collections::VecDeque<Command>,
}

impl Control {
    /// Build an engine: the control side and the mixer for the audio thread.
    ///
    /// # Errors
    /// When the WebAssembly runtime cannot be set up.
    pub fn new(settings: Settings) -> anyhow::Result<(Control, Mixer)> {
        let runtime = Runtime::with_tiers(&settings.limits, settings.fast_tier, settings.tick())?;
        Self::with_runtime(settings, runtime)
    }

    /// [`Control::new`] sharing a runtime (and its compiled-module cache
    /// lives per loader, so only the engine is shared).
    ///
    /// # Errors
    /// Settings that cannot make an engine.
    pub fn with_runtime(
        settings: Settings,
        runtime: Arc<Runtime>,
    ) -> anyhow::Result<(Control, Mixer)> {
        anyhow::ensure!(settings.channels >= 1, "at least one output channel");
        anyhow::ensure!(settings.block >= 1, "a block is at least one frame");
        let engine = runtime.engine.clone();
        let loader = Loader::new(
            runtime,
            LoaderConfig {
                sample_rate: settings.sample_rate,
                max_frames: settings.block,
                init_timeout: settings.init_timeout,
                compile_limit: settings.compile_limit,
                compile_memory: settings.compile_memory,
                limits: settings.limits.clone(),
            },
            settings.cache_dir.clone(),
        );
        let (mixer, link) = Mixer::new(settings.mixer_config(), Some(&engine))
            .map_err(|e| anyhow::anyhow!("cannot start the render threads: {e}"))?;
        let control = Control {
            loader: Arc::new(loader),
            link,
            free: (0..settings.slots).rev().collect(),
            slot_names: vec![None; settings.slots],
            settings,
            signals: HashMap::new(),
            logs: Vec::new(),
            polls_since_logs: 0,
            running: false,
            overflows: (0, 0),
            pipeline: pipeline::Pipeline::new(),
            next_param_id: 0,
            session: None,
            replaying: false,
            unsent: std::collections::VecDeque::new(),
        };
        Ok((control, mixer))
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.link.stats
    }

    /// Per-signal CPU use, by slot (see [`Control::slot_signal`]).
    pub fn meters(&self) -> &Arc<crate::rt::meter::Meters> {
        &self.link.meters
    }

    /// Per-slot and master peak/RMS levels (for the live console).
    pub fn levels(&self) -> &Arc<crate::rt::level::Levels> {
        &self.link.levels
    }

    /// The slot `signal` plays in, if it is playing.
    pub fn slot_of(&self, signal: &str) -> Option<SlotId> {
        self.signals
            .get(signal)
            .filter(|s| s.playing.is_some())
            .map(|s| s.slot)
    }

    /// The file `signal` was loaded from, if any.
    pub fn signal_path(&self, signal: &str) -> Option<PathBuf> {
        self.signals.get(signal).and_then(|s| s.path.clone())
    }

    /// The signal playing in `slot` and its file, if any.
    pub fn slot_signal(&self, slot: SlotId) -> Option<(String, Option<PathBuf>)> {
        self.signals
            .iter()
            .find(|(_, s)| s.slot == slot && s.playing.is_some())
            .map(|(n, s)| (n.clone(), s.path.clone()))
    }

    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    /// Mark the stream as running: from now on new signals fade in.
    pub fn set_running(&mut self) {
        self.running = true;
    }

    /// The names of the signals playing.
    pub fn signals(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .signals
            .iter()
            .filter(|(_, s)| s.playing.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Is `signal` playing (a version of it was handed over)?
    pub fn is_playing(&self, signal: &str) -> bool {
        self.signals
            .get(signal)
            .is_some_and(|s| s.playing.is_some())
    }

    /// Hand a prepared version of `signal` (which holds a slot) to the audio
    /// thread: it plays from the next block.
    #[allow(clippy::too_many_arguments)]
    fn hand_over(
        &mut self,
        signal: &str,
        prepared: Prepared,
        binary: Arc<[u8]>,
        raw: String,
        requested: Option<Instant>,
        may_fade_in: bool,
        hand: pipeline::HandOver,
    ) -> LoadReport {
        let Prepared {
            mut version,
            report,
            log,
        } = prepared;
        let rec = self
            .signals
            .get_mut(signal)
            .expect("a signal being loaded has a record");
        let slot = rec.slot;
        rec.params.adopt(
            &mut version,
            report.version,
            &report.params,
            &mut self.next_param_id,
        );
        let playing = rec.playing.get_or_insert_with(|| Playing {
            current: 0,
            hash: String::new(),
            raw: String::new(),
            layouts: Vec::new(),
            requested: None,
            compile_times: Vec::new(),
            binary: binary.clone(),
            fast: None,
        });
        playing.fast = report.fast.then_some(FastBuild {
            version: report.version,
            noticed: requested,
            optimised_compile: None,
        });
        playing.binary = binary.clone();
        playing.current = report.version;
        playing.requested = requested;
        playing
            .compile_times
            .retain(|(v, _)| *v + 8 > report.version);
        playing.compile_times.push((report.version, report.compile));
        playing.hash = report.hash.clone();
        playing.raw = raw;
        playing.layouts.push((
            report.version,
            report.layout.clone(),
            report.hash.clone(),
            binary.clone(),
        ));
        if playing.layouts.len() > 4 {
            playing.layouts.remove(0);
        }
        self.slot_names[slot] = Some((signal.to_string(), rec.path.clone()));
        self.logs.push((signal.into(), log));
        let fade_in = hand.fade_in.unwrap_or(self.running && may_fade_in);
        if let Some(session) = &mut self.session {
            session.handed(&crate::session::Handed {
                version: report.version,
                slot,
                signal,
                binary: &binary,
                fade_in,
                restart: hand.restart,
                against: hand.against,
            });
        }
        self.send(Command::Load {
            slot,
            version,
            fade_in,
            restart: hand.restart,
        });
        report
    }

    /// The optimised build of `fast_id` (a version playing from its fast
    /// build) is ready: hand it over to take over at the next block, unless
    /// another version plays by now.
    pub(super) fn tier_up(
        &mut self,
        signal: &str,
        fast_id: u64,
        result: Result<Option<pipeline::Ready>, crate::loader::LoadError>,
    ) {
        let Some(rec) = self.signals.get_mut(signal) else {
            return;
        };
        let Some(playing) = rec.playing.as_mut().filter(|p| p.current == fast_id) else {
            return; // replaced meanwhile: the optimised build is not needed
        };
        match result {
            Ok(Some((prepared, _))) => {
                let Prepared {
                    version,
                    report,
                    log,
                } = prepared;
                if let Some(f) = playing.fast.as_mut().filter(|f| f.version == fast_id) {
                    f.optimised_compile = Some(report.compile);
                }
                self.logs.push((signal.into(), log));
                let slot = rec.slot;
                self.send(Command::TierUp { slot, version });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "{signal}: the optimised build failed ({e}); the fast build of version {fast_id} plays on"
            ),
        }
    }

    /// Fade `signal` out and forget it (a version still being prepared is
    /// dropped when it arrives). Returns whether it was playing.
    pub fn unload(&mut self, signal: &str) -> bool {
        let Some(rec) = self.signals.remove(signal) else {
            return false;
        };
        if rec.playing.is_some() {
            self.send(Command::Unload { slot: rec.slot });
            // The slot is reused only once the audio thread reports it empty.
            true
        } else {
            self.free.push(rec.slot);
            false
        }
    }

    /// Drop what the audio thread retired, print guest log lines, and turn
    /// events into notices (also logged with `tracing`).
    pub fn poll(&mut self) -> Vec<Notice> {
        self.send_unsent();
        let mut retired = false;
        while let Ok(g) = self.link.garbage.pop() {
            retired = true;
            match g {
                Garbage::Version(v) => drop(v),
                Garbage::Error(e) => drop(e),
            }
        }
        // The versions' log rings are read when a guest logged (or lost a
        // line), when versions were retired (their rings are then
        // abandoned), and every 64th poll all the same, for a version
        // dropped some other way: not after every block for every signal.
        let runtime = self.loader.runtime();
        self.polls_since_logs += 1;
        if runtime.log_pending.take() || retired || self.polls_since_logs >= 64 {
            self.polls_since_logs = 0;
            let guest_log = &runtime.guest_log;
            self.logs.retain_mut(|(signal, ring)| {
                while let Some(line) = ring.pop() {
                    guest_log.line(signal, line.level, &line.text());
                }
                guest_log.dropped(signal, ring.take_dropped());
                !ring.is_abandoned()
            });
        }
        runtime.guest_log.flush();
        self.report_overflows();
        let mut notices = Vec::new();
        while let Ok(event) = self.link.events.pop() {
            if let Some(session) = &mut self.session {
                session.event(&event);
            }
            if let Some(n) = self.notice(event) {
                notices.push(n);
            }
        }
        let played = self.clock();
        if let Some(session) = &mut self.session {
            session.played(played);
            session.flush();
        }
        notices
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Record everything from now on as a session (see [`crate::session`]).
    pub fn record_session(&mut self, writer: crate::session::Writer) {
        self.session = Some(writer);
    }

    /// Finish the session being recorded: what the audio thread reported
    /// is written, then the end (the clock after the last block).
    ///
    /// # Errors
    /// When the session could not be written completely.
    pub fn finish_session(&mut self) -> anyhow::Result<()> {
        self.poll();
        let end = self.clock();
        let lost = self
            .link
            .stats
            .lost_events
            .load(std::sync::atomic::Ordering::Relaxed);
        match self.session.take() {
            Some(w) => w.finish(end, lost),
            None => Ok(()),
        }
    }

    /// The binary module of the version of `signal` last handed over.
    pub fn playing_binary(&self, signal: &str) -> Option<Arc<[u8]>> {
        self.signals
            .get(signal)
            .and_then(|s| s.playing.as_ref())
            .map(|p| p.binary.clone())
    }

    /// Replay mode: nothing is started but what the caller asks for.
    pub(crate) fn set_replaying(&mut self) {
        self.replaying = true;
    }

    /// Send a command to the audio thread (replay: unloads and forced
    /// faults by slot).
    pub(crate) fn command(&mut self, cmd: Command) -> anyhow::Result<()> {
        self.send(cmd);
        Ok(())
    }

    /// Send `cmd` to the audio thread, after any that wait. The queue is
    /// large; when the audio thread has not drained it (nobody rendered,
    /// or the device stalled), the command waits here, in order, rather
    /// than being dropped or blocking the control side.
    fn send(&mut self, cmd: Command) {
        self.send_unsent();
        if !self.unsent.is_empty() {
            self.unsent.push_back(cmd);
        } else if let Err(rtrb::PushError::Full(cmd)) = self.link.commands.push(cmd) {
            self.unsent.push_back(cmd);
        }
    }

    /// Move waiting commands into the audio thread's queue, as far as they
    /// fit (called before each offline block and at every poll).
    pub(crate) fn send_unsent(&mut self) {
        while let Some(cmd) = self.unsent.pop_front() {
            if let Err(rtrb::PushError::Full(cmd)) = self.link.commands.push(cmd) {
                self.unsent.push_front(cmd);
                break;
            }
        }
    }

    /// Queue a control event by slot (replay). A parameter change also
    /// sets the value in the signal's table (by the id the replayed loads
    /// gave the key, the same as in the recorded run).
    pub(crate) fn control_to_slot(
        &mut self,
        e: crate::rt::messages::ControlEvent,
    ) -> anyhow::Result<()> {
        self.link
            .controls
            .push(e)
            .map_err(|_| anyhow::anyhow!("the control-event queue is full"))?;
        if let crate::rt::messages::ControlKind::Param { id, value } = e.kind
            && let Some(rec) = self.signals.values_mut().find(|s| s.slot == e.slot)
        {
            rec.params.set_by_id(id, value);
        }
        Ok(())
    }

    /// Warn (once per new loss) when the audio thread's queues overflowed.
    fn report_overflows(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let leaked = self.link.stats.leaked.load(Relaxed);
        let lost = self.link.stats.lost_events.load(Relaxed);
        if leaked > self.overflows.0 {
            tracing::warn!(
                "{} retired versions were leaked: the control side did not keep up with the audio thread",
                leaked - self.overflows.0
            );
        }
        if lost > self.overflows.1 {
            tracing::warn!(
                "{} events from the audio thread were lost (queue full)",
                lost - self.overflows.1
            );
        }
        self.overflows = (leaked, lost);
    }
}

impl Drop for Control {
    /// Say what the guest log dropped in its last, unfinished windows.
    fn drop(&mut self) {
        let guest_log = &self.loader.runtime().guest_log;
        for (signal, ring) in &mut self.logs {
            while let Some(line) = ring.pop() {
                guest_log.line(signal, line.level, &line.text());
            }
            guest_log.dropped(signal, ring.take_dropped());
        }
        guest_log.finish();
    }
}
