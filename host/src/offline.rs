//! Offline rendering: the engine driven by a loop instead of a device. The
//! same mixer as the live callback renders blocks as fast as the CPU allows;
//! the control side runs on the same (non-real-time) thread between blocks.
//! This is the library face tests use: load a version, render N frames,
//! load another, render on.

use std::path::Path;

use anyhow::Context as _;

use crate::control::{Control, Notice, Request, Settings};
use crate::files::signal_name;
use crate::loader::LoadReport;
use crate::rt::mixer::Mixer;

/// The basic shape of an offline render.
#[derive(Clone, Copy, Debug)]
pub struct RenderSettings {
    pub sample_rate: u32,
    pub channels: usize,
    pub block: u32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            sample_rate: 48_000,
            channels: 2,
            block: 128,
        }
    }
}

/// An engine rendering to memory.
pub struct Renderer {
    control: Control,
    mixer: Mixer,
    notices: Vec<Notice>,
}

impl Renderer {
    /// # Errors
    /// When the WebAssembly runtime cannot be set up.
    pub fn new(s: RenderSettings) -> anyhow::Result<Self> {
        Self::with_settings(Settings {
            sample_rate: s.sample_rate,
            channels: s.channels,
            block: s.block,
            ..Settings::default()
        })
    }

    /// # Errors
    /// When the WebAssembly runtime cannot be set up.
    pub fn with_settings(settings: Settings) -> anyhow::Result<Self> {
        let (control, mixer) = Control::new(settings)?;
        Ok(Renderer {
            control,
            mixer,
            notices: Vec::new(),
        })
    }

    /// Load a `.wasm` or `.wat` file as the signal named after its stem; if
    /// that signal plays already, the new version swaps in at the next block.
    ///
    /// # Errors
    /// The file and what is wrong with it; the playing version keeps playing.
    pub fn load(&mut self, path: &Path) -> anyhow::Result<Option<LoadReport>> {
        let name = signal_name(path);
        let outcome = self
            .control
            .load_request(Request::file(name, path.to_path_buf()))
            .with_context(|| path.display().to_string())?;
        Ok(outcome.report())
    }

    /// Load module bytes (binary, or WAT text) as `signal`.
    ///
    /// # Errors
    /// What is wrong with the module; the playing version keeps playing.
    pub fn load_bytes(&mut self, signal: &str, bytes: &[u8]) -> anyhow::Result<Option<LoadReport>> {
        let binary = crate::contract::to_binary(bytes, !bytes.starts_with(b"\0asm"))
            .context(signal.to_string())?;
        let outcome = self
            .control
            .load(signal, &binary, None)
            .context(signal.to_string())?;
        Ok(outcome.report())
    }

    /// Fade a signal out and unload it.
    pub fn unload(&mut self, signal: &str) -> bool {
        self.control.unload(signal)
    }

    /// Render `frames` frames (interleaved).
    pub fn render(&mut self, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * self.mixer.config().channels];
        self.render_into(&mut out);
        out
    }

    /// Render into `out` (a whole number of interleaved frames).
    pub fn render_into(&mut self, out: &mut [f32]) {
        // Guest calls on this thread are judged by its CPU time.
        crate::rt::cpu::ensure_registered();
        // Denormals flushed for the whole render, not set and restored for
        // every block (the control side's work between blocks runs with
        // them flushed too).
        let _ftz = crate::rt::guard::ScopedFtz::enable();
        let step = self.mixer.config().block as usize * self.mixer.config().channels;
        for chunk in out.chunks_mut(step) {
            // Versions handed over beyond the queue's room join now, in order.
            self.control.send_unsent();
            self.mixer.render(chunk);
            self.control.set_running();
            let n = self.control.poll();
            self.notices.extend(n);
            // Versions the control side asked for itself (a restart with
            // fresh state) are waited for and handed over before the next
            // block: offline there is no deadline, and so they join at the
            // same block in every render, however busy the machine.
            while self.control.loading() {
                for loaded in self
                    .control
                    .take_loaded(std::time::Duration::from_millis(100))
                {
                    loaded.log();
                }
            }
        }
    }

    /// Record everything from now on as a session in `dir` (as `run
    /// --session DIR` does; `lel-host replay DIR` renders it again). Call it
    /// before the first load.
    ///
    /// # Errors
    /// When the folder cannot be created or holds a session already.
    pub fn record_session(&mut self, dir: &Path) -> anyhow::Result<()> {
        let w = crate::session::Writer::create(dir, self.control.settings())?;
        self.control.record_session(w);
        Ok(())
    }

    /// Finish the session being recorded (its `end` is the clock now).
    ///
    /// # Errors
    /// When it could not be written completely.
    pub fn finish_session(&mut self) -> anyhow::Result<()> {
        self.control.finish_session()
    }

    /// Events since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    pub fn control(&mut self) -> &mut Control {
        &mut self.control
    }

    /// Blocks rendered by more than one thread so far.
    pub fn parallel_blocks(&self) -> u64 {
        self.mixer.parallel_blocks()
    }

    /// Threads that render (the calling thread plus the pool's workers).
    pub fn threads(&self) -> usize {
        self.mixer.threads()
    }

    /// Frames rendered so far.
    pub fn clock(&self) -> u64 {
        self.mixer.clock()
    }
}

/// Mixing controls at exact frames (see [`Control::set_gain`]); `at` counts
/// frames from the start of the render ([`Renderer::clock`] is the next
/// block's first frame).
impl Renderer {
    /// # Errors
    /// An unknown signal, a gain out of range or a full queue.
    pub fn set_gain(&mut self, signal: &str, gain: f32, at: u64) -> anyhow::Result<()> {
        self.control.set_gain(signal, gain, at)
    }

    /// # Errors
    /// An unknown signal or a full queue.
    pub fn mute(&mut self, signal: &str, on: bool, at: u64) -> anyhow::Result<()> {
        self.control.mute(signal, on, at)
    }

    /// # Errors
    /// An unknown signal or a full queue.
    pub fn solo(&mut self, signal: &str, on: bool, at: u64) -> anyhow::Result<()> {
        self.control.solo(signal, on, at)
    }
}

/// Parameters and note events (`lel:signal@0.2.0`, see
/// [`Control::set_param`], [`Control::send_event`], [`Control::params`]);
/// `at` counts frames from the start of the render.
impl Renderer {
    /// Set parameter `key` of `signal` to `value` from frame `at` on;
    /// returns the value applied (snapped to the parameter's steps).
    ///
    /// # Errors
    /// An unknown signal or parameter, a value out of range (the message
    /// names signal, parameter and range), or a full queue; nothing changes.
    pub fn set_param(
        &mut self,
        signal: &str,
        key: &str,
        value: f32,
        at: u64,
    ) -> anyhow::Result<f32> {
        self.control.set_param(signal, key, value, at)
    }

    /// Send a note or controller event to `signal` at frame `at`.
    ///
    /// # Errors
    /// An unknown signal, a value out of range, or a full queue.
    pub fn send_event(
        &mut self,
        signal: &str,
        event: crate::rt::messages::NoteEvent,
        at: u64,
    ) -> anyhow::Result<()> {
        self.control.send_event(signal, event, at)
    }

    /// The parameters of `signal`'s current version with their values.
    pub fn params(&self, signal: &str) -> Option<Vec<crate::control::ParamInfo>> {
        self.control.params(signal)
    }

    /// The names of the signals playing.
    pub fn signals(&self) -> Vec<String> {
        self.control.signals()
    }
}
