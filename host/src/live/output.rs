//! Audio output: one cpal output stream, opened once and never stopped while
//! lel-host runs, or, with no usable device, a silent real-time clock that
//! pulls blocks at the same pace. Either way the device (or clock) pulls; the
//! callback it runs is [`crate::rt::callback::AudioCallback`].
//! This file runs on the control thread; the closures it builds run on the
//! audio thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::rt::callback::AudioCallback;

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct OutputRequest {
    /// Device name or id; `None`: the default device; `Some("none")`: no
    /// device, the silent clock.
    pub device: Option<String>,
    pub sample_rate: u32,
    pub channels: u16,
    /// Device buffer in frames (`None`: the device's default).
    pub buffer: Option<u32>,
}

/// A running output.
pub enum Output {
    Device {
        stream: cpal::Stream,
        name: String,
        /// The callback comes back here when the stream is dropped.
        home: mpsc::Receiver<AudioCallback>,
    },
    Silent {
        stop: Arc<AtomicBool>,
        thread: JoinHandle<AudioCallback>,
    },
}

/// A stream error reported by cpal (device gone, xrun), for the control side.
#[derive(Debug)]
pub struct DeviceError {
    pub kind: cpal::ErrorKind,
    pub message: String,
}

impl DeviceError {
    /// Is the stream dead (the device must be reopened)?
    pub fn is_fatal(&self) -> bool {
        !matches!(self.kind, cpal::ErrorKind::Xrun)
    }
}

/// While alive, alsa-lib's own error messages on this thread (two dozen
/// `ALSA lib ...` lines on stderr when there is no sound card) go to the
/// debug log instead: lel-host says what went wrong in its own one line.
/// Every function here that probes or opens a device holds one.
pub struct QuietAlsa {
    #[cfg(target_os = "linux")]
    previous: alsa_sys::snd_local_error_handler_t,
}

impl QuietAlsa {
    pub fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sets alsa-lib's thread-local error handler (it only
            // ever reads it on this thread) to a function of the exact type
            // it expects; the previous handler is restored on drop.
            let previous = unsafe { alsa_sys::snd_lib_error_set_local(Some(alsa_error_to_debug)) };
            QuietAlsa { previous }
        }
        #[cfg(not(target_os = "linux"))]
        QuietAlsa {}
    }
}

impl Default for QuietAlsa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for QuietAlsa {
    fn drop(&mut self) {
        // SAFETY: restores the handler that was set when this guard was made.
        #[cfg(target_os = "linux")]
        unsafe {
            alsa_sys::snd_lib_error_set_local(self.previous);
        }
    }
}

/// alsa-lib's error callback while a [`QuietAlsa`] lives: the location and
/// the unformatted message, at debug level (`LEL_LOG=debug`).
#[cfg(target_os = "linux")]
unsafe extern "C" fn alsa_error_to_debug(
    file: *const std::ffi::c_char,
    line: std::ffi::c_int,
    function: *const std::ffi::c_char,
    err: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    _args: *mut alsa_sys::__va_list_tag,
) {
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            std::borrow::Cow::Borrowed("?")
        } else {
            // SAFETY: alsa-lib passes NUL-terminated static strings
            // (`__FILE__`, `__func__`, the format literal).
            unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy()
        }
    };
    tracing::debug!(
        "alsa-lib {}:{line} ({}): {} (error {err})",
        text(file),
        text(function),
        text(fmt).trim_end()
    );
}

/// The device config lel-host will ask for, if the device can do it.
///
/// # Errors
/// When there is no such device or it cannot play this format.
pub fn open_device(
    req: &OutputRequest,
) -> anyhow::Result<(cpal::Device, cpal::StreamConfig, cpal::SampleFormat, String)> {
    let _quiet = QuietAlsa::new();
    let host = cpal::host_from_id(cpal::default_host().id()).context("no audio host")?;
    let device = match req.device.as_deref() {
        None | Some("default") => host
            .default_output_device()
            .context("no default output device")?,
        Some(name) => host
            .output_devices()
            .context("cannot list output devices")?
            .find(|d| device_names(d).iter().any(|n| n == name))
            .with_context(|| format!("no output device named `{name}` (see `lel-host devices`)"))?,
    };
    let label = device_label(&device);
    let ranges: Vec<_> = device
        .supported_output_configs()
        .with_context(|| format!("{label}: cannot read its configurations"))?
        .collect();
    let preference = [
        cpal::SampleFormat::F32,
        cpal::SampleFormat::I16,
        cpal::SampleFormat::I32,
    ];
    let range = preference
        .iter()
        .find_map(|fmt| {
            ranges.iter().find(|r| {
                r.sample_format() == *fmt
                    && r.channels() == req.channels
                    && r.min_sample_rate() <= req.sample_rate
                    && req.sample_rate <= r.max_sample_rate()
            })
        })
        .with_context(|| {
            format!(
                "{label} cannot play {} channels at {} Hz (see `lel-host devices`)",
                req.channels, req.sample_rate
            )
        })?;
    let config = cpal::StreamConfig {
        channels: req.channels,
        sample_rate: req.sample_rate,
        buffer_size: match req.buffer {
            Some(n) => cpal::BufferSize::Fixed(n),
            None => cpal::BufferSize::Default,
        },
    };
    Ok((device, config, range.sample_format(), label))
}

/// The rate and channel count to play `req` at: its own if the device can
/// play them; otherwise, for whichever the user left open (`adapt_*`), the
/// device's default. `None` when the device cannot be opened at all (the
/// caller then reports it and uses the silent clock).
pub fn fit(req: &OutputRequest, adapt_rate: bool, adapt_channels: bool) -> Option<(u32, u16)> {
    let _quiet = QuietAlsa::new();
    if open_device(req).is_ok() {
        return Some((req.sample_rate, req.channels));
    }
    let host = cpal::host_from_id(cpal::default_host().id()).ok()?;
    let device = match req.device.as_deref() {
        None | Some("default") => host.default_output_device()?,
        Some(name) => host
            .output_devices()
            .ok()?
            .find(|d| device_names(d).iter().any(|n| n == name))?,
    };
    let default = device.default_output_config().ok()?;
    let rate = if adapt_rate {
        default.sample_rate()
    } else {
        req.sample_rate
    };
    let channels = if adapt_channels {
        default.channels()
    } else {
        req.channels
    };
    let candidate = OutputRequest {
        sample_rate: rate,
        channels,
        ..req.clone()
    };
    open_device(&candidate).ok().map(|_| (rate, channels))
}

fn device_names(d: &cpal::Device) -> Vec<String> {
    let mut names = vec![d.to_string()];
    if let Ok(id) = d.id() {
        names.push(id.id().to_string());
    }
    if let Ok(desc) = d.description() {
        names.push(desc.name().to_string());
    }
    names
}

fn device_label(d: &cpal::Device) -> String {
    match d.id() {
        Ok(id) => format!("device `{}`", id.id()),
        Err(_) => format!("device `{d}`"),
    }
}

/// Returns the callback to its owner when the stream drops it.
struct Homing {
    callback: Option<AudioCallback>,
    home: mpsc::Sender<AudioCallback>,
}

impl Drop for Homing {
    fn drop(&mut self) {
        if let Some(cb) = self.callback.take() {
            let _ = self.home.send(cb);
        }
    }
}

/// A device that could not be started, with the callback (and so every
/// signal and its state) handed back.
pub struct StartFailure {
    pub callback: AudioCallback,
    pub error: anyhow::Error,
}

/// Start the device stream; on failure give the callback back with the reason.
pub fn start_device(
    req: &OutputRequest,
    callback: AudioCallback,
    errors: mpsc::Sender<DeviceError>,
) -> Result<Output, Box<StartFailure>> {
    let _quiet = QuietAlsa::new();
    let (device, config, format, label) = match open_device(req) {
        Ok(x) => x,
        Err(error) => return Err(Box::new(StartFailure { callback, error })),
    };
    let (home_tx, home_rx) = mpsc::channel();
    let homing = Homing {
        callback: Some(callback),
        home: home_tx,
    };
    // cpal calls this from its stream thread, on errors only.
    let err_fn = move |e: cpal::Error| {
        let _ = errors.send(DeviceError {
            kind: e.kind(),
            message: e.to_string(),
        });
    };
    let built = match format {
        cpal::SampleFormat::F32 => build::<f32>(&device, config, homing, err_fn, |cb, out| {
            cb.process_f32(out)
        }),
        cpal::SampleFormat::I16 => build::<i16>(&device, config, homing, err_fn, |cb, out| {
            cb.process_with(out, |s| (s.clamp(-1.0, 1.0) * i16::MAX as f32) as i16)
        }),
        _ => build::<i32>(&device, config, homing, err_fn, |cb, out| {
            cb.process_with(out, |s| {
                (s.clamp(-1.0, 1.0) as f64 * i32::MAX as f64) as i32
            })
        }),
    };
    let stream = match built.and_then(|s| s.play().map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            // The closure (and the callback inside it) was dropped: it came home.
            let cb = home_rx
                .recv()
                .expect("the callback returns when the stream is dropped");
            return Err(Box::new(StartFailure {
                callback: cb,
                error: anyhow::anyhow!("{label}: {e}"),
            }));
        }
    };
    Ok(Output::Device {
        stream,
        name: label,
        home: home_rx,
    })
}

fn build<T: cpal::SizedSample>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut homing: Homing,
    err_fn: impl FnMut(cpal::Error) + Send + 'static,
    mut fill: impl FnMut(&mut AudioCallback, &mut [T]) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    device.build_output_stream(
        config,
        move |out: &mut [T], _info: &cpal::OutputCallbackInfo| {
            if let Some(cb) = homing.callback.as_mut() {
                fill(cb, out);
            }
        },
        err_fn,
        None,
    )
}

/// Buffers the silent clock keeps queued ahead of what it plays, like a
/// device with a buffer of four periods (10.7 ms for 128 frames at 48 kHz,
/// still less than most devices' default): a block may take up to three
/// buffer periods before the output runs dry.
const SILENT_HEADROOM: u32 = 3;

/// Start the silent clock: a thread that behaves like a device. It plays one
/// buffer per period from a queue of [`SILENT_HEADROOM`] buffers and asks for
/// the next one whenever the queue has room; the buffer is discarded. When a
/// buffer is not ready by the time the queue runs dry, that is a late block,
/// and the time until it is ready is lost (a device would have played
/// silence); like a device after an xrun the clock then goes on from the
/// moment the buffer came. Every missed deadline and all lost time are
/// counted ([`AudioCallback::missed_deadline`]), never hidden.
///
/// # Errors
/// When the thread cannot be started.
pub fn start_silent(callback: AudioCallback, buffer_frames: u32) -> std::io::Result<Output> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("lel-clock".into())
        .spawn(move || {
            let mut cb = callback;
            cb.set_clocked(true);
            let period = Duration::from_secs_f64(buffer_frames as f64 / cb.sample_rate() as f64);
            let headroom = period * SILENT_HEADROOM;
            let mut buf = vec![0.0f32; buffer_frames as usize * cb.channels()];
            // When the queued audio runs out (the device starts after the
            // first buffers, as a device prefills).
            let mut end = Instant::now() + headroom;
            while !stop2.load(Ordering::Relaxed) {
                cb.process_f32(&mut buf);
                let ready = Instant::now();
                if ready > end {
                    cb.missed_deadline((ready - end).as_nanos() as u64);
                    end = ready;
                }
                end += period;
                let ask = end - headroom;
                let now = Instant::now();
                if ask > now {
                    std::thread::sleep(ask - now);
                }
            }
            cb.set_clocked(false);
            cb
        })?;
    Ok(Output::Silent { stop, thread })
}

impl Output {
    pub fn describe(&self) -> String {
        match self {
            Output::Device { name, .. } => name.clone(),
            Output::Silent { .. } => "the silent clock (no device)".to_string(),
        }
    }

    /// Stop the output and get the callback (with the mixer and every
    /// signal's state) back.
    pub fn stop(self) -> Option<AudioCallback> {
        match self {
            Output::Device { stream, home, .. } => {
                drop(stream);
                home.recv_timeout(Duration::from_secs(2)).ok()
            }
            Output::Silent { stop, thread } => {
                stop.store(true, Ordering::Relaxed);
                thread.join().ok()
            }
        }
    }
}

/// `lel-host devices`: every output device with what it supports, one line
/// per sample format (channel counts and buffer sizes folded into ranges).
///
/// # Errors
/// When the audio host cannot list devices.
pub fn list_devices() -> anyhow::Result<String> {
    let _quiet = QuietAlsa::new();
    let host = cpal::host_from_id(cpal::default_host().id()).context("no audio host")?;
    let mut out = String::new();
    let default = host
        .default_output_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.id().to_string());
    let mut any = false;
    for d in host
        .output_devices()
        .context("cannot list output devices")?
    {
        any = true;
        let id = d
            .id()
            .map(|i| i.id().to_string())
            .unwrap_or_else(|_| d.to_string());
        let name = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_default();
        let mark = if default.as_deref() == Some(id.as_str()) {
            " (default)"
        } else {
            ""
        };
        out.push_str(&format!("{id}{mark}: {name}\n"));
        let ranges = match d.supported_output_configs() {
            Ok(r) => r.collect::<Vec<_>>(),
            Err(e) => {
                out.push_str(&format!("    unavailable: {e}\n"));
                continue;
            }
        };
        for g in FormatGroup::fold(&ranges) {
            let ch = if g.channels.0 == g.channels.1 {
                format!("{} ch", g.channels.0)
            } else {
                format!("{}..{} ch", g.channels.0, g.channels.1)
            };
            let buffer = match g.buffer {
                Some((a, b)) => format!("buffer {a}..{b} frames"),
                None => "buffer size unknown".to_string(),
            };
            out.push_str(&format!(
                "    {ch}, {}..{} Hz, {}, {buffer}\n",
                g.rates.0, g.rates.1, g.format
            ));
        }
    }
    if !any {
        out.push_str("no output devices\n");
    }
    Ok(out)
}

/// Supported configurations of one sample format and rate range, with the
/// channel counts and buffer sizes folded into ranges.
struct FormatGroup {
    format: String,
    rates: (u32, u32),
    channels: (u16, u16),
    buffer: Option<(u32, u32)>,
}

impl FormatGroup {
    fn fold(ranges: &[cpal::SupportedStreamConfigRange]) -> Vec<FormatGroup> {
        let mut groups: Vec<FormatGroup> = Vec::new();
        for r in ranges {
            let format = r.sample_format().to_string();
            let rates = (r.min_sample_rate(), r.max_sample_rate());
            let buffer = match r.buffer_size() {
                cpal::SupportedBufferSize::Range { min, max } => Some((*min, *max)),
                cpal::SupportedBufferSize::Unknown => None,
            };
            match groups
                .iter_mut()
                .find(|g| g.format == format && g.rates == rates)
            {
                Some(g) => {
                    g.channels = (
                        g.channels.0.min(r.channels()),
                        g.channels.1.max(r.channels()),
                    );
                    g.buffer = match (g.buffer, buffer) {
                        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                        (b, _) => b,
                    };
                }
                None => groups.push(FormatGroup {
                    format,
                    rates,
                    channels: (r.channels(), r.channels()),
                    buffer,
                }),
            }
        }
        groups
    }
}
