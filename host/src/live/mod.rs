//! `lel-host run`: the live host. Opens one output (a cpal stream, or the
//! silent clock when there is no usable device), then runs the control loop
//! on this thread: file changes from the [`watcher`] become loads (compile,
//! instantiate, `init` here, off the audio thread) handed to the audio thread
//! through the engine's wait-free queue; removals fade signals out; retired
//! versions are dropped here; events become log lines.

pub mod load_watch;
pub mod output;
pub mod recorder;
pub mod reloader;
pub mod watcher;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::control::{
    Control, LoadOutcome, Notice, Settings, collect_modules, show_paths, signal_name,
};
use crate::loader::LoadReport;
use crate::loader::cache::Source;
use crate::rt::callback::{AudioCallback, WarmUp};
use output::OutputRequest;
use watcher::{Change, Due, Settler, WatchSet};

/// What wakes the control loop.
enum Msg {
    Change(Change),
    Loaded(reloader::Finished),
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
    pub seconds: Option<f64>,
    /// Print a summary (swap latencies, late blocks, audio-thread
    /// allocations) at the end.
    pub stats: bool,
    /// After a sustained overload, mute the most expensive signal.
    pub shed: bool,
}

/// What a run saw, for `--stats` and tests.
#[derive(Debug, Default)]
pub struct Summary {
    pub swap_latencies: Vec<Duration>,
    pub late_callbacks: u64,
    /// Audio time lost to late blocks.
    pub lost: Duration,
    /// Each signal's CPU use (share of the block period).
    pub cpu: Vec<load_watch::SignalCpu>,
    pub audio_thread_allocations: u64,
    pub fault_path_allocations: u64,
    pub recorded_samples: u64,
}

/// Run until `--seconds` pass or Ctrl-C.
///
/// # Errors
/// When nothing can be watched or played at all.
pub fn run(mut opts: RunOptions) -> anyhow::Result<bool> {
    let watch = WatchSet::new(&opts.paths)?;
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
    let files = collect_modules(&opts.paths)?;
    let (mut control, mixer) = Control::new(opts.settings.clone())?;
    let mut all_ok = true;

    // First versions: loaded in parallel, so one slow `init` holds no one back.
    let items: Vec<(String, PathBuf)> = files.iter().map(|f| (signal_name(f), f.clone())).collect();
    for ((name, path), result) in items.iter().zip(control.load_files(&items)) {
        match result {
            Ok(LoadOutcome::Loaded(r)) => {
                tracing::info!("{name}: loaded ({}), {}", path.display(), describe_load(&r))
            }
            Ok(LoadOutcome::Unchanged) => {}
            Err(e) => {
                all_ok = false;
                tracing::error!("{name}: rejected: {}: {e}", path.display());
            }
        }
    }

    let channels = opts.settings.channels as u16;
    let recorder = match &opts.record {
        Some(p) => Some(recorder::Recorder::start(
            p.clone(),
            channels,
            opts.settings.sample_rate,
            10,
        )?),
        None => None,
    };
    let (recorder, ring) = match recorder {
        Some((r, ring)) => (Some(r), Some(ring)),
        None => (None, None),
    };
    let warm_up = WarmUp::new(&control.loader().runtime().engine).ok();
    let callback = AudioCallback::new(mixer, control.stats().clone(), ring, warm_up);
    let (err_tx, err_rx) = mpsc::channel();
    let buffer = opts.output.buffer.unwrap_or(opts.settings.block);
    let mut output = if opts.output.device.as_deref() == Some("none") {
        output::start_silent(callback, buffer)?
    } else {
        match output::start_device(&opts.output, callback, err_tx.clone()) {
            Ok(o) => o,
            Err(failure) => {
                let output::StartFailure { callback, error } = *failure;
                tracing::warn!(
                    "no usable output device ({error:#}); playing on a silent real-time clock"
                );
                output::start_silent(callback, buffer)?
            }
        }
    };
    tracing::info!(
        "playing on {} at {} Hz, {} channels; watching {}",
        output.describe(),
        opts.settings.sample_rate,
        channels,
        show_paths(&opts.paths)
    );
    control.set_running();

    let (tx, rx) = mpsc::channel::<Msg>();
    let _watcher = {
        let tx = tx.clone();
        watcher::start(&watch, move |c| {
            let _ = tx.send(Msg::Change(c));
        })?
    };
    let mut reloader = reloader::Reloader::new(tx, Msg::Loaded);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Only the first handler can be installed; tests run `run` once per process.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let started = Instant::now();
    let deadline = opts.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut settler = Settler::default();
    let mut summary = Summary::default();
    let mut load = load_watch::LoadWatch::new(opts.shed);
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
            break;
        }
        let mut wait = Duration::from_millis(20);
        if let Some(d) = settler.next_deadline() {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(now));
        }
        let mut msgs: Vec<Msg> = rx.recv_timeout(wait).into_iter().collect();
        msgs.extend(rx.try_iter());
        for m in msgs {
            match m {
                Msg::Change(Change::Touched { path, at, complete }) => {
                    settler.touch(path, at, complete)
                }
                Msg::Change(Change::Error(msg)) => tracing::warn!("{msg}"),
                Msg::Loaded(f) => reloader.finished(f, &mut control, &mut settler),
            }
        }
        for due in settler.due(Instant::now()) {
            match due {
                Due::Load { path, first } => {
                    reloader.request(&control, &mut settler, signal_name(&path), path, first)
                }
                Due::Remove { path } => {
                    let name = signal_name(&path);
                    if control.unload(&name) {
                        tracing::info!("{name}: {} was removed; fading out", path.display());
                    }
                }
            }
        }
        let errors: Vec<output::DeviceError> = err_rx.try_iter().collect();
        if let Some(fatal) = errors.iter().find(|e| e.is_fatal()) {
            tracing::warn!("audio device failed: {}; reopening it", fatal.message);
            output = reopen(output, &opts.output, &err_tx, buffer)?;
            err_rx.try_iter().for_each(drop);
        } else if let Some(e) = errors.first() {
            tracing::debug!("audio device: {}", e.message);
        }
        for n in control.poll() {
            if let Notice::Swapped {
                latency: Some(l), ..
            } = n
            {
                summary.swap_latencies.push(l);
            }
        }
        load.poll(&mut control);
    }

    let callback = output.stop();
    control.poll();
    if let Some(r) = recorder {
        let path = r.path.clone();
        summary.recorded_samples = r.finish()?;
        tracing::info!(
            "recorded {:.2} s to {}",
            summary.recorded_samples as f64 / channels as f64 / opts.settings.sample_rate as f64,
            path.display()
        );
    }
    let stats = control.stats();
    summary.late_callbacks = stats.late_callbacks.load(Ordering::Relaxed);
    summary.lost = Duration::from_nanos(stats.lost_nanos.load(Ordering::Relaxed));
    summary.audio_thread_allocations = stats.violations.load(Ordering::Relaxed);
    summary.fault_path_allocations = stats.fault_allocations.load(Ordering::Relaxed);
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
    Ok(all_ok)
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

pub(crate) fn describe_load(r: &LoadReport) -> String {
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

/// One line: swaps and their latency, late blocks and lost audio time,
/// audio-thread allocations, each signal's CPU use.
pub fn format_summary(s: &Summary, ran: Duration) -> String {
    let mut l = s.swap_latencies.clone();
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let latency = match (l.first(), l.get(l.len() / 2), l.last()) {
        (Some(a), Some(m), Some(b)) => format!(
            "file-change-to-swap latency min {:.1} ms, median {:.1} ms, max {:.1} ms",
            ms(*a),
            ms(*m),
            ms(*b)
        ),
        _ => "no file-change-to-swap latency measured".to_string(),
    };
    format!(
        "stats: ran {:.1} s; {} swaps; {latency}; {} late blocks, {:.3} s of audio lost; {} audio-thread allocations ({} on fault paths); CPU per signal: {}",
        ran.as_secs_f64(),
        s.swap_latencies.len(),
        s.late_callbacks,
        s.lost.as_secs_f64(),
        s.audio_thread_allocations,
        s.fault_path_allocations,
        load_watch::format_cpu(&s.cpu)
    )
}
