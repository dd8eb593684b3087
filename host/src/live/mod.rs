//! `lel-host run`: the live host. Opens one output (a cpal stream, or the
//! silent clock when there is no usable device), then runs the control loop
//! on this thread: file changes from the [`watcher`] settle into requests
//! to the load pipeline (which reads, compiles, instantiates and `init`s on
//! its workers, off the audio thread and off this one), finished versions are
//! handed to the audio thread through the engine's wait-free queue, removals
//! fade signals out, retired versions are dropped here, events become log
//! lines. OSC packets and MIDI messages (`--osc`, `--midi`: their own
//! threads) wake this loop and are applied here, through the control queue.

pub mod console;
pub mod load_watch;
pub mod output;
pub mod recorder;
pub mod watcher;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::control::{Control, Loaded, Notice, Request, Settings};
use crate::files::{collect_modules, show_paths, signal_name};
use crate::rt::callback::{AudioCallback, WarmUp};
use output::OutputRequest;
use watcher::{Change, Due, Settler, WatchSet};

/// What wakes the control loop.
enum Msg {
    Change(Change),
    /// The load pipeline finished a request.
    LoadFinished,
    /// An OSC packet's requests.
    Osc(crate::input::osc::Incoming),
    /// A MIDI message from the MIDI input.
    Midi(crate::input::Play),
}

/// Everything `run` needs, validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub paths: Vec<PathBuf>,
    pub output: OutputRequest,
    /// The sample rate / channel count were not given: if the device cannot
    /// play the requested ones, use its own.
    pub adapt_rate: bool,
    pub adapt_channels: bool,
    pub settings: Settings,
    pub record: Option<PathBuf>,
    /// Record the performance as a session in this folder.
    pub session: Option<PathBuf>,
    pub seconds: Option<f64>,
    /// Print a summary (swap latencies, late blocks, audio-thread
    /// allocations) at the end.
    pub stats: bool,
    /// After a sustained overload, mute the most expensive signal.
    pub shed: bool,
    /// Show the full-screen live console (on a terminal) instead of log lines.
    pub console: bool,
    /// Listen for OSC on this address.
    pub osc: Option<std::net::SocketAddr>,
    /// Play MIDI from this source (name or number).
    pub midi: Option<String>,
    pub midi_map: crate::input::MidiMap,
}

/// What a run saw, for `--stats` and tests.
#[derive(Debug, Default)]
pub struct Summary {
    pub swap_latencies: Vec<Duration>,
    /// From the file change to the optimised build taking over from a fast
    /// build.
    pub tier_latencies: Vec<Duration>,
    pub late_callbacks: u64,
    /// Audio time lost to late blocks.
    pub lost: Duration,
    /// Each signal's CPU use (share of the block period).
    pub cpu: Vec<load_watch::SignalCpu>,
    pub audio_thread_allocations: u64,
    pub fault_path_allocations: u64,
    pub recorded_samples: u64,
    /// Threads rendering signals, and the blocks more than one of them shared.
    pub render_threads: usize,
    pub shared_blocks: u64,
}

/// Run until `--seconds` pass or Ctrl-C.
///
/// # Errors
/// When nothing can be watched or played at all.
pub fn run(mut opts: RunOptions) -> anyhow::Result<bool> {
    let watch = WatchSet::new(&opts.paths)?;
    // The console takes over the terminal (and the log) from here on.
    let console = if opts.console {
        Some(console::Console::start()?)
    } else {
        None
    };
    adapt_to_device(&mut opts);
    // Watch before listing the folders, so that no file added meanwhile is
    // missed.
    let (tx, rx) = mpsc::channel::<Msg>();
    let _watcher = {
        let tx = tx.clone();
        watcher::start(&watch, move |c| {
            let _ = tx.send(Msg::Change(c));
        })?
    };
    let files = collect_modules(&opts.paths)?;
    let (control, mixer, first) = start_engine(&opts, &files, tx.clone())?;
    let (recorder, ring) = match &opts.record {
        Some(p) => {
            let channels = opts.settings.channels as u16;
            let (r, ring) =
                recorder::Recorder::start(p.clone(), channels, opts.settings.sample_rate, 10)?;
            (Some(r), Some(ring))
        }
        None => (None, None),
    };
    let warm_up = WarmUp::new(&control.loader().runtime().engine).ok();
    let callback = AudioCallback::new(mixer, control.stats().clone(), ring, warm_up);
    let (err_tx, err_rx) = mpsc::channel();
    let buffer = opts.output.buffer.unwrap_or(opts.settings.block);
    let output = open_output(&opts.output, callback, &err_tx, buffer)?;
    // The run's time (for `--seconds` and `--stats`) is the stream's: played
    // time plus lost time add up to it.
    let started = Instant::now();
    let mut live = Live {
        control,
        output: Some(output),
        request: opts.output.clone(),
        buffer,
        err_tx,
        err_rx,
        settler: Settler::default(),
        summary: Summary::default(),
        load: load_watch::LoadWatch::new(opts.shed),
        first,
        all_ok: true,
        console,
        quit: false,
        osc: None,
        midi_map: opts.midi_map.clone(),
        midi_errors: crate::input::LogLimit::new("MIDI"),
    };
    live.playing(&opts);
    let (osc, midi) = start_inputs(&opts, tx)?;
    live.osc = osc;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Only the first handler can be installed; tests run `run` once per process.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let deadline = opts.seconds.map(|s| started + Duration::from_secs_f64(s));
    while !stop.load(Ordering::Relaxed) && !live.quit && deadline.is_none_or(|d| Instant::now() < d)
    {
        live.step(&rx, deadline)?;
    }
    // No more OSC or MIDI from here on.
    drop(midi);
    live.finish(&opts, recorder, started)
}

/// The engine, with the first versions asked for: all at once, each
/// prepared on its own worker. The stream starts without waiting for any of
/// them; each joins in the first block after it is ready (from silence, as
/// at the start), so a slow `init` or a big module delays no one. Returns
/// the names of those first versions too.
fn start_engine(
    opts: &RunOptions,
    files: &[PathBuf],
    tx: mpsc::Sender<Msg>,
) -> anyhow::Result<(Control, crate::rt::mixer::Mixer, HashSet<String>)> {
    let (mut control, mixer) = Control::new(opts.settings.clone())?;
    if let Some(dir) = &opts.session {
        control.record_session(crate::session::Writer::create(dir, &opts.settings)?);
    }
    // Wake the control loop whenever a load finishes, from the first
    // versions on.
    control.on_load_finished(move || {
        let _ = tx.send(Msg::LoadFinished);
    });
    let mut first = HashSet::new();
    for f in files {
        first.insert(signal_name(f));
        control.request(Request::file(signal_name(f), f.clone()).first_version());
    }
    Ok((control, mixer, first))
}

/// OSC (`--osc`) and MIDI (`--midi`) input, each on its own thread, waking
/// the control loop through `tx`. A MIDI source that cannot be opened is
/// one warning; the music plays on.
fn start_inputs(
    opts: &RunOptions,
    tx: mpsc::Sender<Msg>,
) -> anyhow::Result<(
    Option<crate::input::osc::OscServer>,
    Option<crate::input::midi::MidiIn>,
)> {
    let osc = match opts.osc {
        Some(addr) => {
            let tx = tx.clone();
            let server = crate::input::osc::OscServer::start(addr, move |inc| {
                let _ = tx.send(Msg::Osc(inc));
            })?;
            tracing::info!("listening for OSC on {}", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let midi = opts.midi.as_deref().and_then(|port| {
        match crate::input::midi::MidiIn::open(port, move |p| {
            let _ = tx.send(Msg::Midi(p));
        }) {
            Ok(m) => {
                tracing::info!("playing MIDI from {}", m.port);
                Some(m)
            }
            Err(e) => {
                tracing::warn!("--midi: {e:#}; playing on without MIDI input");
                None
            }
        }
    });
    Ok((osc, midi))
}

/// Without a rate or channel count asked for, play at the device's own when
/// it cannot play the defaults.
fn adapt_to_device(opts: &mut RunOptions) {
    if opts.output.device.as_deref() != Some("none")
        && let Some((rate, channels)) =
            output::fit(&opts.output, opts.adapt_rate, opts.adapt_channels)
        && (rate, channels) != (opts.output.sample_rate, opts.output.channels)
    {
        tracing::info!(
            "the device cannot play {} Hz, {} channels: using its {rate} Hz, {channels} channels",
            opts.output.sample_rate,
            opts.output.channels
        );
        opts.output.sample_rate = rate;
        opts.output.channels = channels;
        opts.settings.sample_rate = rate;
        opts.settings.channels = channels as usize;
    }
}

/// The device asked for, or the silent clock (`--device none`, or when no
/// device can play).
fn open_output(
    req: &OutputRequest,
    callback: AudioCallback,
    errors: &mpsc::Sender<output::DeviceError>,
    buffer: u32,
) -> anyhow::Result<output::Output> {
    if req.device.as_deref() == Some("none") {
        return Ok(output::start_silent(callback, buffer)?);
    }
    match output::start_device(req, callback, errors.clone()) {
        Ok(o) => Ok(o),
        Err(failure) => {
            let output::StartFailure { callback, error } = *failure;
            tracing::warn!(
                "no usable output device ({error:#}); playing on a silent real-time clock"
            );
            Ok(output::start_silent(callback, buffer)?)
        }
    }
}

/// The control loop's state: the engine's control side, the output, and
/// the settle logic deciding when files are loaded.
struct Live {
    /// First versions still being prepared, and whether all that finished
    /// loaded (the exit status).
    first: HashSet<String>,
    all_ok: bool,
    control: Control,
    /// Always there, except while a failed device is being reopened.
    output: Option<output::Output>,
    request: OutputRequest,
    buffer: u32,
    err_tx: mpsc::Sender<output::DeviceError>,
    err_rx: mpsc::Receiver<output::DeviceError>,
    settler: Settler,
    summary: Summary,
    load: load_watch::LoadWatch,
    console: Option<console::Console>,
    /// The console's `q`.
    quit: bool,
    osc: Option<crate::input::osc::OscServer>,
    midi_map: crate::input::MidiMap,
    midi_errors: crate::input::LogLimit,
}

impl Live {
    /// The stream plays: say so, and show the console's header.
    fn playing(&mut self, opts: &RunOptions) {
        let describe = self
            .output
            .as_ref()
            .map(|o| o.describe())
            .unwrap_or_default();
        tracing::info!(
            "playing on {} at {} Hz, {} channels; watching {}",
            describe,
            opts.settings.sample_rate,
            opts.settings.channels,
            show_paths(&opts.paths)
        );
        self.control.set_running();
        if let Some(c) = &mut self.console {
            c.set_header(console::Header {
                device: describe,
                sample_rate: opts.settings.sample_rate,
                channels: opts.settings.channels,
                block: self.buffer,
                threads: opts.settings.render_threads(),
                fade: opts.settings.fade,
                xfade: opts.settings.xfade,
            });
        }
    }

    /// The end of the run: stop the inputs, the console and the stream,
    /// finish the session and the recording, and print `--stats`. Returns
    /// whether every first version loaded.
    fn finish(
        self,
        opts: &RunOptions,
        recorder: Option<recorder::Recorder>,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let Live {
            mut control,
            output,
            mut summary,
            mut load,
            all_ok,
            console,
            osc,
            ..
        } = self;
        drop(osc);
        // The terminal and the log go back to normal before the last lines.
        drop(console);
        let callback = output.and_then(output::Output::stop);
        control.poll();
        let session = control.finish_session();
        if let Some(r) = recorder {
            let path = r.path.clone();
            summary.recorded_samples = r.finish()?;
            tracing::info!(
                "recorded {:.2} s to {}",
                summary.recorded_samples as f64
                    / opts.settings.channels as f64
                    / opts.settings.sample_rate as f64,
                path.display()
            );
        }
        let stats = control.stats();
        summary.late_callbacks = stats.late_callbacks.load(Ordering::Relaxed);
        summary.lost = Duration::from_nanos(stats.lost_nanos.load(Ordering::Relaxed));
        summary.audio_thread_allocations = stats.violations.load(Ordering::Relaxed);
        summary.fault_path_allocations = stats.fault_allocations.load(Ordering::Relaxed);
        summary.render_threads = opts.settings.render_threads();
        summary.shared_blocks = stats.shared_blocks.load(Ordering::Relaxed);
        if let Some(cb) = callback
            && cb.record_overruns > 0
        {
            tracing::warn!(
                "the recording lost {} samples (the disk was too slow)",
                cb.record_overruns
            );
        }
        summary.cpu = load.finish(&control);
        if opts.stats {
            println!("{}", format_summary(&summary, started.elapsed()));
        }
        session?;
        Ok(all_ok)
    }

    /// One turn of the control loop: wait (at most 20 ms, less when a file
    /// or the end is due), then handle what came in.
    fn step(&mut self, rx: &mpsc::Receiver<Msg>, deadline: Option<Instant>) -> anyhow::Result<()> {
        let now = Instant::now();
        let wait = [self.settler.next_deadline(), deadline]
            .into_iter()
            .flatten()
            .map(|d| d.saturating_duration_since(now))
            .fold(Duration::from_millis(20), Duration::min);
        let msgs: Vec<Msg> = rx
            .recv_timeout(wait)
            .into_iter()
            .chain(rx.try_iter())
            .collect();
        for m in msgs {
            match m {
                Msg::Change(Change::Touched {
                    path,
                    at,
                    renamed: true,
                    ..
                }) => self.settler.renamed(path, at),
                Msg::Change(Change::Touched {
                    path, at, complete, ..
                }) => self.settler.touch(path, at, complete),
                Msg::Change(Change::Error(msg)) => tracing::warn!("{msg}"),
                Msg::LoadFinished => {}
                Msg::Osc(inc) => {
                    use crate::input::Target as _;
                    let at = self.control.now();
                    if let Some(osc) = &mut self.osc {
                        osc.answer(&mut self.control, &mut self.midi_map, &inc, at);
                    }
                }
                Msg::Midi(play) => {
                    use crate::input::Target as _;
                    let at = self.control.now();
                    let cmd = crate::input::Command::Midi(play);
                    if let Err(e) =
                        crate::input::apply(&mut self.control, &mut self.midi_map, &cmd, at)
                    {
                        self.midi_errors.warn(&format!("{e:#}"));
                    }
                }
            }
        }
        for loaded in self.control.take_loaded(Duration::ZERO) {
            self.finished(loaded);
        }
        for due in self.settler.due(Instant::now()) {
            match due {
                Due::Load { path, first } => {
                    if let Some(c) = &mut self.console {
                        c.requested(&signal_name(&path), &path);
                    }
                    self.control
                        .request(Request::file(signal_name(&path), path).noticed_at(first))
                }
                Due::Remove { path } => {
                    let name = signal_name(&path);
                    if self.control.unload(&name) {
                        tracing::info!("{name}: {} was removed; fading out", path.display());
                    }
                }
            }
        }
        self.device_errors()?;
        for n in self.control.poll() {
            if let Some(c) = &mut self.console {
                c.notice(&n, &self.control);
            }
            match n {
                Notice::Swapped {
                    latency: Some(l), ..
                } => self.summary.swap_latencies.push(l),
                Notice::TieredUp {
                    latency: Some(l), ..
                } => self.summary.tier_latencies.push(l),
                _ => {}
            }
        }
        self.load.poll(&mut self.control);
        if let Some(c) = &mut self.console {
            self.quit = c.tick(&mut self.control, &self.load)?;
        }
        Ok(())
    }

    /// A load finished: report it, or have it tried again when a file still
    /// being written could explain the failure.
    fn finished(&mut self, loaded: Loaded) {
        if let Some(c) = &mut self.console
            && (self.first.contains(&loaded.signal) || loaded.path.is_none())
        {
            c.loaded(&loaded);
        }
        if self.first.remove(&loaded.signal) {
            // A first version: reported at once (no retry: it was on disk
            // before the run started, not being written).
            self.all_ok &= loaded.result.is_ok();
            return loaded.log();
        }
        let Some(path) = loaded.path.clone() else {
            return loaded.log();
        };
        let report = match &loaded.result {
            Err(e) if e.may_be_partial_write() => {
                let now = Instant::now();
                self.settler
                    .failed(&path, loaded.noticed.unwrap_or(now), now)
            }
            _ => {
                self.settler.loaded(&path);
                true
            }
        };
        if report {
            loaded.log();
            if let Some(c) = &mut self.console {
                c.loaded(&loaded);
            }
        }
    }

    /// A failed device is reopened (or replaced by the silent clock).
    fn device_errors(&mut self) -> anyhow::Result<()> {
        let errors: Vec<output::DeviceError> = self.err_rx.try_iter().collect();
        if let Some(fatal) = errors.iter().find(|e| e.is_fatal()) {
            tracing::warn!("audio device failed: {}; reopening it", fatal.message);
            let dead = self.output.take().expect("an output while running");
            self.output = Some(reopen(dead, &self.request, &self.err_tx, self.buffer)?);
            self.err_rx.try_iter().for_each(drop);
        } else if let Some(e) = errors.first() {
            tracing::debug!("audio device: {}", e.message);
        }
        Ok(())
    }
}

/// The device failed: get the engine back from the dead stream (every signal
/// and its state live on in it), try the device again a few times, and fall
/// back to the silent clock.
fn reopen(
    dead: output::Output,
    req: &OutputRequest,
    errors: &mpsc::Sender<output::DeviceError>,
    buffer: u32,
) -> anyhow::Result<output::Output> {
    let mut callback = dead
        .stop()
        .ok_or_else(|| anyhow::anyhow!("the audio engine was lost with the device"))?;
    let mut last = None;
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        match output::start_device(req, callback, errors.clone()) {
            Ok(o) => {
                tracing::info!("playing on {} again", o.describe());
                return Ok(o);
            }
            Err(failure) => {
                callback = failure.callback;
                last = Some(failure.error);
            }
        }
    }
    let why = last.map(|e| format!("{e:#}")).unwrap_or_default();
    tracing::warn!(
        "cannot reopen the audio device ({why}); continuing on a silent real-time clock"
    );
    Ok(output::start_silent(callback, buffer)?)
}

/// One line: swaps and their latency, late blocks and lost audio time,
/// audio-thread allocations, each signal's CPU use.
pub fn format_summary(s: &Summary, ran: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let spread = |l: &[Duration]| {
        let mut l = l.to_vec();
        l.sort();
        match (l.first(), l.get(l.len() / 2), l.last()) {
            (Some(a), Some(m), Some(b)) => Some(format!(
                "min {:.1} ms, median {:.1} ms, max {:.1} ms",
                ms(*a),
                ms(*m),
                ms(*b)
            )),
            _ => None,
        }
    };
    let mut latency = match spread(&s.swap_latencies) {
        Some(l) => format!("file-change-to-swap latency {l}"),
        None => "no file-change-to-swap latency measured".to_string(),
    };
    if let Some(l) = spread(&s.tier_latencies) {
        latency.push_str(&format!(
            "; optimised builds taking over from fast builds ({}): {l} after the file changed",
            s.tier_latencies.len()
        ));
    }
    format!(
        "stats: ran {:.1} s; {} swaps; {latency}; {} late blocks, {:.3} s of audio lost; {} audio-thread allocations ({} on fault paths); {} render threads, {} blocks shared; CPU per signal: {}",
        ran.as_secs_f64(),
        s.swap_latencies.len(),
        s.late_callbacks,
        s.lost.as_secs_f64(),
        s.audio_thread_allocations,
        s.fault_path_allocations,
        s.render_threads,
        s.shared_blocks,
        load_watch::format_cpu(&s.cpu)
    )
}
