//! The control side of the engine: owns the loader and the non-real-time ends
//! of the mixer's queues. Loads and unloads signals by name, drops what the
//! audio thread retires, and turns its events into log lines and notices.
//! Runs on a control thread (the caller of `render`, or the live host's
//! loader thread), never on the audio thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract;
use crate::loader::runtime::Runtime;
use crate::loader::{LoadError, LoadReport, Loader, LoaderConfig, trap_text};
use crate::rt::guard::Stats;
use crate::rt::guest::{CallLimits, GrowKind, GuestLimits};
use crate::rt::layout::Layout;
use crate::rt::log_ring::LogConsumer;
use crate::rt::messages::{Command, Event, Fault, Garbage, SlotId};
use crate::rt::mixer::{Mixer, MixerConfig, MixerLink};

/// Everything that shapes an engine.
#[derive(Clone, Debug)]
pub struct Settings {
    pub sample_rate: u32,
    pub channels: usize,
    /// Largest block asked of a guest.
    pub block: u32,
    /// How many signals can play at once.
    pub slots: usize,
    /// Share of the block period of CPU time one `process` call may use
    /// before it is stopped as a runaway (real-time playing).
    pub call_budget: f64,
    /// Offline rendering: no real-time deadline; a `process` call is a
    /// runaway only after using this much CPU time (replaces `call_budget`).
    pub runaway: Option<Duration>,
    pub init_timeout: Duration,
    pub fade: Duration,
    /// Crossfade on swap (zero: instant swap).
    pub xfade: Duration,
    /// A fault within this time after a swap rolls back to the previous version.
    pub rollback: Duration,
    pub limits: GuestLimits,
    pub cache_dir: Option<PathBuf>,
    pub check_alloc: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_rate: 48_000,
            channels: 2,
            block: 128,
            slots: 64,
            call_budget: 0.5,
            runaway: None,
            init_timeout: Duration::from_secs(1),
            fade: Duration::from_millis(10),
            xfade: Duration::ZERO,
            rollback: Duration::from_secs(3),
            limits: GuestLimits::default(),
            cache_dir: crate::loader::cache::default_dir(),
            check_alloc: false,
        }
    }
}

impl Settings {
    fn frames(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.sample_rate as f64).round() as u64
    }

    /// The CPU budget of one `process` call.
    pub fn call_budget_time(&self) -> Duration {
        match self.runaway {
            Some(d) => d,
            None => Duration::from_secs_f64(
                self.block as f64 / self.sample_rate as f64 * self.call_budget,
            ),
        }
    }

    /// The limits of one `process` call: its CPU budget, and a wall-time
    /// last resort far above it (32 block periods and at least 100 ms when
    /// playing; ten times the budget offline).
    pub fn call_limits(&self) -> CallLimits {
        let cpu = self.call_budget_time();
        let wall = match self.runaway {
            Some(d) => d * 10,
            None => Duration::from_secs_f64(32.0 * self.block as f64 / self.sample_rate as f64)
                .max(Duration::from_millis(100))
                .max(cpu * 4),
        };
        CallLimits { cpu, wall }
    }

    fn mixer_config(&self) -> MixerConfig {
        MixerConfig {
            sample_rate: self.sample_rate,
            channels: self.channels,
            block: self.block,
            slots: self.slots,
            call: self.call_limits(),
            fade_frames: self.frames(self.fade).max(1) as u32,
            xfade_frames: self.frames(self.xfade) as u32,
            rollback_frames: self.frames(self.rollback),
            check_alloc: self.check_alloc,
        }
    }
}

/// Something that happened, for the caller (tests, the live host's output).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Started {
        signal: String,
        version: u64,
        clock: u64,
    },
    Swapped {
        signal: String,
        version: u64,
        clock: u64,
        carried: u32,
        /// From the file change to the swap on the audio thread (live only).
        latency: Option<Duration>,
    },
    Unloaded {
        signal: String,
    },
    Faulted {
        signal: String,
        version: u64,
        clock: u64,
        message: String,
    },
    RolledBack {
        signal: String,
        to: u64,
        clock: u64,
    },
    GrowRefused {
        signal: String,
        message: String,
    },
    Slow {
        signal: String,
        micros: u32,
        percent: u32,
    },
}

/// What `load` did.
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

struct SignalRecord {
    slot: SlotId,
    path: Option<PathBuf>,
    /// The version last handed over, and its layout and hash.
    current: u64,
    hash: String,
    /// Layouts of recent versions (for rollback), newest last.
    layouts: Vec<(u64, Layout, String)>,
    /// When the last load was asked for (file change), for latency figures.
    requested: Option<Instant>,
    /// Compile (or cache) time of versions on their way to the audio thread.
    compile_times: Vec<(u64, Duration)>,
}

pub struct Control {
    loader: Arc<Loader>,
    link: MixerLink,
    settings: Settings,
    signals: HashMap<String, SignalRecord>,
    /// Who played in each slot last (name, file), kept after unloading so
    /// late events can still be named.
    slot_names: Vec<Option<(String, Option<PathBuf>)>>,
    free: Vec<SlotId>,
    logs: Vec<(Arc<str>, LogConsumer)>,
    /// Has the mixer been asked for any block since start? New signals fade
    /// in only once the stream is running.
    running: bool,
    /// Leaked versions and lost events already reported.
    overflows: (u64, u64),
}

impl Control {
    /// Build an engine: the control side and the mixer for the audio thread.
    ///
    /// # Errors
    /// When the WebAssembly runtime cannot be set up.
    pub fn new(settings: Settings) -> anyhow::Result<(Control, Mixer)> {
        let runtime = Runtime::with_limits(&settings.limits)?;
        Self::with_runtime(settings, runtime)
    }

    pub fn with_runtime(
        settings: Settings,
        runtime: Arc<Runtime>,
    ) -> anyhow::Result<(Control, Mixer)> {
        anyhow::ensure!(settings.channels >= 1, "at least one output channel");
        anyhow::ensure!(settings.block >= 1, "a block is at least one frame");
        let loader = Loader::new(
            runtime,
            LoaderConfig {
                sample_rate: settings.sample_rate,
                max_frames: settings.block,
                init_timeout: settings.init_timeout,
                limits: settings.limits.clone(),
            },
            settings.cache_dir.clone(),
        );
        let (mixer, link) = Mixer::new(settings.mixer_config());
        let control = Control {
            loader: Arc::new(loader),
            link,
            free: (0..settings.slots).rev().collect(),
            slot_names: vec![None; settings.slots],
            settings,
            signals: HashMap::new(),
            logs: Vec::new(),
            running: false,
            overflows: (0, 0),
        };
        Ok((control, mixer))
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.link.stats
    }

    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    /// Warn (once per new loss) when the audio thread's queues overflowed.
    fn report_overflows(&mut self) {
        let leaked = self
            .link
            .stats
            .leaked
            .load(std::sync::atomic::Ordering::Relaxed);
        let lost = self
            .link
            .stats
            .lost_events
            .load(std::sync::atomic::Ordering::Relaxed);
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

    /// Mark the stream as running: from now on new signals fade in.
    pub fn set_running(&mut self) {
        self.running = true;
    }

    /// The names of the signals loaded.
    pub fn signals(&self) -> Vec<String> {
        let mut v: Vec<String> = self.signals.keys().cloned().collect();
        v.sort();
        v
    }

    /// Load (or reload) `signal` from binary module bytes. On success the
    /// version plays from the next block, carrying state from the one before.
    ///
    /// # Errors
    /// Why the version was rejected; the version playing keeps playing.
    pub fn load(
        &mut self,
        signal: &str,
        bytes: &[u8],
        path: Option<&Path>,
    ) -> Result<LoadOutcome, LoadError> {
        let Some(previous) = self.previous_layout(signal, bytes) else {
            return Ok(LoadOutcome::Unchanged);
        };
        if !self.signals.contains_key(signal) && self.free.is_empty() {
            return Err(LoadError::NoFreeSlot(self.settings.slots));
        }
        let prepared = self.loader.prepare(signal, bytes, &previous)?;
        Ok(LoadOutcome::Loaded(self.submit(signal, prepared, path)))
    }

    /// Load (or reload) several files at once. Each is prepared on a thread
    /// of its own and handed to the audio thread as soon as it is ready, so
    /// one slow or hanging `init` holds back none of the others. Results come
    /// in the order of `items` (signal name, file).
    pub fn load_files(
        &mut self,
        items: &[(String, PathBuf)],
    ) -> Vec<Result<LoadOutcome, LoadError>> {
        let mut results: Vec<Option<Result<LoadOutcome, LoadError>>> =
            items.iter().map(|_| None).collect();
        self.load_files_with(items, |i, r| results[i] = Some(r));
        results
            .into_iter()
            .map(|r| r.expect("every item reports"))
            .collect()
    }

    /// [`Control::load_files`], reporting each result (with the item's index)
    /// the moment it is known.
    pub fn load_files_with(
        &mut self,
        items: &[(String, PathBuf)],
        mut report: impl FnMut(usize, Result<LoadOutcome, LoadError>),
    ) {
        // Read and hash first: unchanged content needs no thread.
        let mut jobs = Vec::new();
        for (i, (name, path)) in items.iter().enumerate() {
            let bytes = match read_module(path) {
                Ok(b) => b,
                Err(e) => {
                    report(i, Err(e));
                    continue;
                }
            };
            let Some(previous) = self.previous_layout(name, &bytes) else {
                report(i, Ok(LoadOutcome::Unchanged));
                continue;
            };
            jobs.push((i, bytes, previous));
        }
        let loader = self.loader.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for (i, bytes, previous) in jobs {
                let (loader, tx, name) = (&loader, tx.clone(), &items[i].0);
                scope.spawn(move || {
                    let _ = tx.send((i, loader.prepare(name, &bytes, &previous)));
                });
            }
            drop(tx);
            for (i, prepared) in rx {
                let (name, path) = &items[i];
                let result = prepared
                    .and_then(|p| self.hand_over(name, p, Some(path)))
                    .map(LoadOutcome::Loaded);
                report(i, result);
            }
        });
    }

    /// The layout a new version of `signal` claims against: that of the
    /// version last handed over (empty for a new signal). `None` when `bytes`
    /// are that version's own: nothing to load.
    pub fn previous_layout(&self, signal: &str, bytes: &[u8]) -> Option<Layout> {
        let Some(rec) = self.signals.get(signal) else {
            return Some(Layout::default());
        };
        if rec.hash == crate::loader::cache::hash(bytes) {
            return None;
        }
        Some(
            rec.layouts
                .iter()
                .find(|(id, _, _)| *id == rec.current)
                .map(|(_, l, _)| l.clone())
                .unwrap_or_default(),
        )
    }

    /// Hand a version prepared against [`Control::previous_layout`] to the
    /// audio thread, if a slot is free for it.
    ///
    /// # Errors
    /// [`LoadError::NoFreeSlot`] when every slot plays another signal.
    pub fn hand_over(
        &mut self,
        signal: &str,
        prepared: crate::loader::Prepared,
        path: Option<&Path>,
    ) -> Result<LoadReport, LoadError> {
        if !self.signals.contains_key(signal) && self.free.is_empty() {
            return Err(LoadError::NoFreeSlot(self.settings.slots));
        }
        Ok(self.submit(signal, prepared, path))
    }

    /// Hand a prepared version to the audio thread.
    fn submit(
        &mut self,
        signal: &str,
        prepared: crate::loader::Prepared,
        path: Option<&Path>,
    ) -> LoadReport {
        let report = prepared.report;
        let slot = match self.signals.get(signal) {
            Some(rec) => rec.slot,
            None => self
                .free
                .pop()
                .expect("a free slot (checked by the caller)"),
        };
        let rec = self
            .signals
            .entry(signal.to_string())
            .or_insert_with(|| SignalRecord {
                slot,
                path: None,
                current: 0,
                hash: String::new(),
                layouts: Vec::new(),
                requested: None,
                compile_times: Vec::new(),
            });
        if let Some(p) = path {
            rec.path = Some(p.to_path_buf());
        }
        self.slot_names[slot] = Some((signal.to_string(), rec.path.clone()));
        rec.current = report.version;
        rec.compile_times.retain(|(v, _)| *v + 8 > report.version);
        rec.compile_times.push((report.version, report.compile));
        rec.hash = report.hash.clone();
        rec.layouts
            .push((report.version, report.layout.clone(), report.hash.clone()));
        if rec.layouts.len() > 4 {
            rec.layouts.remove(0);
        }
        self.logs.push((signal.into(), prepared.log));
        let mut cmd = Command::Load {
            slot,
            version: prepared.version,
            fade_in: self.running,
        };
        // The queue is large; if the audio thread is not draining it (a
        // stalled device), wait rather than drop a version.
        loop {
            match self.link.commands.push(cmd) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(c)) => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        report
    }

    /// Note when the file behind `signal` changed, for swap latency figures.
    pub fn mark_requested(&mut self, signal: &str, at: Instant) {
        if let Some(rec) = self.signals.get_mut(signal) {
            rec.requested = Some(at);
        }
    }

    /// Fade `signal` out and forget it. Returns whether it was loaded.
    pub fn unload(&mut self, signal: &str) -> bool {
        let Some(rec) = self.signals.remove(signal) else {
            return false;
        };
        let _ = self.link.commands.push(Command::Unload { slot: rec.slot });
        // The slot is reused only once the audio thread reports it empty.
        true
    }

    /// Drop what the audio thread retired, print guest log lines, and turn
    /// events into notices (also logged with `tracing`).
    pub fn poll(&mut self) -> Vec<Notice> {
        while let Ok(g) = self.link.garbage.pop() {
            match g {
                Garbage::Version(v) => drop(v),
                Garbage::Error(e) => drop(e),
            }
        }
        let guest_log = &self.loader.runtime().guest_log;
        self.logs.retain_mut(|(signal, ring)| {
            while let Some(line) = ring.pop() {
                guest_log.line(signal, line.level, &line.text());
            }
            guest_log.dropped(signal, ring.take_dropped());
            !ring.is_abandoned()
        });
        guest_log.flush();
        self.report_overflows();
        let mut notices = Vec::new();
        while let Ok(event) = self.link.events.pop() {
            if let Some(n) = self.notice(event) {
                notices.push(n);
            }
        }
        notices
    }

    fn name_of(&self, slot: SlotId) -> Option<(&String, &SignalRecord)> {
        self.signals.iter().find(|(_, r)| r.slot == slot)
    }

    /// The signal's name and file (or name again) for messages.
    fn label(&self, slot: SlotId) -> (String, String) {
        match self.slot_names.get(slot).cloned().flatten() {
            Some((name, path)) => {
                let file = path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| name.clone());
                (name, file)
            }
            None => (format!("slot {slot}"), String::new()),
        }
    }

    fn notice(&mut self, event: Event) -> Option<Notice> {
        match event {
            Event::Started {
                slot,
                version,
                clock,
            } => {
                let (signal, file) = self.label(slot);
                tracing::info!("{signal}: playing ({file})");
                Some(Notice::Started {
                    signal,
                    version,
                    clock,
                })
            }
            Event::Swapped {
                slot,
                version,
                clock,
                carried,
                at,
                ..
            } => {
                let (signal, _) = self.label(slot);
                let rec = self.signals.get_mut(&signal);
                let (latency, compile) = match rec {
                    Some(r) => (
                        r.requested.take().map(|t| at.saturating_duration_since(t)),
                        r.compile_times
                            .iter()
                            .find(|(v, _)| *v == version)
                            .map(|(_, d)| *d),
                    ),
                    None => (None, None),
                };
                let compiled = compile
                    .map(|d| format!(" (compiled in {:.1} ms)", d.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                let after = latency
                    .map(|l| format!(", {:.1} ms after the file changed", l.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                let blocks = if carried == 1 { "block" } else { "blocks" };
                tracing::info!(
                    "{signal}: swapped in version {version}{compiled}, {carried} state {blocks} carried{after}"
                );
                Some(Notice::Swapped {
                    signal,
                    version,
                    clock,
                    carried,
                    latency,
                })
            }
            Event::Unloaded { slot, .. } => {
                // Free the slot unless a signal (re)took it meanwhile.
                if self.name_of(slot).is_none() && !self.free.contains(&slot) {
                    self.free.push(slot);
                }
                let (signal, _) = self.label(slot);
                tracing::info!("{signal}: unloaded");
                Some(Notice::Unloaded { signal })
            }
            Event::Faulted {
                slot,
                version,
                fault,
                clock,
            } => {
                let (signal, file) = self.label(slot);
                let message = format!("{signal}: {} ({file}); muted", self.describe(fault));
                tracing::error!("{message}");
                Some(Notice::Faulted {
                    signal,
                    version,
                    clock,
                    message,
                })
            }
            Event::RolledBack {
                slot, to, clock, ..
            } => {
                let (signal, _) = self.label(slot);
                if let Some(rec) = self.signals.get_mut(&signal)
                    && let Some((_, _, hash)) = rec.layouts.iter().find(|(id, _, _)| *id == to)
                {
                    rec.current = to;
                    rec.hash = hash.clone();
                }
                tracing::warn!(
                    "{signal}: rolled back to the last good version ({to}) with its state"
                );
                Some(Notice::RolledBack { signal, to, clock })
            }
            Event::GrowRefused { slot, kind, .. } => {
                let (signal, file) = self.label(slot);
                let limits = &self.settings.limits;
                let message = match kind {
                    GrowKind::Memory => format!(
                        "{signal}: a memory grow was refused: the module is over its {} MiB memory limit ({file})",
                        limits.max_memory_bytes >> 20
                    ),
                    GrowKind::Table => format!(
                        "{signal}: a table grow was refused: the module is over its {}-element table limit ({file})",
                        limits.max_table_elements
                    ),
                };
                tracing::warn!("{message}");
                Some(Notice::GrowRefused { signal, message })
            }
            Event::Slow {
                slot,
                micros,
                percent,
                ..
            } => {
                let (signal, _) = self.label(slot);
                tracing::warn!(
                    "{signal}: process took {micros} us, {percent}% of the block period"
                );
                Some(Notice::Slow {
                    signal,
                    micros,
                    percent,
                })
            }
        }
    }

    fn describe(&self, fault: Fault) -> String {
        match fault {
            Fault::Timeout if self.settings.runaway.is_some() => format!(
                "process used {:.1} s of CPU time in one call without returning (runaway loop?)",
                self.settings.call_budget_time().as_secs_f64()
            ),
            Fault::Timeout => format!(
                "process exceeded its {:.2} ms budget (runaway loop?)",
                self.settings.call_budget_time().as_secs_f64() * 1e3
            ),
            Fault::Starved => format!(
                "process did not return within {:.0} ms although it had not used its {:.2} ms CPU budget: the machine is too busy to play in real time",
                self.settings.call_limits().wall.as_secs_f64() * 1e3,
                self.settings.call_budget_time().as_secs_f64() * 1e3
            ),
            Fault::Trap(t) => format!("trap: {} in process", trap_text(t)),
            Fault::Failed => "process failed".to_string(),
            Fault::BadPointer { ptr, bytes, memory } => format!(
                "process returned samples at {ptr:#x}..{:#x}, outside its {memory}-byte memory",
                ptr as u64 + bytes as u64
            ),
            Fault::NonFinite => {
                "process produced a non-finite sample (NaN or infinity)".to_string()
            }
            Fault::TooLoud { peak } => format!(
                "output stayed above +24 dBFS for more than a block (peak {:+.1} dBFS)",
                20.0 * peak.log10()
            ),
        }
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

/// A signal's name: its file stem.
pub fn signal_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Read a `.wasm` or `.wat` file into module bytes.
///
/// # Errors
/// When the file cannot be read or is not a module.
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let meta = std::fs::metadata(path)?;
    if meta.len() as usize > contract::MAX_MODULE_BYTES {
        return Err(contract::ContractError::TooLarge {
            size: meta.len() as usize,
            max: contract::MAX_MODULE_BYTES,
        }
        .into());
    }
    let bytes = std::fs::read(path)?;
    let is_text = path.extension().is_some_and(|e| e == "wat");
    Ok(contract::to_binary(&bytes, is_text)?)
}

/// Expand files and folders into module files (folders: every `.wasm` and
/// `.wat` directly inside, sorted).
///
/// # Errors
/// A path that does not exist, a file with another extension, or two files
/// that would give the same signal name.
pub fn collect_modules(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: cannot read the folder: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_module_file(f))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            anyhow::ensure!(
                is_module_file(p),
                "{}: not a module file (expected a `.wasm` or `.wat` file, or a folder of them)",
                p.display()
            );
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
    }
    let mut seen: HashMap<String, &PathBuf> = HashMap::new();
    for p in &out {
        if let Some(first) = seen.insert(signal_name(p), p) {
            anyhow::bail!(
                "{} and {} would both be the signal `{}`: rename one",
                first.display(),
                p.display(),
                signal_name(p)
            );
        }
    }
    Ok(out)
}

/// Paths for a message: `a.wat, b/`.
pub fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `.wasm` or `.wat` file.
pub fn is_module_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm" || e == "wat")
}
