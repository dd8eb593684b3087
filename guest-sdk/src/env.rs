//! Envelopes: a linear ADSR (and AR) driven by a gate parameter, whose
//! output is a mono level in `[0, 1]` (use it with `.gain(...)` or `*`).

use bytemuck::{Pod, Zeroable};

use crate::claim::{Binder, Error, One};
use crate::ctx::Ctx;
use crate::key::Key;
use crate::math::clamp;
use crate::node::{Node, node_ops};
use crate::param::Param;

/// Envelope state. Key `env#n`; 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EnvState {
    /// Current level.
    pub level: f64,
    /// 0 idle, 1 attack, 2 decay, 3 sustain, 4 release.
    pub stage: u32,
    /// The gate at the previous sample (0 or 1).
    pub gate: u32,
}

const IDLE: u32 = 0;
const ATTACK: u32 = 1;
const DECAY: u32 = 2;
const SUSTAIN: u32 = 3;
const RELEASE: u32 = 4;

/// Linear ADSR envelope. The gate is on while its parameter is `> 0`.
///
/// A rising gate starts the attack from the current level (no click on
/// retrigger); a falling gate starts the release from wherever it is.
/// Per sample (`sr` the sample rate, times in seconds):
/// attack `level += 1 / (attack * sr)` up to 1; decay
/// `level -= (1 - sustain) / (decay * sr)` down to `sustain`; sustain
/// `level = sustain`; release `level -= 1 / (release * sr)` down to 0
/// (so `release` is the fall time from full level). A time under one
/// sample makes its step immediate.
pub struct Env<G, A, D, S, R> {
    gate: G,
    attack: A,
    decay: D,
    sustain: S,
    release: R,
    key: Key,
    state: One<EnvState>,
    sr: f64,
}

/// The per-sample step of a segment lasting `seconds` over a distance of 1.
#[inline(always)]
fn step(seconds: f64, sr: f64) -> f64 {
    let n = seconds * sr;
    if n > 1.0 { 1.0 / n } else { 1.0 }
}

impl<G: Param, A: Param, D: Param, S: Param, R: Param> Env<G, A, D, S, R> {
    /// Claims the state under `name` instead of `env#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl<G: Param, A: Param, D: Param, S: Param, R: Param> Node for Env<G, A, D, S, R> {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.gate.bind(b)?;
        self.attack.bind(b)?;
        self.decay.bind(b)?;
        self.sustain.bind(b)?;
        self.release.bind(b)?;
        self.state = b.claim_one(&self.key)?;
        self.sr = b.sample_rate();
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 1] {
        let on = self.gate.get(cx) > 0.0;
        let attack = self.attack.get(cx);
        let decay = self.decay.get(cx);
        // NaN sustain becomes 0.
        let sustain = clamp(self.sustain.get(cx), 0.0, 1.0);
        let release = self.release.get(cx);
        let sr = self.sr;
        let Some(st) = self.state.get() else {
            return [0.0];
        };
        let was_on = st.gate != 0;
        if on && !was_on {
            st.stage = ATTACK;
        } else if !on && was_on {
            st.stage = RELEASE;
        }
        st.gate = on as u32;
        match st.stage {
            ATTACK => {
                st.level += step(attack, sr);
                if st.level >= 1.0 {
                    st.level = 1.0;
                    st.stage = DECAY;
                }
            }
            DECAY => {
                st.level -= (1.0 - sustain) * step(decay, sr);
                if st.level <= sustain {
                    st.level = sustain;
                    st.stage = SUSTAIN;
                }
            }
            SUSTAIN => st.level = sustain,
            RELEASE => {
                st.level -= step(release, sr);
                if st.level <= 0.0 {
                    st.level = 0.0;
                    st.stage = IDLE;
                }
            }
            _ => {
                st.level = 0.0;
                st.stage = IDLE;
            }
        }
        [st.level]
    }
}

/// ADSR envelope: `gate` on while `> 0`; `attack`, `decay`, `release` in
/// seconds, `sustain` a level in `[0, 1]`. Mono output in `[0, 1]`.
pub fn adsr<G: Param, A: Param, D: Param, S: Param, R: Param>(
    gate: G,
    attack: A,
    decay: D,
    sustain: S,
    release: R,
) -> Env<G, A, D, S, R> {
    Env {
        gate,
        attack,
        decay,
        sustain,
        release,
        key: Key::auto("env"),
        state: One::empty(),
        sr: 0.0,
    }
}

/// AR envelope: `adsr(gate, attack, 0.0, 1.0, release)` (rises to 1 and
/// holds while the gate is on).
pub fn ar<G: Param, A: Param, R: Param>(gate: G, attack: A, release: R) -> Env<G, A, f64, f64, R> {
    adsr(gate, attack, 0.0, 1.0, release)
}

node_ops! {
    [G: Param, A: Param, D: Param, S: Param, R: Param] Env<G, A, D, S, R>;
}
