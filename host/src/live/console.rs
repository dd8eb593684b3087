//! The live console of `lel-host run` on a terminal: a full-screen view
//! (ratatui + crossterm) with one row per signal (state and why, version
//! and age, file, CPU share of the block, a peak/RMS level meter with a clip
//! mark, its parameters with their values), a header (output, rate, block, threads, master meter, late blocks,
//! lost time) and a pane with the latest log lines; keys mute, solo, change
//! gain (control events, ramped by the mixer), reload, restart fresh and
//! quit. While it is up, log lines go to its pane instead of stderr
//! ([`log_writer`]). Runs on the control thread; it only reads the atomics
//! the audio thread already writes (CPU meters, levels, stats).

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::load_watch::LoadWatch;
use crate::control::{Control, Loaded, Notice, ParamInfo, Request};
use crate::rt::level::Level;

/// Log lines kept for the pane.
const LOG_LINES: usize = 500;
/// Gain step of `+` / `-`.
const GAIN_STEP_DB: f32 = 3.0;
/// Lowest gain before `-` goes to silence.
const GAIN_FLOOR_DB: f32 = -60.0;
/// Highest gain the mixer takes (16x).
const GAIN_CEIL_DB: f32 = 24.0;
/// How long a clip mark stays up.
const CLIP_HOLD: Duration = Duration::from_secs(2);
/// Redraw period.
const FRAME: Duration = Duration::from_millis(100);
/// Level meter width in characters.
const METER: usize = 16;

/// Is there a terminal to show the console on (standard input and output)?
pub fn available() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Log lines captured while the console is up (`None`: write to stderr),
/// and a line not yet finished.
static CAPTURE: Mutex<Option<(VecDeque<String>, String)>> = Mutex::new(None);

fn capture() -> std::sync::MutexGuard<'static, Option<(VecDeque<String>, String)>> {
    CAPTURE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The log's writer (for `tracing_subscriber`'s `with_writer`): stderr, or
/// the console's pane while the console is up.
pub fn log_writer() -> LogWriter {
    LogWriter
}

pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut guard = capture();
        if let Some((lines, partial)) = guard.as_mut() {
            partial.push_str(&String::from_utf8_lossy(buf));
            while let Some(end) = partial.find('\n') {
                let line = strip_ansi(&partial[..end]);
                partial.replace_range(..=end, "");
                if lines.len() == LOG_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
            return Ok(buf.len());
        }
        drop(guard);
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if capture().is_none() {
            std::io::stderr().flush()?;
        }
        Ok(())
    }
}

/// `text` without terminal colour codes (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What the header shows about the output.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub device: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub block: u32,
    pub threads: usize,
    pub fade: Duration,
    pub xfade: Duration,
}

/// Where a signal stands.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Loading,
    Playing,
    /// Silenced by the host (fault), with why.
    Faulted(String),
    RolledBack {
        to: u64,
        why: String,
    },
    /// Its only version was rejected, with why.
    Rejected(String),
    FadingOut,
}

struct SignalRow {
    path: Option<PathBuf>,
    state: State,
    version: u64,
    since: Instant,
    /// A fade-in or crossfade runs until then.
    fading_until: Option<Instant>,
    /// A newer version is being loaded.
    reloading: bool,
    /// Why the last new version was rejected while this one kept playing.
    note: Option<String>,
    mute: bool,
    solo: bool,
    gain_db: f32,
    cpu: Option<(f64, f64)>,
    cpu_peak: f64,
    level: Level,
    clip_until: Option<Instant>,
    /// The parameters of the version playing, with their values
    /// (`lel:signal@0.2.0`; empty for a signal without any).
    params: Vec<ParamInfo>,
}

impl SignalRow {
    fn new(path: Option<PathBuf>, state: State) -> Self {
        SignalRow {
            path,
            state,
            version: 0,
            since: Instant::now(),
            fading_until: None,
            reloading: false,
            note: None,
            mute: false,
            solo: false,
            gain_db: 0.0,
            cpu: None,
            cpu_peak: 0.0,
            level: Level::default(),
            clip_until: None,
            params: Vec::new(),
        }
    }

    /// A version started in a fresh slot: the strip is at its defaults.
    fn started(&mut self, version: u64, fade: Duration) {
        let now = Instant::now();
        self.state = State::Playing;
        self.version = version;
        self.since = now;
        self.fading_until = Some(now + fade);
        self.mute = false;
        self.solo = false;
        self.gain_db = 0.0;
        self.cpu_peak = 0.0;
    }
}

pub struct Console {
    terminal: Terminal<CrosstermBackend<std::io::Stdout>>,
    header: Header,
    rows: BTreeMap<String, SignalRow>,
    selected: Option<String>,
    /// The user moved the selection; until then it stays on the first row
    /// (signals load in any order).
    chosen: bool,
    master: Level,
    master_clip_until: Option<Instant>,
    next_draw: Instant,
    started: Instant,
}

impl Console {
    /// Take over the terminal (raw mode, alternate screen) and the log.
    ///
    /// # Errors
    /// When the terminal cannot be set up.
    pub fn start() -> anyhow::Result<Console> {
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        if let Err(e) = execute!(out, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e.into());
        }
        let terminal = match Terminal::new(CrosstermBackend::new(out)) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e.into());
            }
        };
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        *capture() = Some((VecDeque::new(), String::new()));
        Ok(Console {
            terminal,
            header: Header::default(),
            rows: BTreeMap::new(),
            selected: None,
            chosen: false,
            master: Level::default(),
            master_clip_until: None,
            next_draw: Instant::now(),
            started: Instant::now(),
        })
    }

    pub fn set_header(&mut self, header: Header) {
        self.header = header;
    }

    /// A version of `signal` was asked for (a file was added or changed).
    pub fn requested(&mut self, signal: &str, path: &std::path::Path) {
        let row = self
            .rows
            .entry(signal.to_string())
            .or_insert_with(|| SignalRow::new(Some(path.to_path_buf()), State::Loading));
        if row.state != State::Loading {
            row.reloading = true;
        }
    }

    /// A request finished.
    pub fn loaded(&mut self, loaded: &Loaded) {
        let row = self
            .rows
            .entry(loaded.signal.clone())
            .or_insert_with(|| SignalRow::new(loaded.path.clone(), State::Loading));
        row.reloading = false;
        if loaded.path.is_some() {
            row.path.clone_from(&loaded.path);
        }
        match &loaded.result {
            Err(e) if loaded.was_playing && row.state != State::Loading => {
                row.note = Some(format!("new version rejected: {e}"));
            }
            Err(e) => row.state = State::Rejected(e.to_string()),
            Ok(_) => row.note = None,
        }
    }

    /// An event from the audio thread.
    pub fn notice(&mut self, notice: &Notice, control: &Control) {
        let now = Instant::now();
        match notice {
            Notice::Started {
                signal, version, ..
            } => {
                let path = control.signal_path(signal);
                let fade = self.header.fade;
                self.rows
                    .entry(signal.clone())
                    .or_insert_with(|| SignalRow::new(path, State::Loading))
                    .started(*version, fade);
            }
            Notice::Swapped {
                signal, version, ..
            } => {
                if let Some(r) = self.rows.get_mut(signal) {
                    r.state = State::Playing;
                    r.version = *version;
                    r.since = now;
                    r.cpu_peak = 0.0;
                    r.fading_until =
                        (!self.header.xfade.is_zero()).then(|| now + self.header.xfade);
                }
            }
            Notice::Faulted {
                signal, message, ..
            } => {
                if let Some(r) = self.rows.get_mut(signal) {
                    r.state = State::Faulted(reason(signal, message));
                }
            }
            Notice::RolledBack { signal, to, .. } => {
                if let Some(r) = self.rows.get_mut(signal) {
                    let why = match &r.state {
                        State::Faulted(w) => w.clone(),
                        _ => "a fault".to_string(),
                    };
                    r.state = State::RolledBack { to: *to, why };
                    r.version = *to;
                }
            }
            Notice::Unloaded { signal } => {
                let keep = self
                    .rows
                    .get(signal)
                    .is_some_and(|r| r.state == State::Loading)
                    || control.is_playing(signal);
                if !keep {
                    self.rows.remove(signal);
                }
            }
            Notice::GrowRefused { .. }
            | Notice::Slow { .. }
            | Notice::EventsDropped { .. }
            | Notice::TieredUp { .. } => {}
        }
    }

    /// Handle keys and redraw when due. Returns `true` when the user asked
    /// to quit.
    ///
    /// # Errors
    /// When the terminal cannot be read or drawn.
    pub fn tick(&mut self, control: &mut Control, load: &LoadWatch) -> anyhow::Result<bool> {
        let mut changed = false;
        while event::poll(Duration::ZERO)? {
            if let Event::Key(k) = event::read()? {
                if k.kind == KeyEventKind::Release {
                    continue;
                }
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                    return Ok(true);
                }
                self.key(k.code, control);
                changed = true;
            }
        }
        let now = Instant::now();
        if changed || now >= self.next_draw {
            self.next_draw = now + FRAME;
            self.sample(control, load);
            self.draw(control)?;
        }
        Ok(false)
    }

    fn key(&mut self, code: KeyCode, control: &mut Control) {
        let names: Vec<String> = self.rows.keys().cloned().collect();
        if !self.chosen {
            self.selected = names.first().cloned();
        }
        let at = names
            .iter()
            .position(|n| Some(n) == self.selected.as_ref())
            .unwrap_or(0);
        match code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.chosen = true;
                self.selected = names.get(at.saturating_sub(1)).cloned();
                return;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.chosen = true;
                self.selected = names
                    .get((at + 1).min(names.len().saturating_sub(1)))
                    .cloned();
                return;
            }
            _ => {}
        }
        let Some(name) = names.get(at).cloned() else {
            return;
        };
        let Some(row) = self.rows.get_mut(&name) else {
            return;
        };
        let clock = control.clock();
        let result = match code {
            KeyCode::Char('m') => {
                let on = !row.mute;
                control.mute(&name, on, clock).map(|()| {
                    row.mute = on;
                    format!("{name}: {} (console)", if on { "muted" } else { "unmuted" })
                })
            }
            KeyCode::Char('s') => {
                let on = !row.solo;
                control.solo(&name, on, clock).map(|()| {
                    row.solo = on;
                    format!(
                        "{name}: {} (console)",
                        if on { "soloed" } else { "unsoloed" }
                    )
                })
            }
            KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Char('-') => {
                let up = code != KeyCode::Char('-');
                let db = if up {
                    (row.gain_db.max(GAIN_FLOOR_DB - GAIN_STEP_DB) + GAIN_STEP_DB).min(GAIN_CEIL_DB)
                } else {
                    row.gain_db - GAIN_STEP_DB
                };
                let db = if db < GAIN_FLOOR_DB {
                    f32::NEG_INFINITY
                } else {
                    db
                };
                control.set_gain(&name, db_to_gain(db), clock).map(|()| {
                    row.gain_db = db;
                    format!("{name}: gain {} (console)", show_db(db))
                })
            }
            KeyCode::Char('r') => match row.path.clone() {
                Some(path) => {
                    row.reloading = true;
                    let req = Request::file(name.clone(), path.clone());
                    // A muted (faulted) signal is tried again even when its
                    // file did not change; a playing one only reloads new bytes.
                    if matches!(row.state, State::Faulted(_)) {
                        control.request(req.always());
                        Ok(format!(
                            "{name}: trying {} again after its fault (console)",
                            path.display()
                        ))
                    } else {
                        control.request(req);
                        Ok(format!("{name}: reloading {} (console)", path.display()))
                    }
                }
                None => Err(anyhow::anyhow!("{name} has no file to reload")),
            },
            KeyCode::Char('f') => match control.playing_binary(&name) {
                Some(binary) => {
                    row.reloading = true;
                    control.request(
                        Request::bytes(name.clone(), binary.to_vec(), row.path.clone()).restart(),
                    );
                    Ok(format!(
                        "{name}: restarting the same version with fresh state (console)"
                    ))
                }
                None => Err(anyhow::anyhow!("{name} has no version to restart")),
            },
            _ => return,
        };
        match result {
            Ok(line) => tracing::info!("{line}"),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }

    /// Read the meters: levels each frame, CPU from the load watch (once a
    /// second); rows follow the control side's table.
    fn sample(&mut self, control: &Control, load: &LoadWatch) {
        let now = Instant::now();
        for name in control.signals() {
            self.rows.entry(name.clone()).or_insert_with(|| {
                let mut r = SignalRow::new(control.signal_path(&name), State::Playing);
                r.version = 1;
                r
            });
        }
        let levels = control.levels();
        for (name, row) in &mut self.rows {
            match control.slot_of(name) {
                Some(slot) => {
                    row.level = levels.take(slot);
                    if row.level.clipped {
                        row.clip_until = Some(now + CLIP_HOLD);
                    }
                }
                None => {
                    row.level = Level::default();
                    if matches!(
                        row.state,
                        State::Playing | State::Faulted(_) | State::RolledBack { .. }
                    ) {
                        row.state = State::FadingOut;
                    }
                }
            }
            row.params = control.params(name).unwrap_or_default();
            row.cpu = load.latest(name);
            if let Some((_, peak)) = row.cpu {
                row.cpu_peak = row.cpu_peak.max(peak);
            }
        }
        self.master = levels.take_master();
        if self.master.clipped {
            self.master_clip_until = Some(now + CLIP_HOLD);
        }
        if !self.chosen
            || self
                .selected
                .as_ref()
                .is_none_or(|s| !self.rows.contains_key(s))
        {
            self.selected = self.rows.keys().next().cloned();
        }
    }

    fn draw(&mut self, control: &Control) -> anyhow::Result<()> {
        let now = Instant::now();
        let stats = control.stats();
        let late = stats.late_callbacks.load(Ordering::Relaxed);
        let lost = Duration::from_nanos(stats.lost_nanos.load(Ordering::Relaxed));
        let h = &self.header;
        let head = vec![
            Line::from(format!(
                "lel-host run | {} | {} Hz | {} ch | block {} | {} {} | up {}",
                h.device,
                h.sample_rate,
                h.channels,
                h.block,
                h.threads,
                if h.threads == 1 { "thread" } else { "threads" },
                age(now - self.started)
            )),
            Line::from(format!(
                "master {} {} | late blocks {late} | lost {:.3} s",
                meter(self.master),
                clip_mark(self.master_clip_until, now),
                lost.as_secs_f64()
            )),
        ];
        let any_solo = self.rows.values().any(|r| r.solo);
        // A signal's parameters go on a second line of its row, drawn over
        // the table from the state column to the right border (a table
        // cell would cut them at the state column's width): (the row's
        // first line among the table's lines, the text, selected).
        let mut params_lines: Vec<(u16, String, bool)> = Vec::new();
        let mut line_at = 0u16;
        let rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(name, r)| {
                let selected = Some(name) == self.selected.as_ref();
                let cpu = match r.cpu {
                    Some((now_share, _)) => format!(
                        "{:5.1} % pk {:5.1} %",
                        now_share * 100.0,
                        r.cpu_peak * 100.0
                    ),
                    None => "    - %".to_string(),
                };
                let version = if r.version == 0 {
                    "-".to_string()
                } else {
                    format!("v{} {}", r.version, age(now - r.since))
                };
                let file = r
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let height = match params_text(&r.params) {
                    Some(p) => {
                        params_lines.push((line_at, p, selected));
                        2
                    }
                    None => 1,
                };
                line_at += height;
                let row = Row::new(vec![
                    Cell::from(format!("{} {name}", if selected { ">" } else { " " })),
                    Cell::from(state_text(r, any_solo, now)),
                    Cell::from(version),
                    Cell::from(cpu),
                    Cell::from(format!(
                        "{} {}",
                        meter(r.level),
                        clip_mark(r.clip_until, now)
                    )),
                    Cell::from(gain_text(r.gain_db)),
                    Cell::from(file),
                ])
                .height(height);
                if selected {
                    row.style(Style::default().add_modifier(Modifier::REVERSED))
                } else {
                    row
                }
            })
            .collect();
        let table_height = line_at.max(1) + 3;
        let lines: Vec<String> = capture()
            .as_ref()
            .map(|(l, _)| l.iter().cloned().collect())
            .unwrap_or_default();
        let keys = "up/down select | m mute | s solo | +/- gain 3 dB | r reload from disk | f restart with fresh state | q quit";
        self.terminal.draw(|f| {
            let [top, table, log, foot] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Length(table_height),
                Constraint::Min(3),
                Constraint::Length(1),
            ])
            .areas(f.area());
            f.render_widget(Paragraph::new(head), top);
            let widths = [
                Constraint::Length(16),
                Constraint::Fill(3),
                Constraint::Length(10),
                Constraint::Length(18),
                Constraint::Length(METER as u16 + 20),
                Constraint::Length(9),
                Constraint::Fill(2),
            ];
            let t = Table::new(rows, widths)
                .header(
                    Row::new(vec![
                        "  signal",
                        "state",
                        "version",
                        "CPU now/peak",
                        "level (RMS, peak)",
                        "gain",
                        "file",
                    ])
                    .style(Style::default().add_modifier(Modifier::BOLD)),
                )
                .block(Block::bordered().title(" signals "));
            f.render_widget(t, table);
            // Inside the border, under the header; the state column starts
            // after the name's 16 columns and one space.
            let inner = Block::bordered().inner(table);
            let x = inner.x + 17;
            for (at, text, selected) in &params_lines {
                let y = inner.y + 1 + at + 1;
                if y >= inner.bottom() || x >= inner.right() {
                    continue;
                }
                let style = if *selected {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                f.render_widget(
                    Paragraph::new(text.as_str()).style(style),
                    Rect::new(x, y, inner.right() - x, 1),
                );
            }
            let shown = log.height.saturating_sub(2) as usize;
            let tail: Vec<Line> = lines[lines.len().saturating_sub(shown)..]
                .iter()
                .map(|l| Line::from(l.as_str()))
                .collect();
            f.render_widget(
                Paragraph::new(tail).block(Block::bordered().title(" log ")),
                log,
            );
            f.render_widget(Paragraph::new(keys), foot);
        })?;
        Ok(())
    }
}

impl Drop for Console {
    /// Give the terminal and the log back.
    fn drop(&mut self) {
        *capture() = None;
        restore();
    }
}

/// Leave raw mode and the alternate screen (also from the panic hook).
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
}

/// A fault message without the signal's name and file: the reason alone.
fn reason(signal: &str, message: &str) -> String {
    let m = message
        .strip_prefix(&format!("{signal}: "))
        .unwrap_or(message);
    let m = m.strip_suffix("; muted").unwrap_or(m);
    match m.rfind(" (") {
        Some(i) if m.ends_with(')') => m[..i].to_string(),
        _ => m.to_string(),
    }
}

fn state_text(r: &SignalRow, any_solo: bool, now: Instant) -> String {
    let mut s = match &r.state {
        State::Loading => "loading".to_string(),
        State::Playing if r.mute => "muted (m)".to_string(),
        State::Playing if any_solo && !r.solo => "muted (another is soloed)".to_string(),
        State::Playing if r.fading_until.is_some_and(|t| now < t) => "fading in".to_string(),
        State::Playing if r.solo => "playing, soloed".to_string(),
        State::Playing => "playing".to_string(),
        State::Faulted(why) => format!("muted: {why}"),
        State::RolledBack { to, why } => format!("rolled back to v{to} after: {why}"),
        State::Rejected(why) => format!("rejected: {why}"),
        State::FadingOut => "fading out".to_string(),
    };
    if r.reloading {
        s.push_str(", loading new version");
    }
    if let Some(n) = &r.note {
        s.push_str("; ");
        s.push_str(n);
    }
    s
}

/// `params: cutoff 800 Hz, q 0.7, gain 0.5`, in the version's order;
/// `None` when it declares none.
fn params_text(params: &[ParamInfo]) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    let each: Vec<String> = params
        .iter()
        .map(|p| {
            let unit = if p.unit.is_empty() {
                String::new()
            } else {
                format!(" {}", p.unit)
            };
            format!("{} {}{unit}", p.key, number(p.value))
        })
        .collect();
    Some(format!("params: {}", each.join(", ")))
}

/// A parameter's value in at most three decimals, without trailing zeros:
/// `800`, `0.5`, `0.125`, `-12.5`.
fn number(v: f32) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn db(x: f32) -> f32 {
    if x > 0.0 {
        20.0 * x.log10()
    } else {
        f32::NEG_INFINITY
    }
}

fn db_to_gain(db: f32) -> f32 {
    if db == f32::NEG_INFINITY {
        0.0
    } else {
        10f32.powf(db / 20.0)
    }
}

fn show_db(d: f32) -> String {
    if d < GAIN_FLOOR_DB {
        "-inf dB".to_string()
    } else {
        format!("{d:+.1} dB")
    }
}

fn gain_text(d: f32) -> String {
    if d == 0.0 {
        "0 dB".to_string()
    } else {
        show_db(d)
    }
}

/// `[#########|....] -12.0 -6.0`: RMS as a bar, the peak as `|`, on a
/// -60..0 dBFS scale, then both in dBFS.
fn meter(l: Level) -> String {
    let pos = |x: f32| -> usize {
        let d = db(x).max(-60.0);
        (((d + 60.0) / 60.0) * METER as f32)
            .round()
            .clamp(0.0, METER as f32) as usize
    };
    let (rms, peak) = (pos(l.rms), pos(l.peak));
    let bar: String = (0..METER)
        .map(|i| {
            if l.peak > 0.0 && i + 1 == peak.max(1) {
                '|'
            } else if i < rms {
                '#'
            } else {
                '.'
            }
        })
        .collect();
    let num = |x: f32| {
        let d = db(x);
        if d < -99.0 {
            " -inf".to_string()
        } else {
            format!("{d:5.1}")
        }
    };
    format!("[{bar}] {} {}", num(l.rms), num(l.peak))
}

fn clip_mark(until: Option<Instant>, now: Instant) -> &'static str {
    if until.is_some_and(|t| now < t) {
        "CLIP"
    } else {
        "    "
    }
}

/// `42s`, `3m04s`, `1h02m`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_reason_is_the_message_without_name_and_file() {
        assert_eq!(
            reason(
                "bad",
                "bad: trap: unreachable in process (/tmp/x/bad.wat); muted"
            ),
            "trap: unreachable in process"
        );
    }

    #[test]
    fn meter_shows_rms_bar_and_peak() {
        let m = meter(Level {
            peak: 1.0,
            rms: 0.1,
            clipped: true,
        });
        assert_eq!(m, "[###########....|] -20.0   0.0");
        assert_eq!(meter(Level::default()), "[................]  -inf  -inf");
    }

    #[test]
    fn parameters_read_as_key_value_unit() {
        let p = |key: &str, value: f32, unit: &str| ParamInfo {
            key: key.into(),
            index: 0,
            value,
            default: 0.0,
            min: -1000.0,
            max: 20000.0,
            unit: unit.into(),
            steps: 0,
            user_set: false,
        };
        assert_eq!(params_text(&[]), None);
        assert_eq!(
            params_text(&[
                p("cutoff", 800.0, "Hz"),
                p("q", 0.6667, ""),
                p("trim", -0.0001, "dB")
            ])
            .unwrap(),
            "params: cutoff 800 Hz, q 0.667, trim 0 dB"
        );
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(-12.5), "-12.5");
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[32m INFO\u{1b}[0m sine"), " INFO sine");
    }
}
