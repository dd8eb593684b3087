//! Sessions: `run --session DIR` records everything needed to play a
//! performance again, and `lel-host replay DIR -o OUT.wav` renders it
//! offline, bit for bit what was played. The [`Writer`] runs on the control
//! thread (fed by [`crate::control::Control`] with each version it hands to
//! the audio thread and each event the audio thread reports, with the block
//! clock it took effect at); [`read`] and [`replay`] run on the caller's
//! thread, which drives an offline engine.
//!
//! A session is a folder:
//!
//! ```text
//! DIR/session.txt              the settings, then one event per line, then `end FRAMES`
//! DIR/modules/HASH.wasm        every binary module that played, named by its BLAKE3 hash
//! ```
//!
//! `session.txt` (UTF-8, one item per line, `#` starts a comment line):
//!
//! ```text
//! lel-session 1
//! sample-rate 48000
//! channels 2
//! block 128
//! slots 1000
//! fade-ns 10000000
//! xfade-ns 0
//! rollback-ns 3000000000
//! 0 buffer 128
//! 0 load slot=0 version=3 fade-in=no restart=no against=- module=HASH signal=sine
//! 5120 load slot=0 version=7 fade-in=yes restart=no against=3 module=HASH signal=sine
//! 9984 gain slot=0 value=0.70794576
//! 9984 mute slot=1 on=yes
//! 12800 fault slot=0 version=7 kind=timeout forced=yes
//! 12800 rollback slot=0 from=7 to=3
//! 20480 unload slot=1
//! played 24000
//! end 480000
//! ```
//!
//! Every event line starts with the frame (the engine's clock) it took
//! effect at, as the audio thread reported it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use crate::control::{LoadOutcome, Notice, Request, Settings};
use crate::loader::cache;
use crate::rt::layout::Layout;
use crate::rt::messages::{
    Command, ControlEvent, ControlKind, Event, EventKind, Fault, NoteEvent, SlotId,
};

/// The first line of every `session.txt`.
pub const MAGIC: &str = "lel-session 1";
pub const EVENTS_FILE: &str = "session.txt";
pub const MODULES_DIR: &str = "modules";

/// A version handed to the audio thread (see [`Writer::handed`]).
pub struct Handed<'a> {
    pub version: u64,
    pub slot: SlotId,
    pub signal: &'a str,
    pub binary: &'a [u8],
    pub fade_in: bool,
    pub restart: bool,
    pub against: Option<u64>,
}

/// What a load line needs, kept from the hand-over until the audio thread
/// says when the version started.
struct Pending {
    slot: SlotId,
    signal: String,
    module: String,
    fade_in: bool,
    restart: bool,
    against: Option<u64>,
}

/// Writes a session while the engine plays (control thread). A write
/// error is reported once and the music goes on; [`Writer::finish`] then
/// fails.
pub struct Writer {
    dir: PathBuf,
    out: std::io::BufWriter<fs::File>,
    modules: HashSet<String>,
    pending: HashMap<u64, Pending>,
    error: Option<String>,
    sample_rate: u32,
    /// The clock of the last `played` line.
    marked: u64,
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl Writer {
    /// Create `dir` (it may exist, but must not hold a session already) and
    /// write the settings.
    ///
    /// # Errors
    /// When the folder or its files cannot be created.
    pub fn create(dir: &Path, s: &Settings) -> anyhow::Result<Writer> {
        let events = dir.join(EVENTS_FILE);
        if events.exists() {
            bail!(
                "{}: a session is there already; give `--session` a new folder (or remove it)",
                events.display()
            );
        }
        fs::create_dir_all(dir.join(MODULES_DIR))
            .with_context(|| format!("{}: cannot create the session folder", dir.display()))?;
        let file = fs::File::create(&events)
            .with_context(|| format!("{}: cannot create the session file", events.display()))?;
        let mut w = Writer {
            dir: dir.to_path_buf(),
            out: std::io::BufWriter::new(file),
            modules: HashSet::new(),
            pending: HashMap::new(),
            error: None,
            sample_rate: s.sample_rate,
            marked: 0,
        };
        let head = format!(
            "{MAGIC}\nsample-rate {}\nchannels {}\nblock {}\nslots {}\nfade-ns {}\nxfade-ns {}\nrollback-ns {}\n",
            s.sample_rate,
            s.channels,
            s.block,
            s.slots,
            s.fade.as_nanos(),
            s.xfade.as_nanos(),
            s.rollback.as_nanos()
        );
        w.write(&head);
        w.flush();
        match w.error.take() {
            Some(e) => bail!("{e}"),
            None => Ok(w),
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(text.as_bytes())
        {
            self.failed(format!(
                "{}: cannot write the session: {e}",
                self.dir.join(EVENTS_FILE).display()
            ));
        }
    }

    fn failed(&mut self, message: String) {
        tracing::error!("{message}; the music goes on, the session will be incomplete");
        self.error = Some(message);
    }

    /// Write what is buffered (the control loop calls this after each turn).
    pub fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.failed(format!(
                "{}: cannot write the session: {e}",
                self.dir.join(EVENTS_FILE).display()
            ));
        }
    }

    /// The engine has played up to `clock`: every half second a `played`
    /// line says so, so a session cut short (the machine crashed) can still
    /// be replayed up to there (`replay --partial`).
    pub fn played(&mut self, clock: u64) {
        if clock >= self.marked + self.sample_rate as u64 / 2 {
            self.marked = clock;
            self.write(&format!("played {clock}\n"));
        }
    }

    /// A version was handed to the audio thread: store its module (once per
    /// content) and remember how it was handed over.
    pub fn handed(&mut self, h: &Handed) {
        let module = cache::hash(h.binary);
        if self.modules.insert(module.clone()) {
            let path = self.dir.join(MODULES_DIR).join(format!("{module}.wasm"));
            let tmp = path.with_extension("part");
            let written = fs::write(&tmp, h.binary).and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = written {
                self.failed(format!("{}: cannot write the module: {e}", path.display()));
            }
        }
        self.pending.insert(
            h.version,
            Pending {
                slot: h.slot,
                signal: h.signal.to_string(),
                module,
                fade_in: h.fade_in,
                restart: h.restart,
                against: h.against,
            },
        );
    }

    /// An event from the audio thread.
    pub fn event(&mut self, e: &Event) {
        let line = match *e {
            Event::Buffer { frames, clock } => format!("{clock} buffer {frames}"),
            Event::Started { version, clock, .. } | Event::Swapped { version, clock, .. } => {
                let Some(p) = self.pending.remove(&version) else {
                    self.failed(format!(
                        "version {version} started at frame {clock} without a hand-over"
                    ));
                    return;
                };
                format!(
                    "{clock} load slot={} version={version} fade-in={} restart={} against={} module={} signal={}",
                    p.slot,
                    yes(p.fade_in),
                    yes(p.restart),
                    p.against.map_or("-".to_string(), |a| a.to_string()),
                    p.module,
                    p.signal
                )
            }
            Event::Unloading { slot, clock } => format!("{clock} unload slot={slot}"),
            // The optimised build of a version takes over from its fast
            // build with the same samples: the replay plays it from the
            // start.
            Event::TieredUp { .. } => return,
            Event::Faulted {
                slot,
                version,
                fault,
                clock,
                ..
            } => format!(
                "{clock} fault slot={slot} version={version} kind={} forced={}",
                fault_kind(fault),
                yes(forced(fault))
            ),
            Event::RolledBack {
                slot,
                from,
                to,
                clock,
            } => format!("{clock} rollback slot={slot} from={from} to={to}"),
            Event::Applied(ControlEvent { at, slot, kind }) => match kind {
                ControlKind::Gain(g) => format!("{at} gain slot={slot} value={g:?}"),
                ControlKind::Mute(m) => format!("{at} mute slot={slot} on={}", yes(m)),
                ControlKind::Solo(s) => format!("{at} solo slot={slot} on={}", yes(s)),
                ControlKind::Param { id, value } => {
                    format!("{at} param slot={slot} id={id} value={value:?}")
                }
                ControlKind::Note(n) => format!(
                    "{at} note slot={slot} kind={} channel={} number={} value={:?}",
                    n.kind as u8, n.channel, n.number, n.value
                ),
            },
            // Not part of what is heard.
            Event::Unloaded { .. }
            | Event::GrowRefused { .. }
            | Event::Slow { .. }
            | Event::EventsDropped { .. } => return,
        };
        self.write(&line);
        self.write("\n");
    }

    /// Write the end (the clock after the last block) and close the file.
    ///
    /// # Errors
    /// When anything could not be written, or events were lost.
    pub fn finish(mut self, end: u64, lost_events: u64) -> anyhow::Result<()> {
        if lost_events > 0 {
            self.failed(format!(
                "{lost_events} events from the audio thread were lost (queue full)"
            ));
        }
        if self.error.is_none() {
            self.write(&format!("end {end}\n"));
        }
        self.flush();
        if let Some(e) = self.error {
            bail!("the session in {} is incomplete: {e}", self.dir.display());
        }
        tracing::info!(
            "session written to {} ({} modules, {:.2} s)",
            self.dir.display(),
            self.modules.len(),
            end as f64 / self.sample_rate.max(1) as f64
        );
        Ok(())
    }
}

/// Faults that depend on time rather than on the module (a runaway stopped
/// by its CPU budget, a starved call): a replay forces them at their block.
/// The others (traps, NaN, too loud, bad pointers) happen again by
/// themselves when the same versions render the same blocks.
fn forced(f: Fault) -> bool {
    matches!(f, Fault::Timeout | Fault::Starved)
}

fn fault_kind(f: Fault) -> &'static str {
    match f {
        Fault::Timeout => "timeout",
        Fault::Starved => "starved",
        Fault::Trap(_) => "trap",
        Fault::Failed => "failed",
        Fault::BadPointer { .. } => "bad-pointer",
        Fault::NonFinite => "non-finite",
        Fault::TooLoud { .. } => "too-loud",
    }
}

/// One event of a session.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Buffer(u32),
    Load {
        slot: SlotId,
        version: u64,
        fade_in: bool,
        restart: bool,
        against: Option<u64>,
        module: String,
        signal: String,
    },
    Unload {
        slot: SlotId,
    },
    Fault {
        slot: SlotId,
        version: u64,
        kind: String,
        forced: bool,
    },
    Rollback {
        slot: SlotId,
        from: u64,
        to: u64,
    },
    Control {
        slot: SlotId,
        kind: ControlKind,
    },
}

/// A session read from its folder.
#[derive(Debug)]
pub struct Session {
    pub dir: PathBuf,
    pub settings: Settings,
    /// (frame, event, line number), in the order they took effect.
    pub events: Vec<(u64, Item, usize)>,
    pub end: u64,
    /// Cut short (no `end` line), read with `partial`: `end` is how far it
    /// is known to have played.
    pub partial: bool,
}

/// A line's `key=value` fields.
struct Fields<'a> {
    line: &'a str,
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn raw(&mut self, key: &str) -> anyhow::Result<&'a str> {
        let rest = self.rest.trim_start();
        let body = rest
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .ok_or_else(|| anyhow!("expected `{key}=...` in `{}`", self.line))?;
        if key == "signal" {
            self.rest = "";
            return Ok(body);
        }
        let end = body.find(' ').unwrap_or(body.len());
        self.rest = &body[end..];
        Ok(&body[..end])
    }

    fn num<T: std::str::FromStr>(&mut self, key: &str) -> anyhow::Result<T> {
        let v = self.raw(key)?;
        v.parse()
            .map_err(|_| anyhow!("`{key}={v}` is not a valid number in `{}`", self.line))
    }

    fn flag(&mut self, key: &str) -> anyhow::Result<bool> {
        match self.raw(key)? {
            "yes" => Ok(true),
            "no" => Ok(false),
            v => bail!("`{key}={v}` must be yes or no in `{}`", self.line),
        }
    }

    fn done(&self) -> anyhow::Result<()> {
        if self.rest.trim().is_empty() {
            Ok(())
        } else {
            bail!("unexpected `{}` in `{}`", self.rest.trim(), self.line)
        }
    }
}

fn parse_item(what: &str, line: &str, rest: &str) -> anyhow::Result<Item> {
    let mut f = Fields { line, rest };
    let item = match what {
        "buffer" => {
            let n: u32 = rest
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1 << 20).contains(n))
                .ok_or_else(|| {
                    anyhow!("`{line}`: a buffer is a number of frames (1 to 1048576)")
                })?;
            f.rest = "";
            Item::Buffer(n)
        }
        "load" => {
            let slot = f.num("slot")?;
            let version = f.num("version")?;
            let fade_in = f.flag("fade-in")?;
            let restart = f.flag("restart")?;
            let against = match f.raw("against")? {
                "-" => None,
                v => Some(
                    v.parse()
                        .map_err(|_| anyhow!("`against={v}` is not a version in `{line}`"))?,
                ),
            };
            let module = f.raw("module")?.to_string();
            if module.len() != 64 || !module.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("`module={module}` is not a BLAKE3 hash (64 hex digits) in `{line}`");
            }
            let signal = f.raw("signal")?.to_string();
            if signal.is_empty() {
                bail!("a load needs a signal name: `{line}`");
            }
            Item::Load {
                slot,
                version,
                fade_in,
                restart,
                against,
                module,
                signal,
            }
        }
        "unload" => Item::Unload {
            slot: f.num("slot")?,
        },
        "fault" => Item::Fault {
            slot: f.num("slot")?,
            version: f.num("version")?,
            kind: f.raw("kind")?.to_string(),
            forced: f.flag("forced")?,
        },
        "rollback" => Item::Rollback {
            slot: f.num("slot")?,
            from: f.num("from")?,
            to: f.num("to")?,
        },
        "gain" => {
            let slot = f.num("slot")?;
            let g: f32 = f.num("value")?;
            if !(g.is_finite() && (0.0..=16.0).contains(&g)) {
                bail!("gain {g} is out of range (0 to 16) in `{line}`");
            }
            Item::Control {
                slot,
                kind: ControlKind::Gain(g),
            }
        }
        "mute" => Item::Control {
            slot: f.num("slot")?,
            kind: ControlKind::Mute(f.flag("on")?),
        },
        "solo" => Item::Control {
            slot: f.num("slot")?,
            kind: ControlKind::Solo(f.flag("on")?),
        },
        "param" => {
            let slot = f.num("slot")?;
            let id = f.num("id")?;
            let value: f32 = f.num("value")?;
            if !value.is_finite() {
                bail!("a parameter's value must be a finite number, not {value}, in `{line}`");
            }
            Item::Control {
                slot,
                kind: ControlKind::Param { id, value },
            }
        }
        "note" => {
            let slot = f.num("slot")?;
            let kind: u8 = f.num("kind")?;
            let kind = match kind {
                k if k == EventKind::NoteOn as u8 => EventKind::NoteOn,
                k if k == EventKind::NoteOff as u8 => EventKind::NoteOff,
                k if k == EventKind::ControlChange as u8 => EventKind::ControlChange,
                k if k == EventKind::PitchBend as u8 => EventKind::PitchBend,
                k if k == EventKind::ChannelPressure as u8 => EventKind::ChannelPressure,
                k => bail!("`kind={k}` is not a note or controller event in `{line}`"),
            };
            let channel: u8 = f.num("channel")?;
            let number: u16 = f.num("number")?;
            let value: f32 = f.num("value")?;
            let lo = if kind == EventKind::PitchBend {
                -1.0
            } else {
                0.0
            };
            if channel > 15 || number > 127 || !(value.is_finite() && (lo..=1.0).contains(&value)) {
                bail!(
                    "out of range in `{line}` (channel 0 to 15, number 0 to 127, value {lo} to 1)"
                );
            }
            Item::Control {
                slot,
                kind: ControlKind::Note(NoteEvent {
                    kind,
                    channel,
                    number,
                    value,
                }),
            }
        }
        other => bail!(
            "unknown event `{other}` in `{line}` (known: block, load, unload, fault, rollback, gain, mute, solo, param, note)"
        ),
    };
    f.done()?;
    Ok(item)
}

/// Read and check a session folder: every line, and every module it
/// names (present, and its content matching its hash).
///
/// # Errors
/// A damaged or incomplete session: the message names the file (and line)
/// and what is wrong.
pub fn read(dir: &Path, partial: bool) -> anyhow::Result<Session> {
    if !dir.is_dir() {
        bail!(
            "{}: no such session folder (a session is written by `lel-host run --session DIR`)",
            dir.display()
        );
    }
    let path = dir.join(EVENTS_FILE);
    let name = path.display().to_string();
    let text = match fs::read(&path) {
        Ok(b) => String::from_utf8(b).map_err(|e| {
            anyhow!(
                "{name}: damaged: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{name}: missing: {} is not a session folder (or the file was deleted)",
            dir.display()
        ),
        Err(e) => bail!("{name}: cannot read: {e}"),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some((_, MAGIC)) => {}
        Some((n, l)) => {
            bail!("{name} line {n}: not a lel-host session: `{l}` (expected `{MAGIC}`)")
        }
        None => bail!("{name}: empty: not a lel-host session"),
    }
    let mut settings = Settings {
        threads: 1,
        ..Settings::default()
    };
    let header = [
        "sample-rate",
        "channels",
        "block",
        "slots",
        "fade-ns",
        "xfade-ns",
        "rollback-ns",
    ];
    for key in header {
        let (n, l) = lines
            .next()
            .ok_or_else(|| anyhow!("{name}: incomplete: the settings end before `{key}`"))?;
        let v = l
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| anyhow!("{name} line {n}: expected `{key} N`, found `{l}`"))?;
        let v: u64 = v
            .parse()
            .ok()
            .filter(|v| *v > 0 || key.ends_with("-ns"))
            .ok_or_else(|| anyhow!("{name} line {n}: `{l}`: `{key}` needs a number above 0"))?;
        let small = || {
            u32::try_from(v).map_err(|_| anyhow!("{name} line {n}: `{l}`: `{key}` is too large"))
        };
        match key {
            "sample-rate" => settings.sample_rate = small()?,
            "channels" => settings.channels = small()? as usize,
            "block" => settings.block = small()?,
            "slots" => settings.slots = small()? as usize,
            "fade-ns" => settings.fade = Duration::from_nanos(v),
            "xfade-ns" => settings.xfade = Duration::from_nanos(v),
            _ => settings.rollback = Duration::from_nanos(v),
        }
    }
    anyhow::ensure!(
        settings.channels <= 64 && settings.slots <= 100_000,
        "{name}: the settings are out of range ({} channels, {} slots)",
        settings.channels,
        settings.slots
    );
    let mut events = Vec::new();
    let mut end = None;
    let mut last = 0u64;
    let mut played = 0u64;
    let lines: Vec<(usize, &str)> = lines.collect();
    let count = lines.len();
    for (k, (n, l)) in lines.into_iter().enumerate() {
        if let Some(p) = l.strip_prefix("played ")
            && let Ok(p) = p.parse::<u64>()
        {
            played = played.max(p);
            continue;
        }
        // A run that was killed may have left its last line half written.
        let last_line = k + 1 == count;
        if end.is_some() {
            bail!("{name} line {n}: `{l}` after the `end` line");
        }
        if let Some(e) = l.strip_prefix("end ") {
            let e: u64 = e
                .parse()
                .map_err(|_| anyhow!("{name} line {n}: `{l}`: the end is a frame count"))?;
            if e < last {
                bail!("{name} line {n}: the end ({e}) comes before the last event ({last})");
            }
            end = Some(e);
            continue;
        }
        let mut words = l.splitn(3, ' ');
        let (Some(clock), Some(what)) = (words.next(), words.next()) else {
            bail!("{name} line {n}: cannot read `{l}`: expected `FRAME EVENT ...`");
        };
        let clock: u64 = clock.parse().map_err(|_| {
            anyhow!("{name} line {n}: cannot read `{l}`: `{clock}` is not a frame number")
        })?;
        if clock < last {
            bail!(
                "{name} line {n}: events out of order: frame {clock} after frame {last} (the file was edited or damaged)"
            );
        }
        let item = match parse_item(what, l, words.next().unwrap_or("")) {
            Ok(item) => item,
            Err(_) if partial && last_line => {
                tracing::warn!("{name} line {n}: `{l}` is cut short; left out");
                break;
            }
            Err(e) => bail!("{name} line {n}: {e}"),
        };
        last = clock;
        if let Item::Load { slot, .. }
        | Item::Unload { slot }
        | Item::Fault { slot, .. }
        | Item::Rollback { slot, .. }
        | Item::Control { slot, .. } = &item
            && *slot >= settings.slots
        {
            bail!(
                "{name} line {n}: slot {slot} does not exist ({} slots)",
                settings.slots
            );
        }
        events.push((clock, item, n));
    }
    let cut = end.is_none();
    let end = match end {
        Some(e) => e,
        None if partial => {
            let e = played.max(last);
            tracing::warn!(
                "{name}: no `end` line (the run that wrote it did not finish): replaying what it recorded, up to frame {e}"
            );
            e
        }
        None => bail!(
            "{name}: incomplete: no `end` line, so the run that wrote it did not finish (killed, or its disk full?); it has events up to frame {}: `lel-host replay --partial` renders that much",
            played.max(last)
        ),
    };
    if !matches!(events.first(), Some((0, Item::Buffer(_), _))) && end > 0 {
        bail!("{name}: incomplete: the first event must be `0 buffer FRAMES`");
    }
    // Every module named is there and is what its name says.
    let mut checked = HashSet::new();
    for (_, item, n) in &events {
        if let Item::Load { module, signal, .. } = item
            && checked.insert(module.clone())
        {
            let p = dir.join(MODULES_DIR).join(format!("{module}.wasm"));
            let bytes = fs::read(&p).map_err(|e| {
                anyhow!(
                    "{}: missing ({e}); line {n} of {name} loads it as `{signal}`",
                    p.display()
                )
            })?;
            let h = cache::hash(&bytes);
            if h != *module {
                bail!(
                    "{}: damaged: its content hashes to {h}, not to its name (line {n} of {name} loads it as `{signal}`)",
                    p.display()
                );
            }
        }
    }
    Ok(Session {
        dir: dir.to_path_buf(),
        settings,
        events,
        end,
        partial: cut,
    })
}

/// Render `session` offline into `out` (a 32-bit float WAV). Returns the
/// frames rendered.
///
/// # Errors
/// A module that does not load again, an event that does not fit what
/// plays, or a replay that did not do what the session recorded (a fault
/// missing or extra): the message names the line.
pub fn replay(session: &Session, out: &Path, threads: usize) -> anyhow::Result<u64> {
    let name = session.dir.join(EVENTS_FILE).display().to_string();
    let mut settings = session.settings.clone();
    settings.threads = threads;
    // No real-time deadline: a runaway of the live run is forced at its
    // block (its line says `forced=yes`); only a call stuck for this long
    // would be stopped here.
    settings.runaway = Some(Duration::from_secs(2));
    let mut r = crate::offline::Renderer::with_settings(settings.clone())?;
    r.control().set_replaying();
    let channels = settings.channels;
    let mut wav = crate::wav::create(out, channels as u16, settings.sample_rate)?;
    // Session version -> (replay version, its layout); slot -> signal.
    let mut versions: HashMap<u64, (u64, Layout)> = HashMap::new();
    let mut slots: HashMap<SlotId, String> = HashMap::new();
    // Faults and rollbacks the session recorded, to check against the replay's.
    let mut expected: Vec<(u64, String, &'static str, usize)> = Vec::new();
    // The device's buffer (split into blocks of at most `settings.block`)
    // and where the current one started.
    let (mut buffer, mut buffer_at) = (0u64, 0u64);
    let mut next = 0usize;
    let mut clock = 0u64;
    let mut buf = Vec::new();
    while clock < session.end {
        if clock == buffer_at + buffer {
            buffer_at = clock;
        }
        // A new buffer size starts with a buffer.
        while let Some((at, Item::Buffer(f), n)) = session.events.get(next)
            && *at == clock
        {
            if clock != buffer_at {
                bail!(
                    "{name} line {n}: the buffer size changes at frame {at}, inside the buffer of {buffer} frames that started at {buffer_at}"
                );
            }
            buffer = *f as u64;
            next += 1;
        }
        // This block: the rest of the buffer, at most a mixer's block.
        let frames = (buffer_at + buffer - clock).min(settings.block as u64) as u32;
        // Events at this block's start, and control events inside it.
        while let Some((at, item, n)) = session.events.get(next) {
            let (at, n) = (*at, *n);
            if at >= clock + frames as u64 {
                break;
            }
            let here = |what: &str| {
                anyhow!(
                    "{name} line {n}: {what} at frame {at}, which is not the start of a block (the block at {clock} is {frames} frames long)"
                )
            };
            match item {
                Item::Buffer(_) => {
                    return Err(here("the buffer size changes"));
                }
                Item::Load {
                    slot,
                    version,
                    fade_in,
                    restart,
                    against,
                    module,
                    signal,
                } => {
                    if at != clock {
                        return Err(here("a version starts"));
                    }
                    let against = match against {
                        None => None,
                        Some(a) => Some(
                            versions
                                .get(a)
                                .map(|(_, l)| (*a, l.clone()))
                                .ok_or_else(|| {
                                    anyhow!(
                                        "{name} line {n}: version {a} (whose state this one carries) never loaded before"
                                    )
                                })?,
                        ),
                    };
                    if let Some(old) = slots.get(slot)
                        && old != signal
                        && r.control().slot_of(old) == Some(*slot)
                    {
                        bail!(
                            "{name} line {n}: slot {slot} plays `{old}`, not `{signal}` (the session is inconsistent)"
                        );
                    }
                    let p = session.dir.join(MODULES_DIR).join(format!("{module}.wasm"));
                    let bytes = fs::read(&p).with_context(|| format!("{}", p.display()))?;
                    let req = Request::bytes(signal.clone(), bytes, Some(p.clone()))
                        .replayed(*slot, *fade_in, *restart, against);
                    let report = match r.control().load_request(req) {
                        Ok(LoadOutcome::Loaded(rep)) => rep,
                        Ok(LoadOutcome::Unchanged) => {
                            bail!("{name} line {n}: the version was not loaded again")
                        }
                        Err(e) => bail!(
                            "{}: does not load again (line {n} of {name}, signal `{signal}`): {e}",
                            p.display()
                        ),
                    };
                    if r.control().slot_of(signal) != Some(*slot) {
                        bail!(
                            "{name} line {n}: `{signal}` could not take slot {slot} (the session is inconsistent)"
                        );
                    }
                    versions.insert(*version, (report.version, report.layout));
                    slots.insert(*slot, signal.clone());
                }
                Item::Unload { slot } => {
                    if at != clock {
                        return Err(here("an unload"));
                    }
                    let signal = slots
                        .get(slot)
                        .ok_or_else(|| anyhow!("{name} line {n}: slot {slot} plays nothing"))?;
                    if !r.control().unload(signal) {
                        bail!("{name} line {n}: `{signal}` in slot {slot} is not playing");
                    }
                }
                Item::Fault {
                    slot,
                    version,
                    kind,
                    forced,
                } => {
                    if at != clock {
                        return Err(here("a fault"));
                    }
                    let signal = slots.get(slot).cloned().unwrap_or_default();
                    if *forced {
                        let (v, _) = versions.get(version).ok_or_else(|| {
                            anyhow!("{name} line {n}: version {version} never loaded")
                        })?;
                        let fault = match kind.as_str() {
                            "starved" => Fault::Starved,
                            _ => Fault::Timeout,
                        };
                        r.control().command(Command::Fault {
                            slot: *slot,
                            version: *v,
                            fault,
                        })?;
                    }
                    expected.push((at, signal, "fault", n));
                }
                Item::Rollback { slot, .. } => {
                    let signal = slots.get(slot).cloned().unwrap_or_default();
                    expected.push((at, signal, "rollback", n));
                }
                Item::Control { slot, kind } => {
                    let signal = slots.get(slot).ok_or_else(|| {
                        anyhow!(
                            "{name} line {n}: a control event for slot {slot}, where nothing was loaded before (the session is damaged)"
                        )
                    })?;
                    if let ControlKind::Param { id, .. } = kind
                        && r.control().knows_param(*slot, *id) == Some(false)
                    {
                        bail!(
                            "{name} line {n}: `{signal}` in slot {slot} has no parameter of id {id} (ids are given to parameter keys in the order the versions declared them; the session is damaged)"
                        );
                    }
                    r.control().control_to_slot(ControlEvent {
                        at,
                        slot: *slot,
                        kind: *kind,
                    })?;
                }
            }
            next += 1;
        }
        let n = (frames as u64).min(session.end - clock) as usize;
        buf.resize(n * channels, 0.0);
        r.render_into(&mut buf);
        crate::wav::write(&mut wav, &buf)?;
        clock += n as u64;
        for notice in r.take_notices() {
            let (at, signal, what) = match notice {
                Notice::Faulted { clock, signal, .. } => (clock, signal, "fault"),
                Notice::RolledBack { clock, signal, .. } => (clock, signal, "rollback"),
                _ => continue,
            };
            match expected
                .iter()
                .position(|(c, s, w, _)| *c == at && *s == signal && *w == what)
            {
                Some(i) => {
                    expected.remove(i);
                }
                None => bail!(
                    "the replay diverged from {name}: `{signal}` had a {what} at frame {at} that the session does not have"
                ),
            }
        }
        if let Some((at, signal, what, n)) = expected.iter().find(|(c, ..)| *c < clock) {
            bail!(
                "the replay diverged from {name}: the {what} of `{signal}` at frame {at} (line {n}) did not happen"
            );
        }
    }
    if let Some((_, item, n)) = session.events.get(next)
        && !session.partial
    {
        bail!("{name} line {n}: {item:?} comes after the end");
    }
    wav.finalize()?;
    Ok(session.end)
}
