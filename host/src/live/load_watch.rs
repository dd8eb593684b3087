//! How heavy playing is, told to the user: at most once a second, the
//! overload line (what the signals need of the block, each signal's share),
//! late blocks with the audio time they lost, and once, a refused real-time
//! priority with what to do. Overload is reported, never punished: every
//! signal keeps playing, unless `--shed` asks to mute the most expensive one
//! after a sustained overload. Keeps per-signal totals for `--stats`.
//! Runs on the control thread.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::control::Control;

/// Overloaded seconds in a row before `--shed` mutes a signal.
const SHED_AFTER: u32 = 3;

/// One signal's CPU use over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SignalCpu {
    pub signal: String,
    /// Mean share of the block period (1.0 = all of it).
    pub mean: f64,
    /// Largest share in one block.
    pub peak: f64,
}

#[derive(Default)]
struct Total {
    share_sum: f64,
    windows: u32,
    peak: f64,
}

pub struct LoadWatch {
    shed: bool,
    next: Instant,
    late_seen: u64,
    overloaded_for: u32,
    totals: BTreeMap<String, Total>,
    /// Each signal's share of the block in the last sample: (mean, peak).
    latest: BTreeMap<String, (f64, f64)>,
}

impl LoadWatch {
    pub fn new(shed: bool) -> Self {
        LoadWatch {
            shed,
            next: Instant::now() + Duration::from_secs(1),
            late_seen: 0,
            overloaded_for: 0,
            totals: BTreeMap::new(),
            latest: BTreeMap::new(),
        }
    }

    /// Call often; does its work at most once a second.
    pub fn poll(&mut self, control: &mut Control) {
        if let Some(line) = crate::rt::priority::take_refusal() {
            tracing::warn!("{line}");
        }
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let loads = self.sample(control);
        let need: f64 = loads.iter().map(|(_, s)| s).sum();
        let stats = control.stats();
        let late = stats.late_callbacks.load(Ordering::Relaxed);
        let lost = Duration::from_nanos(stats.lost_nanos.load(Ordering::Relaxed));
        let new_late = late - self.late_seen;
        self.late_seen = late;
        let lateness = if new_late > 0 {
            format!(
                "; {new_late} late {} in the last second, {:.2} s of audio lost so far",
                plural(new_late, "block", "blocks"),
                lost.as_secs_f64()
            )
        } else {
            String::new()
        };
        // Overload: the signals need more than the block period and the
        // output lost time for it (with render workers, a need above 100 %
        // can still be met: that is no overload).
        if need >= 1.0 && new_late > 0 {
            tracing::warn!(
                "overload: the signals need {:.0} % of the block ({}){lateness}",
                need * 100.0,
                shares(&loads)
            );
            self.overloaded_for += 1;
            if self.shed && self.overloaded_for >= SHED_AFTER {
                self.overloaded_for = 0;
                shed(control, &loads);
            }
        } else {
            self.overloaded_for = 0;
            if new_late > 0 {
                tracing::warn!(
                    "{new_late} audio {} came late (xrun): the output had nothing to play{lateness}; the signals need {:.0} % of the block, so the audio thread did not get the CPU in time",
                    plural(new_late, "block", "blocks"),
                    need * 100.0
                );
            }
        }
    }

    /// Each playing signal's share of the block since the last sample,
    /// largest first; adds to the run's totals.
    fn sample(&mut self, control: &Control) -> Vec<(String, f64)> {
        let meters = control.meters().clone();
        let mut loads = Vec::new();
        self.latest.clear();
        for slot in 0..meters.len() {
            let (Some(load), Some((name, _))) = (meters.take(slot), control.slot_signal(slot))
            else {
                continue;
            };
            let t = self.totals.entry(name.clone()).or_default();
            t.share_sum += load.share;
            t.windows += 1;
            t.peak = t.peak.max(load.peak);
            self.latest.insert(name.clone(), (load.share, load.peak));
            loads.push((name, load.share));
        }
        loads.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        loads
    }

    /// A signal's share of the block over the last second: (mean, peak),
    /// for the live console.
    pub fn latest(&self, signal: &str) -> Option<(f64, f64)> {
        self.latest.get(signal).copied()
    }

    /// Per-signal CPU use over the run (for `--stats`), by name.
    pub fn finish(&mut self, control: &Control) -> Vec<SignalCpu> {
        self.sample(control);
        self.totals
            .iter()
            .map(|(signal, t)| SignalCpu {
                signal: signal.clone(),
                mean: t.share_sum / t.windows.max(1) as f64,
                peak: t.peak,
            })
            .collect()
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `bass 42 %, pad 42 %, lead 42 %` (the eight largest).
fn shares(loads: &[(String, f64)]) -> String {
    let mut parts: Vec<String> = loads
        .iter()
        .take(8)
        .map(|(n, s)| format!("{n} {:.0} %", s * 100.0))
        .collect();
    if loads.len() > 8 {
        parts.push(format!("{} more", loads.len() - 8));
    }
    parts.join(", ")
}

/// `--shed`: fade out the most expensive signal.
fn shed(control: &mut Control, loads: &[(String, f64)]) {
    let Some((name, share)) = loads.first() else {
        return;
    };
    if control.unload(name) {
        tracing::warn!(
            "overload: muted {name} ({:.0} % of the block) to keep up (--shed); save its file again to bring it back",
            share * 100.0
        );
    }
}

/// `sine 1 % (peak 3 %), bass 42 % (peak 48 %)` for `--stats`.
pub fn format_cpu(cpu: &[SignalCpu]) -> String {
    if cpu.is_empty() {
        return "no signal played".to_string();
    }
    cpu.iter()
        .map(|c| {
            format!(
                "{} {:.0} % (peak {:.0} %)",
                c.signal,
                c.mean * 100.0,
                c.peak * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
