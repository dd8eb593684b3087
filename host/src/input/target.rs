//! What the sources of control need from the engine's control side: the
//! signals playing, their parameters, setting one, sending an event, and the
//! frame the next block starts at. Implemented by the live `Control` and the
//! offline `Renderer` (which delegates to its `Control`). Non-real-time: the
//! thread holding the control side.

use super::Play;
use crate::control::{Control, ParamInfo};
use crate::offline::Renderer;
use crate::rt::messages::NoteEvent;

/// The engine's control side, as the sources of control use it.
pub trait Target {
    /// The names of the signals playing, sorted.
    fn signals(&self) -> Vec<String>;
    /// `signal`'s parameters (`None`: no such signal is playing).
    fn params(&self, signal: &str) -> Option<Vec<ParamInfo>>;
    /// Set a parameter from frame `at` on; returns the value applied (snapped).
    ///
    /// # Errors
    /// Unknown signal or parameter, value out of range (named); nothing changes.
    fn set_param(&mut self, signal: &str, key: &str, value: f32, at: u64) -> anyhow::Result<f32>;
    /// Send a note, controller, bend or pressure event for frame `at`.
    ///
    /// # Errors
    /// Unknown signal, full queue; nothing changes.
    fn send_event(&mut self, signal: &str, play: Play, at: u64) -> anyhow::Result<()>;
    /// The frame the next block starts at.
    fn now(&self) -> u64;
}

impl Play {
    /// The event as the contract delivers it.
    pub fn to_event(self) -> NoteEvent {
        match self {
            Play::NoteOn {
                channel,
                key,
                velocity,
            } => NoteEvent::note_on(channel, key, velocity),
            Play::NoteOff {
                channel,
                key,
                velocity,
            } => NoteEvent::note_off(channel, key, velocity),
            Play::Control {
                channel,
                controller,
                value,
            } => NoteEvent::control_change(channel, controller, value),
            Play::PitchBend { channel, value } => NoteEvent::pitch_bend(channel, value),
            Play::Pressure { channel, value } => NoteEvent::channel_pressure(channel, value),
        }
    }
}

impl Target for Control {
    fn signals(&self) -> Vec<String> {
        Control::signals(self)
    }
    fn params(&self, signal: &str) -> Option<Vec<ParamInfo>> {
        Control::params(self, signal)
    }
    fn set_param(&mut self, signal: &str, key: &str, value: f32, at: u64) -> anyhow::Result<f32> {
        Control::set_param(self, signal, key, value, at)
    }
    fn send_event(&mut self, signal: &str, play: Play, at: u64) -> anyhow::Result<()> {
        Control::send_event(self, signal, play.to_event(), at)
    }
    fn now(&self) -> u64 {
        self.clock()
    }
}

impl Target for Renderer {
    fn signals(&self) -> Vec<String> {
        Renderer::signals(self)
    }
    fn params(&self, signal: &str) -> Option<Vec<ParamInfo>> {
        Renderer::params(self, signal)
    }
    fn set_param(&mut self, signal: &str, key: &str, value: f32, at: u64) -> anyhow::Result<f32> {
        Renderer::set_param(self, signal, key, value, at)
    }
    fn send_event(&mut self, signal: &str, play: Play, at: u64) -> anyhow::Result<()> {
        Renderer::send_event(self, signal, play.to_event(), at)
    }
    fn now(&self) -> u64 {
        self.clock()
    }
}
