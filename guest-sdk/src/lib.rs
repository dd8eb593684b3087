//! `lel`: the Rust guest SDK for lel-host. Write a signal in a few lines of
//! `#![no_std]` Rust, build it for `wasm32-unknown-unknown`, play it with
//! `lel-host run`, and hot-swap it without losing its phases, filter memories
//! or delay lines.
//!
//! ```
//! use lel::prelude::*;
//!
//! // What `lel::signal!` turns into the module's exports (`memory`,
//! // `state-ptr`, `state-len`, `init`, `process`):
//! fn signal() -> impl Node {
//!     osc(440).lowpass(800).tremolo(5, 0.8).delay(0.5, 0.25).gain(0.4)
//! }
//!
//! // The same signal, rendered natively (tests, offline checks):
//! let mut h = lel::testing::Harness::new(48_000, signal).unwrap();
//! assert!(h.render(480).iter().all(|s| s.is_finite()));
//! ```
//!
//! In a guest crate (`crate-type = ["cdylib"]`) the whole module is:
//!
//! ```text
//! #![cfg_attr(target_arch = "wasm32", no_std)]
//! use lel::prelude::*;
//! lel::signal!(osc(440).gain(0.5));
//! ```
//!
//! * [`Node`] is a signal: a source (`osc`, `noise`, `adsr`, `func`, ...)
//!   with helpers chained on it (`.lowpass(800)`, `.pan(...)`, ...); `+` sums
//!   two signals, `*` multiplies them.
//! * [`Param`] is a parameter: a constant (`800`, `0.4`), a function of the
//!   context (`|c: &Ctx| 0.5 + 0.5 * sin(c.t)`), or a mono signal
//!   (`osc(0.2).range(400, 2000)`).
//! * Every stateful helper claims its own block of the state region under a
//!   stable key (`osc#0`, `lowpass#1`, or a name given with `.named("warm")`),
//!   which the host carries over to the next version of the signal.
//!
//! The algorithms are specified exactly in the crate's README ("Algorithms"),
//! so that the C, Zig and AssemblyScript SDKs compute the same samples.

#![no_std]

#[cfg(not(target_arch = "wasm32"))]
extern crate std;

mod claim;
pub mod contract;
mod ctx;
mod env;
pub mod events;
mod filter;
mod frame;
mod func;
mod fx;
mod key;
mod knob;
pub mod log;
pub mod math;
mod node;
mod notes;
mod osc;
mod param;
mod poly;
#[doc(hidden)]
pub mod rt;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bytemuck;

pub use claim::{
    Binder, Block, Bump, CLAIM_ALIGN, Claimer, Error, One, ParamDecl, check_claim, check_param,
};
pub use ctx::Ctx;
pub use env::{Env, EnvState, adsr, ar};
pub use events::{Event, NoteState};
pub use filter::{
    Biquad, BiquadState, Coefficients, Highpass, Lowpass, Mode, one_pole_coefficient,
};
pub use frame::Frame;
pub use func::{Func, SLOTS, Slots, Value, func, silence, value};
pub use fx::{
    Append, Delay, DelayHead, Gain, Join, Map, Pan, PanFrame, Prod, Range, Sum, Tremolo, Upmix,
    pan_gains, stereo,
};
pub use key::Key;
pub use knob::{DEFAULT_SMOOTH, Knob, param};
pub use node::Node;
pub use notes::{NoteValue, bend, cc, gate, key, pitch, pressure, velocity};
pub use osc::{
    Noise, NoiseState, Osc, OscState, Saw, Sine, Square, Triangle, Wave, noise, osc, saw, sine,
    square, triangle,
};
pub use param::Param;
pub use poly::{MAX_VOICES, Poly, PolyState, Voice, VoiceSlot, VoiceValue, poly};

/// Default size of the state region in bytes (1 MiB): room for about five
/// seconds of mono delay line at 48 kHz besides everything else. Change it
/// with `lel::signal!(..., state = BYTES)`.
pub const DEFAULT_STATE_BYTES: usize = contract::DEFAULT_STATE_BYTES;

/// Default size of the static output buffer in samples (frames x channels).
/// On wasm32 a larger `max-frames` grows memory for the buffer instead.
pub const DEFAULT_OUTPUT_SAMPLES: usize = contract::DEFAULT_OUTPUT_SAMPLES;

/// Everything a signal needs: `use lel::prelude::*;`.
pub mod prelude {
    pub use crate::math::{PI, TAU, cos, exp, floor, hz_from_midi, sin, tanh};
    pub use crate::{
        Ctx, Mode, Node, Param, Voice, adsr, ar, bend, cc, func, gate, key, noise, osc, param,
        pitch, poly, pressure, saw, silence, sine, square, stereo, triangle, value, velocity,
    };
}

/// Declares the module's signal and emits the contract's exports.
///
/// ```text
/// lel::signal!(osc(440).gain(0.5));
/// lel::signal!({ let lfo = osc(0.25).range(300, 3000); saw(110).lpf(lfo, 4) });
/// lel::signal!(osc(110).delay(4.0, 1.5), state = 4 << 20);   // bigger state region
/// lel::signal!(osc(110), state = 1 << 16, output = 1 << 15); // and output buffer
/// ```
///
/// It defines `fn lel_signal() -> impl lel::Node` from the expression, the
/// runtime's statics (state region, output buffer, the built graph) and the
/// exports `state-ptr`, `state-len`, `init`, `process` (on wasm32; natively
/// they are the plain functions `lel_state_ptr`, `lel_state_len`, `lel_init`,
/// `lel_process`). Use it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! signal {
    ($body:expr $(, state = $state:expr)? $(, output = $out:expr)? $(,)?) => {
        /// The signal of this module (also usable with `lel::testing::Harness`).
        pub fn lel_signal() -> impl $crate::Node {
            $body
        }

        #[doc(hidden)]
        pub static __LEL_RUNTIME: $crate::rt::Runtime<
            { $crate::__or!($($state)? ; $crate::DEFAULT_STATE_BYTES) },
            { $crate::__or!($($out)? ; $crate::DEFAULT_OUTPUT_SAMPLES) },
        > = $crate::rt::Runtime::new();

        /// Contract export `state-ptr`: address of the state region.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "state-ptr"))]
        pub extern "C" fn lel_state_ptr() -> u32 {
            __LEL_RUNTIME.state_ptr()
        }

        /// Contract export `state-len`: length of the state region in bytes.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "state-len"))]
        pub extern "C" fn lel_state_len() -> u32 {
            __LEL_RUNTIME.state_len()
        }

        /// Contract export `events-ptr`: address of the event buffer.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "events-ptr"))]
        pub extern "C" fn lel_events_ptr() -> u32 {
            __LEL_RUNTIME.events_ptr()
        }

        /// Contract export `events-len`: length of the event buffer in bytes.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "events-len"))]
        pub extern "C" fn lel_events_len() -> u32 {
            __LEL_RUNTIME.events_len()
        }

        /// Contract export `init`: claims state, returns the channel count.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "init"))]
        pub extern "C" fn lel_init(sample_rate: u32, max_frames: u32) -> i32 {
            __LEL_RUNTIME.init(sample_rate, max_frames, lel_signal)
        }

        /// Contract export `process`: renders a block with the `events`
        /// events the host wrote into the event buffer, returns its address.
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = "process"))]
        pub extern "C" fn lel_process(frames: u32, clock: u64, events: u32) -> u32 {
            __LEL_RUNTIME.process(frames, clock, events, lel_signal)
        }
    };
}

/// `pipe!(source, helper(args), ...)`: the original engine's `pipe`, as a
/// method chain. `pipe!(osc(440), lowpass(800), gain(0.4))` is
/// `osc(440).lowpass(800).gain(0.4)`.
#[macro_export]
macro_rules! pipe {
    ($src:expr $(, $helper:ident ( $($arg:expr),* $(,)? ))* $(,)?) => {
        $src $(.$helper($($arg),*))*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __or {
    ($v:expr ; $d:expr) => {
        $v
    };
    ( ; $d:expr) => {
        $d
    };
}

/// Traps (wasm `unreachable`): the host reports the trap and keeps playing
/// the previous version. Release builds never reach it from the SDK's own
/// code paths.
#[cfg(all(target_arch = "wasm32", feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
