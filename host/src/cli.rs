//! The command line: raw flags (clap) turned into validated settings, and one
//! function per subcommand. Non-real-time; `main` only parses, calls
//! [`run`] and maps the result to an exit code.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::control::Settings;
use crate::files::{collect_modules, signal_name};
use crate::offline::Renderer;

#[derive(Parser, Debug)]
#[command(
    name = "lel-host",
    version,
    about = "Plays WebAssembly signal modules and swaps new builds in without a click"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Render modules offline to a 32-bit float WAV file, faster than real time.
    Render(RenderArgs),
    /// Validate modules against the lel:signal contract, run their `init`, and show their state.
    Check(CheckArgs),
    /// Play modules on the sound card, watching their files: a saved new
    /// build swaps in without a click, an added file starts, a removed one
    /// fades out.
    Run(RunArgs),
    /// List output devices with their sample rates, channels and buffer sizes.
    Devices(DevicesArgs),
    /// Create a ready-to-build signal project in a new folder NAME.
    New(NewArgs),
    /// Render a session recorded by `run --session DIR` offline, bit for
    /// bit what was played.
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The session folder.
    pub dir: PathBuf,
    /// Output WAV file (32-bit float).
    #[arg(short = 'o', long = "output", value_name = "OUT.wav")]
    pub output: PathBuf,
    /// Threads rendering signals in parallel (the output is the same
    /// whatever the number).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Render a session that was cut short (no `end` line: the run was
    /// killed or the machine crashed) up to where it is known to have played.
    #[arg(long)]
    pub partial: bool,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Only check that the default device (or --device) can play 48 kHz
    /// stereo: exit status 0 if it can, 1 if not.
    #[arg(long)]
    pub check: bool,
    /// The device to check.
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Name of the signal (and of the folder created for it).
    pub name: String,
    /// Language of the project.
    #[arg(long, value_enum)]
    pub lang: crate::scaffold::Lang,
    /// Folder to create the project in.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// `.wasm`/`.wat` files, or folders of them (watched for new, changed and removed files).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output device (name or id from `lel-host devices`); `none` plays on the
    /// silent clock.
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// Sample rate (default: 48000, or the device's own rate if it cannot
    /// play 48000).
    #[arg(long = "sample-rate", value_name = "HZ")]
    pub sample_rate: Option<u32>,
    /// Device buffer size in frames (default: the device's choice).
    #[arg(long, value_name = "FRAMES")]
    pub buffer: Option<u32>,
    /// Output channels (default: 2, or the device's own count if it cannot
    /// play 2).
    #[arg(long, value_name = "N")]
    pub channels: Option<u16>,
    /// Crossfade a swapped version in over this many milliseconds (default: instant swap).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub xfade: f64,
    /// CPU time one `process` call may use before it is stopped as a
    /// runaway, in percent of the block period (a call the OS preempted is
    /// never blamed).
    #[arg(long, default_value_t = 400.0, value_name = "PERCENT")]
    pub budget: f64,
    /// Record exactly what is played to a 32-bit float WAV file.
    #[arg(long, value_name = "OUT.wav")]
    pub record: Option<PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// At the end, print swap latencies, late blocks and lost time,
    /// audio-thread allocations and each signal's CPU use.
    #[arg(long)]
    pub stats: bool,
    /// When the signals need more than the block period for 3 seconds in a
    /// row, mute the most expensive one (default: keep playing everything
    /// and report the overload).
    #[arg(long)]
    pub shed: bool,
    /// Print log lines instead of the full-screen live console (the console
    /// is shown only when standard input and output are a terminal).
    #[arg(long = "no-console")]
    pub no_console: bool,
    /// Threads rendering signals in parallel within each block: the audio
    /// thread plus N-1 workers (default: one per core, at most one per signal).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Most signals playing at once. Files are taken in name order; each
    /// one beyond the limit is named in a message and left out.
    #[arg(long = "max-signals", default_value_t = 1_000, value_name = "N")]
    pub max_signals: usize,
    /// Record the performance as a session in folder DIR: every module
    /// version that played and every event at its frame, for `lel-host
    /// replay DIR -o OUT.wav`.
    #[arg(long, value_name = "DIR")]
    pub session: Option<PathBuf>,
    /// Listen for OSC on UDP (default address 127.0.0.1): `/lel/SIGNAL/PARAM f`,
    /// `/lel/SIGNAL/note i i`, `/lel/SIGNAL/cc i i`, `/lel/signals`,
    /// `/lel/SIGNAL/params`.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub osc: Option<String>,
    /// Play MIDI from this JACK MIDI source (name or number, see `lel-host devices`).
    #[arg(long, value_name = "PORT")]
    pub midi: Option<String>,
    /// Which signals hear which MIDI channels, and controllers mapped to
    /// parameters (TOML; see the README). Default: every signal hears every channel.
    #[arg(long = "midi-map", value_name = "FILE")]
    pub midi_map: Option<PathBuf>,
    /// Play a saved module only once its optimised build is ready (by
    /// default new code plays from a fast build first, which the optimised
    /// build replaces a few milliseconds later with the same samples).
    #[arg(long = "no-fast-build")]
    pub no_fast_build: bool,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// `.wasm`/`.wat` files, or folders of them (each file is a signal).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output WAV file.
    #[arg(short = 'o', long = "output", value_name = "OUT.wav")]
    pub output: PathBuf,
    /// Length of the render.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub seconds: f64,
    #[arg(long = "sample-rate", default_value_t = 48_000, value_name = "HZ")]
    pub sample_rate: u32,
    /// Output channels.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub channels: u16,
    /// Frames per block (the most a module is asked for at once).
    #[arg(long, default_value_t = 128, value_name = "FRAMES")]
    pub block: u32,
    /// Accepted for scripts written for `run`; offline there is no
    /// real-time deadline, so it has no effect (see --runaway-seconds).
    #[arg(long, hide = true, value_name = "PERCENT")]
    pub budget: Option<f64>,
    /// A `process` call is stopped as a runaway only after using this much
    /// CPU time (there is no real-time deadline offline).
    #[arg(long = "runaway-seconds", default_value_t = 2.0, value_name = "S")]
    pub runaway_seconds: f64,
    /// Threads rendering signals in parallel within each block: the audio
    /// thread plus N-1 workers (default: one per core, at most one per signal).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Most signals playing at once. Files are taken in name order; each
    /// one beyond the limit is named in a message and left out.
    #[arg(long = "max-signals", default_value_t = 1_000, value_name = "N")]
    pub max_signals: usize,
    /// Play a Standard MIDI File's notes and controllers into the render,
    /// each at its exact frame (tempo map honoured).
    #[arg(long, value_name = "FILE.mid")]
    pub midi: Option<PathBuf>,
    /// Which signals hear which MIDI channels, and controllers mapped to
    /// parameters (TOML; see the README).
    #[arg(long = "midi-map", value_name = "FILE")]
    pub midi_map: Option<PathBuf>,
    /// Set a parameter before the first block (repeatable).
    #[arg(long = "set", value_name = "SIGNAL.PARAM=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// `.wasm`/`.wat` files, or folders of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long = "sample-rate", default_value_t = 48_000, value_name = "HZ")]
    pub sample_rate: u32,
    #[arg(long, default_value_t = 128, value_name = "FRAMES")]
    pub block: u32,
}

/// `--max-signals`, validated (the instance pool holds 3 versions of 1,000).
fn max_signals(n: usize) -> anyhow::Result<usize> {
    anyhow::ensure!(
        (1..=1_000).contains(&n),
        "--max-signals {n} is out of range (1 to 1000)"
    );
    Ok(n)
}

/// The call budget as a share of the block period, validated.
fn budget(percent: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(
        percent.is_finite() && (1.0..=400.0).contains(&percent),
        "--budget {percent} is out of range (1 to 400 percent of the block period)"
    );
    Ok(percent / 100.0)
}

/// `--threads`, validated; the default is one per core, at most `signals`
/// (at least one).
fn threads(given: Option<usize>, signals: usize) -> anyhow::Result<usize> {
    match given {
        Some(n) => {
            anyhow::ensure!(
                (1..=256).contains(&n),
                "--threads {n} is out of range (1 to 256 threads)"
            );
            Ok(n)
        }
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Ok(cores.min(signals).max(1))
        }
    }
}

/// Shape settings shared by every subcommand, validated.
fn settings(sample_rate: u32, channels: u16, block: u32) -> anyhow::Result<Settings> {
    anyhow::ensure!(
        (8_000..=384_000).contains(&sample_rate),
        "--sample-rate {sample_rate} is out of range (8000 to 384000 Hz)"
    );
    anyhow::ensure!(
        (1..=64).contains(&channels),
        "--channels {channels} is out of range (1 to 64)"
    );
    anyhow::ensure!(
        (1..=8192).contains(&block),
        "--block {block} is out of range (1 to 8192 frames)"
    );
    Ok(Settings {
        sample_rate,
        channels: channels as usize,
        block,
        ..Settings::default()
    })
}

/// Run a parsed command line. `Ok(false)` means "ran, but something was
/// rejected" (exit status 1).
///
/// # Errors
/// Anything that stops the command as a whole.
pub fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Render(a) => render(a),
        Command::Run(a) => crate::live::run(run_options(a)?),
        Command::Replay(a) => {
            let session = crate::session::read(&a.dir, a.partial)?;
            let threads = threads(a.threads, 1)?;
            let started = std::time::Instant::now();
            let frames = crate::session::replay(&session, &a.output, threads)?;
            let seconds = frames as f64 / session.settings.sample_rate as f64;
            tracing::info!(
                "replayed {seconds:.2} s from {} to {} in {:.2} s",
                a.dir.display(),
                a.output.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(true)
        }
        Command::New(a) => {
            let dir = crate::scaffold::new_project(&a.name, a.lang, &a.dir)?;
            println!("created {}", dir.display());
            Ok(true)
        }
        Command::Devices(a) if a.check => {
            let req = crate::live::output::OutputRequest {
                device: a.device,
                sample_rate: 48_000,
                channels: 2,
                buffer: None,
            };
            match crate::live::output::open_device(&req) {
                Ok((_, _, format, label)) => {
                    println!("{label} can play 48000 Hz stereo ({format})");
                    Ok(true)
                }
                Err(e) => {
                    println!("no usable output device: {e:#}");
                    Ok(false)
                }
            }
        }
        Command::Devices(_) => {
            print!("{}", crate::live::output::list_devices()?);
            match crate::input::midi::list_ports() {
                Ok(ports) if ports.is_empty() => println!("MIDI sources (JACK): none"),
                Ok(ports) => {
                    println!("MIDI sources (JACK; `run --midi NUMBER|NAME`):");
                    for (i, p) in ports.iter().enumerate() {
                        println!("  {i}: {p}");
                    }
                }
                Err(e) => println!("MIDI sources: {e:#}"),
            }
            Ok(true)
        }
        Command::Check(a) => {
            let settings = settings(a.sample_rate, 2, a.block)?;
            let verdicts = crate::check::check(&a.paths, &settings)?;
            for v in &verdicts {
                println!("{}", v.line);
            }
            Ok(verdicts.iter().all(|v| v.ok))
        }
    }
}

fn run_options(a: RunArgs) -> anyhow::Result<crate::live::RunOptions> {
    let mut settings = settings(
        a.sample_rate.unwrap_or(48_000),
        a.channels.unwrap_or(2),
        128,
    )?;
    anyhow::ensure!(
        a.xfade.is_finite() && (0.0..=10_000.0).contains(&a.xfade),
        "--xfade {} is out of range (0 to 10000 ms)",
        a.xfade
    );
    if let Some(b) = a.buffer {
        anyhow::ensure!(
            (16..=16_384).contains(&b),
            "--buffer {b} is out of range (16 to 16384 frames)"
        );
    }
    if let Some(s) = a.seconds {
        anyhow::ensure!(
            s.is_finite() && s > 0.0,
            "--seconds {s} must be more than 0"
        );
    }
    settings.xfade = Duration::from_secs_f64(a.xfade / 1e3);
    settings.call_budget = budget(a.budget)?;
    settings.slots = max_signals(a.max_signals)?;
    settings.check_alloc = a.stats;
    // Signals may be added while playing: by default a worker per core
    // (parked while unused); a block never uses more threads than signals.
    settings.threads = threads(a.threads, usize::MAX)?;
    settings.realtime = true;
    settings.fast_tier = !a.no_fast_build;
    Ok(crate::live::RunOptions {
        paths: a.paths,
        output: crate::live::output::OutputRequest {
            device: a.device,
            sample_rate: settings.sample_rate,
            channels: settings.channels as u16,
            buffer: a.buffer,
        },
        adapt_rate: a.sample_rate.is_none(),
        adapt_channels: a.channels.is_none(),
        settings,
        record: a.record,
        session: a.session,
        seconds: a.seconds,
        stats: a.stats,
        shed: a.shed,
        console: !a.no_console && crate::live::console::available(),
        osc: a
            .osc
            .as_deref()
            .map(crate::input::osc::parse_listen)
            .transpose()?,
        midi: a.midi,
        midi_map: match &a.midi_map {
            Some(p) => crate::input::MidiMap::load(p)?,
            None => crate::input::MidiMap::default(),
        },
    })
}

fn render(a: RenderArgs) -> anyhow::Result<bool> {
    let mut settings = settings(a.sample_rate, a.channels, a.block)?;
    settings.slots = max_signals(a.max_signals)?;
    anyhow::ensure!(
        a.runaway_seconds.is_finite() && (0.001..=3600.0).contains(&a.runaway_seconds),
        "--runaway-seconds {} is out of range (0.001 to 3600)",
        a.runaway_seconds
    );
    settings.runaway = Some(Duration::from_secs_f64(a.runaway_seconds));
    if let Some(b) = a.budget {
        budget(b)?;
        tracing::info!(
            "--budget has no effect in render: offline there is no real-time deadline; a call is stopped only after --runaway-seconds {} of CPU time",
            a.runaway_seconds
        );
    }
    anyhow::ensure!(
        a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 24.0 * 3600.0,
        "--seconds {} is out of range (more than 0, at most a day)",
        a.seconds
    );
    let sets = a
        .set
        .iter()
        .map(|s| crate::input::parse_set(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut map = match &a.midi_map {
        Some(p) => crate::input::MidiMap::load(p)?,
        None => crate::input::MidiMap::default(),
    };
    let mut midi = match &a.midi {
        Some(p) => crate::input::smf::read(p, settings.sample_rate)?,
        None => Vec::new(),
    }
    .into_iter()
    .peekable();
    let files = collect_modules(&a.paths)?;
    anyhow::ensure!(!files.is_empty(), "no `.wasm` or `.wat` files to render");
    settings.threads = threads(a.threads, files.len())?;
    let mut renderer = Renderer::with_settings(settings.clone())?;
    let mut rejected = Vec::new();
    let items: Vec<(String, PathBuf)> = files.iter().map(|f| (signal_name(f), f.clone())).collect();
    for loaded in renderer.control().load_all(&items) {
        if loaded.result.is_err() {
            rejected.push(loaded.signal.clone());
        }
        loaded.log();
    }
    for cmd in &sets {
        // A parameter that does not exist is an error: the render would
        // not be what was asked for.
        crate::input::apply(&mut renderer, &mut map, cmd, 0).context("--set")?;
    }
    let mut midi_errors = crate::input::LogLimit::new("--midi");
    let mut muted: Vec<String> = Vec::new();
    let total = (a.seconds * settings.sample_rate as f64).round() as u64;
    let mut writer = crate::wav::create(&a.output, a.channels, a.sample_rate)?;
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent}% {msg}")
            .expect("valid template"),
    );
    // With a MIDI file, events are sent one block ahead of their frames.
    let chunk_frames = if midi.peek().is_some() {
        settings.block as u64
    } else {
        (settings.sample_rate as u64 / 10).max(settings.block as u64)
    };
    let mut buf = vec![0.0f32; chunk_frames as usize * settings.channels];
    let started = std::time::Instant::now();
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(chunk_frames) as usize;
        let out = &mut buf[..n * settings.channels];
        while let Some(t) = midi.next_if(|t| t.frame < done + n as u64) {
            let cmd = crate::input::Command::Midi(t.play);
            if let Err(e) = crate::input::apply(&mut renderer, &mut map, &cmd, t.frame) {
                midi_errors.warn(&format!("{e:#}"));
            }
        }
        renderer.render_into(out);
        for n in renderer.take_notices() {
            if let crate::control::Notice::Faulted { signal, .. } = n
                && !muted.contains(&signal)
            {
                muted.push(signal);
            }
        }
        crate::wav::write(&mut writer, out)?;
        done += n as u64;
        progress.set_position(done);
    }
    writer
        .finalize()
        .with_context(|| format!("{}: cannot finish the WAV file", a.output.display()))?;
    progress.finish_and_clear();
    let took = started.elapsed().max(Duration::from_micros(1));
    let done = format!(
        "rendered {:.1} s to {} in {:.2} s ({:.1}x real time) on {} thread{} ({} blocks shared)",
        a.seconds,
        a.output.display(),
        took.as_secs_f64(),
        a.seconds / took.as_secs_f64(),
        renderer.threads(),
        if renderer.threads() == 1 { "" } else { "s" },
        renderer.parallel_blocks()
    );
    match incomplete(&muted, &rejected) {
        None => {
            tracing::info!("{done}");
            Ok(true)
        }
        Some(what) => {
            tracing::error!("{done}, but {what}: the file is not what the modules would play");
            Ok(false)
        }
    }
}

/// `1 signal muted (bass) and 1 rejected (lead)`, or `None` when every
/// signal played the whole render.
fn incomplete(muted: &[String], rejected: &[String]) -> Option<String> {
    let list = |v: &[String]| v.join(", ");
    let count = |n: usize| if n == 1 { "signal" } else { "signals" };
    match (muted.len(), rejected.len()) {
        (0, 0) => None,
        (m, 0) => Some(format!("{m} {} muted ({})", count(m), list(muted))),
        (0, r) => Some(format!("{r} {} rejected ({})", count(r), list(rejected))),
        (m, r) => Some(format!(
            "{m} {} muted ({}) and {r} rejected ({})",
            count(m),
            list(muted),
            list(rejected)
        )),
    }
}
