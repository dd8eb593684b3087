//! What the audio thread reports, in words: each [`Event`] from the mixer
//! becomes a [`Notice`] for the caller and a log line naming the signal, its
//! file and what to do. Runs on the control thread.

use std::time::Duration;

use crate::loader::trap_text;
use crate::rt::guest::GrowKind;
use crate::rt::messages::{Event, Fault, SlotId};

use super::Control;

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
    /// The optimised build of a version took over from its fast build.
    TieredUp {
        signal: String,
        version: u64,
        /// From the file change to the tier-up (live only).
        latency: Option<Duration>,
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
    /// Events for the signal were dropped: its event buffer and backlog
    /// were full (it takes fewer events a block than it is sent).
    EventsDropped {
        signal: String,
        count: u64,
    },
}

impl Control {
    /// An event from the audio thread, logged and turned into a notice.
    pub(super) fn notice(&mut self, event: Event) -> Option<Notice> {
        Some(match event {
            Event::Started {
                slot,
                version,
                clock,
            } => {
                let (signal, file) = self.label(slot);
                tracing::info!("{signal}: playing ({file})");
                Notice::Started {
                    signal,
                    version,
                    clock,
                }
            }
            Event::Swapped {
                slot,
                version,
                clock,
                carried,
                at,
                ..
            } => self.swapped(slot, version, clock, carried, at),
            Event::Unloaded { slot, .. } => self.unloaded(slot),
            Event::TieredUp {
                slot,
                version,
                taken,
                at,
                ..
            } => return self.tiered_up(slot, version, taken, at),
            Event::Unloading { .. } | Event::Buffer { .. } | Event::Applied(_) => return None,
            Event::Faulted {
                slot,
                version,
                fault,
                clock,
                after_carry,
            } => self.faulted(slot, version, fault, clock, after_carry),
            Event::RolledBack {
                slot, to, clock, ..
            } => self.rolled_back(slot, to, clock),
            Event::GrowRefused { slot, kind, .. } => self.grow_refused(slot, kind),
            Event::EventsDropped { slot, count, .. } => {
                let (signal, file) = self.label(slot);
                tracing::warn!(
                    "{signal}: {count} events were dropped: its event buffer and the host's backlog of {} were full (it is sent more events than it takes a block; give it a larger event buffer) ({file})",
                    crate::rt::params::BACKLOG_EVENTS
                );
                Notice::EventsDropped { signal, count }
            }
            Event::Slow {
                slot,
                micros,
                percent,
                ..
            } => {
                let (signal, _) = self.label(slot);
                if self.settings.runaway.is_none() {
                    tracing::warn!(
                        "{signal}: process used {micros} us of CPU, {percent}% of the block period"
                    );
                }
                Notice::Slow {
                    signal,
                    micros,
                    percent,
                }
            }
        })
    }

    /// A version faulted and was muted; after a swap that carried state, the
    /// state is named as a possible cause (and the version restarted fresh).
    fn faulted(
        &mut self,
        slot: SlotId,
        version: u64,
        fault: Fault,
        clock: u64,
        after_carry: bool,
    ) -> Notice {
        let (signal, file) = self.label(slot);
        let mut message = format!("{signal}: {} ({file}); muted", self.describe(fault));
        if after_carry && !self.replaying {
            message.push_str(&self.restart_fresh(&signal, version));
        }
        tracing::error!("{message}");
        Notice::Faulted {
            signal,
            version,
            clock,
            message,
        }
    }

    /// A memory or table grow was refused: the limit it hit.
    fn grow_refused(&self, slot: SlotId, kind: GrowKind) -> Notice {
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
        Notice::GrowRefused { signal, message }
    }

    /// `version` of `signal` faulted in its first blocks after a swap that
    /// carried state into it: the state may be the cause (a NaN in a filter
    /// memory, say). Ask once for the same version (its very bytes, whether
    /// it came from a file or not) again with fresh state; the words to add
    /// to the fault's message. Not when a newer version is playing or on its
    /// way (it decides what plays next).
    fn restart_fresh(&mut self, signal: &str, version: u64) -> String {
        const CAUSE: &str =
            "; the state carried over from the previous version may have caused this";
        let again = self.signals.get(signal).and_then(|rec| {
            let playing = rec.playing.as_ref()?;
            let idle = matches!(rec.load, super::pipeline::Status::Idle);
            (playing.current == version && idle)
                .then(|| (playing.binary.to_vec(), rec.path.clone()))
        });
        match again {
            Some((bytes, path)) => {
                self.request(super::Request::bytes(signal, bytes, path).with_fresh_state());
                format!("{CAUSE}: restarting this version once with fresh state")
            }
            None => CAUSE.to_string(),
        }
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

    /// A swap: with the compile time and the file-change-to-swap latency.
    fn swapped(
        &mut self,
        slot: SlotId,
        version: u64,
        clock: u64,
        carried: u32,
        at: std::time::Instant,
    ) -> Notice {
        let (signal, _) = self.label(slot);
        let playing = self
            .signals
            .get_mut(&signal)
            .and_then(|s| s.playing.as_mut());
        let (latency, compile, fast) = match playing {
            Some(p) => (
                p.requested.take().map(|t| at.saturating_duration_since(t)),
                p.compile_times
                    .iter()
                    .find(|(v, _)| *v == version)
                    .map(|(_, d)| *d),
                p.fast.is_some_and(|f| f.version == version),
            ),
            None => (None, None, false),
        };
        let tier = if fast { "fast build, " } else { "" };
        let compiled = compiled(tier, compile);
        let after = after(latency);
        let blocks = if carried == 1 { "block" } else { "blocks" };
        tracing::info!(
            "{signal}: swapped in version {version}{compiled}, {carried} state {blocks} carried{after}"
        );
        Notice::Swapped {
            signal,
            version,
            clock,
            carried,
            latency,
        }
    }

    /// The optimised build of `version` took over from its fast build (or
    /// came too late).
    fn tiered_up(
        &mut self,
        slot: SlotId,
        version: u64,
        taken: bool,
        at: std::time::Instant,
    ) -> Option<Notice> {
        let (signal, _) = self.label(slot);
        let fast = self
            .signals
            .get_mut(&signal)
            .and_then(|s| s.playing.as_mut())
            .and_then(|p| p.fast.take_if(|f| f.version == version));
        if !taken {
            tracing::debug!(
                "{signal}: the optimised build of version {version} came after it stopped playing"
            );
            return None;
        }
        let compiled = compiled("", fast.and_then(|f| f.optimised_compile));
        let latency = fast
            .and_then(|f| f.noticed)
            .map(|t| at.saturating_duration_since(t));
        let after = after(latency);
        tracing::info!(
            "{signal}: the optimised build of version {version} took over from its fast build{compiled}{after}"
        );
        Some(Notice::TieredUp {
            signal,
            version,
            latency,
        })
    }

    /// The slot is empty: free it unless a signal (re)took it meanwhile.
    fn unloaded(&mut self, slot: SlotId) -> Notice {
        if !self.signals.values().any(|s| s.slot == slot) && !self.free.contains(&slot) {
            self.free.push(slot);
        }
        let (signal, _) = self.label(slot);
        tracing::info!("{signal}: unloaded");
        Notice::Unloaded { signal }
    }

    /// Back to the last good version: it is the one playing now, so the
    /// next load claims against its layout.
    fn rolled_back(&mut self, slot: SlotId, to: u64, clock: u64) -> Notice {
        let (signal, _) = self.label(slot);
        if let Some(s) = self.signals.get_mut(&signal) {
            s.params.rolled_back(to, &mut self.next_param_id);
        }
        if let Some(p) = self
            .signals
            .get_mut(&signal)
            .and_then(|s| s.playing.as_mut())
            && let Some((_, _, hash, binary)) = p.layouts.iter().find(|(id, ..)| *id == to)
        {
            p.current = to;
            p.hash = hash.clone();
            p.binary = binary.clone();
            p.raw.clear(); // known by its binary's hash only
        }
        tracing::warn!("{signal}: rolled back to the last good version ({to}) with its state");
        Notice::RolledBack { signal, to, clock }
    }

    /// Why a version was silenced, in words.
    fn describe(&self, fault: Fault) -> String {
        match fault {
            Fault::Timeout if self.settings.runaway.is_some() => {
                let d = self.settings.call_budget_time().as_secs_f64();
                let amount = if d < 1.0 {
                    format!("{:.0} ms", d * 1e3)
                } else {
                    format!("{d:.1} s")
                };
                format!(
                    "process used {amount} of CPU time in one call without returning (runaway loop?)"
                )
            }
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

/// ` (compiled in 2.1 ms)` for a log line (`tier`: what was compiled, as a
/// prefix), or nothing.
fn compiled(tier: &str, compile: Option<Duration>) -> String {
    compile
        .map(|d| format!(" ({tier}compiled in {:.1} ms)", d.as_secs_f64() * 1e3))
        .unwrap_or_default()
}

/// `, 4.2 ms after the file changed` for a log line, or nothing.
fn after(latency: Option<Duration>) -> String {
    latency
        .map(|l| format!(", {:.1} ms after the file changed", l.as_secs_f64() * 1e3))
        .unwrap_or_default()
}
