//! What the sources of control need from the engine's control side: the
//! signals playing, their parameters, setting one, sending an event, and the
//! frame the next block starts at. Implemented by the live `Control` and the
//! offline `Renderer` (which delegates to its `Control`). Non-real-time: the
//! thread holding the control side.

use super::Play;

/// A parameter as the sources see it (for OSC queries and MIDI CC scaling).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamView {
    pub key: String,
    pub value: f32,
    pub default: f32,
    pub min: f32,
    pub max: f32,
    pub unit: String,
    pub steps: u32,
}

/// The engine's control side, as the sources of control use it.
pub trait Target {
    /// The names of the signals playing, sorted.
    fn signals(&self) -> Vec<String>;
    /// `signal`'s parameters (`None`: no such signal is playing).
    fn params(&self, signal: &str) -> Option<Vec<ParamView>>;
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

// TEMPORARY until the 0.2 control side lands in main.
impl Target for crate::control::Control {
    fn signals(&self) -> Vec<String> {
        crate::control::Control::signals(self)
    }
    fn params(&self, _signal: &str) -> Option<Vec<ParamView>> {
        None
    }
    fn set_param(&mut self, _: &str, _: &str, _: f32, _: u64) -> anyhow::Result<f32> {
        anyhow::bail!("no parameters yet")
    }
    fn send_event(&mut self, _: &str, _: Play, _: u64) -> anyhow::Result<()> {
        anyhow::bail!("no events yet")
    }
    fn now(&self) -> u64 {
        self.clock()
    }
}

impl Target for crate::offline::Renderer {
    fn signals(&self) -> Vec<String> {
        Vec::new()
    }
    fn params(&self, _signal: &str) -> Option<Vec<ParamView>> {
        None
    }
    fn set_param(&mut self, _: &str, _: &str, _: f32, _: u64) -> anyhow::Result<f32> {
        anyhow::bail!("no parameters yet")
    }
    fn send_event(&mut self, _: &str, _: Play, _: u64) -> anyhow::Result<()> {
        anyhow::bail!("no events yet")
    }
    fn now(&self) -> u64 {
        self.clock()
    }
}
