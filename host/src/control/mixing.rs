//! Mixing controls on the control side: per-signal gain, mute and solo, sent
//! through the control-event queue (wait-free, apart from the load queue) and
//! applied by the audio thread at the exact frame given, ramped over the fade
//! time. Frames count on the engine's clock from its start:
//! [`Control::clock`] is the frame the next block starts at; a frame already
//! past applies at the start of the next block. Non-real-time (any thread
//! holding the `Control`).

use std::sync::atomic::Ordering;

use super::Control;
use crate::rt::messages::{ControlEvent, ControlKind};

impl Control {
    /// The frame the audio thread's next block starts at.
    pub fn clock(&self) -> u64 {
        self.link.clock.load(Ordering::Relaxed)
    }

    /// Set `signal`'s linear gain (0 to 16) from frame `at` on.
    ///
    /// # Errors
    /// See [`Control::send_control`]; also a gain out of range.
    pub fn set_gain(&mut self, signal: &str, gain: f32, at: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            gain.is_finite() && (0.0..=16.0).contains(&gain),
            "gain {gain} for {signal} is out of range (0 to 16)"
        );
        self.send_control(signal, ControlKind::Gain(gain), at)
    }

    /// Mute (`true`) or unmute `signal` from frame `at` on. A muted signal
    /// keeps running, silent.
    ///
    /// # Errors
    /// See [`Control::send_control`].
    pub fn mute(&mut self, signal: &str, on: bool, at: u64) -> anyhow::Result<()> {
        self.send_control(signal, ControlKind::Mute(on), at)
    }

    /// Solo (`true`) or unsolo `signal` from frame `at` on: while any signal
    /// is soloed, only soloed signals are heard (a muted one stays muted).
    ///
    /// # Errors
    /// See [`Control::send_control`].
    pub fn solo(&mut self, signal: &str, on: bool, at: u64) -> anyhow::Result<()> {
        self.send_control(signal, ControlKind::Solo(on), at)
    }

    /// Queue a control event for `signal` at frame `at`.
    ///
    /// # Errors
    /// No signal of that name is loaded, or the queue is full (the audio
    /// thread is not running, or events come faster than it takes them).
    pub fn send_control(&mut self, signal: &str, kind: ControlKind, at: u64) -> anyhow::Result<()> {
        let slot = self
            .signals
            .get(signal)
            .map(|r| r.slot)
            .ok_or_else(|| anyhow::anyhow!("no signal named `{signal}` is loaded"))?;
        self.link
            .controls
            .push(ControlEvent { at, slot, kind })
            .map_err(|_| {
                anyhow::anyhow!(
                    "the control-event queue is full: the audio thread is not taking events \
                     (stopped, or events come faster than blocks); {signal} is unchanged"
                )
            })
    }
}
