//! SuperCollider's side of the benchmark: the compiled SynthDef file (SCgf,
//! version 2) of one voice of the workload, and the NRT score (a file of
//! length-prefixed OSC bundles) that starts N voices and ends after S
//! seconds. Written from the published file formats; no `sclang` needed.
//! Runs on the benchmark's thread.

/// One voice, the same graph as `bench-voices`: SinOsc (table sine, linear
/// interpolation) -> OnePole -> `* amp` -> Pan2 (equal power) -> Out to
/// buses 0 and 1. Controls: freq, coef (OnePole's feedback, `1 - a`), amp, pos.
pub fn synthdef(name: &str) -> Vec<u8> {
    const KR: u8 = 1;
    const AR: u8 = 2;
    // (class, rate, inputs as (ugen or -1 for a constant, output or constant index), outputs, special)
    type Ugen = (&'static str, u8, &'static [(i32, i32)], usize, i16);
    let ugens: [Ugen; 6] = [
        ("Control", KR, &[], 4, 0),
        ("SinOsc", AR, &[(0, 0), (-1, 0)], 1, 0),
        ("OnePole", AR, &[(1, 0), (0, 1)], 1, 0),
        // Special index 2: multiplication.
        ("BinaryOpUGen", AR, &[(2, 0), (0, 2)], 1, 2),
        ("Pan2", AR, &[(3, 0), (0, 3), (-1, 1)], 2, 0),
        ("Out", AR, &[(-1, 0), (4, 0), (4, 1)], 0, 0),
    ];
    let constants = [0.0f32, 1.0];
    let params = [
        ("freq", 440.0f32),
        ("coef", 0.5),
        ("amp", 0.1),
        ("pos", 0.0),
    ];

    let mut f = Vec::new();
    f.extend_from_slice(b"SCgf");
    f.extend_from_slice(&2i32.to_be_bytes());
    f.extend_from_slice(&1i16.to_be_bytes());
    pstring(&mut f, name);
    f.extend_from_slice(&(constants.len() as i32).to_be_bytes());
    for c in constants {
        f.extend_from_slice(&c.to_be_bytes());
    }
    f.extend_from_slice(&(params.len() as i32).to_be_bytes());
    for (_, v) in params {
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&(params.len() as i32).to_be_bytes());
    for (i, (n, _)) in params.iter().enumerate() {
        pstring(&mut f, n);
        f.extend_from_slice(&(i as i32).to_be_bytes());
    }
    f.extend_from_slice(&(ugens.len() as i32).to_be_bytes());
    for (class, rate, inputs, outputs, special) in ugens {
        pstring(&mut f, class);
        f.push(rate);
        f.extend_from_slice(&(inputs.len() as i32).to_be_bytes());
        f.extend_from_slice(&(outputs as i32).to_be_bytes());
        f.extend_from_slice(&special.to_be_bytes());
        for (u, o) in inputs {
            f.extend_from_slice(&u.to_be_bytes());
            f.extend_from_slice(&o.to_be_bytes());
        }
        f.extend(std::iter::repeat_n(rate, outputs));
    }
    f.extend_from_slice(&0i16.to_be_bytes()); // no variants
    f
}

fn pstring(f: &mut Vec<u8>, s: &str) {
    f.push(s.len() as u8);
    f.extend_from_slice(s.as_bytes());
}

/// An OSC argument.
pub enum Arg<'a> {
    I(i32),
    F(f32),
    S(&'a str),
    B(&'a [u8]),
}

/// One OSC message.
pub fn message(address: &str, args: &[Arg]) -> Vec<u8> {
    let mut m = Vec::new();
    osc_string(&mut m, address);
    let tags: String = std::iter::once(',')
        .chain(args.iter().map(|a| match a {
            Arg::I(_) => 'i',
            Arg::F(_) => 'f',
            Arg::S(_) => 's',
            Arg::B(_) => 'b',
        }))
        .collect();
    osc_string(&mut m, &tags);
    for a in args {
        match a {
            Arg::I(v) => m.extend_from_slice(&v.to_be_bytes()),
            Arg::F(v) => m.extend_from_slice(&v.to_be_bytes()),
            Arg::S(s) => osc_string(&mut m, s),
            Arg::B(b) => {
                m.extend_from_slice(&(b.len() as i32).to_be_bytes());
                m.extend_from_slice(b);
                pad(&mut m);
            }
        }
    }
    m
}

fn osc_string(m: &mut Vec<u8>, s: &str) {
    m.extend_from_slice(s.as_bytes());
    m.push(0);
    pad(m);
}

fn pad(m: &mut Vec<u8>) {
    while !m.len().is_multiple_of(4) {
        m.push(0);
    }
}

/// Append a bundle of `messages` at `seconds` to an NRT score (each bundle
/// is preceded by its length, as scsynth's `-N` reads them).
pub fn bundle(score: &mut Vec<u8>, seconds: f64, messages: &[Vec<u8>]) {
    let mut b = Vec::new();
    b.extend_from_slice(b"#bundle\0");
    let whole = seconds.floor();
    let time = ((whole as u64) << 32) | ((seconds - whole) * 4_294_967_296.0) as u64;
    b.extend_from_slice(&time.to_be_bytes());
    for m in messages {
        b.extend_from_slice(&(m.len() as i32).to_be_bytes());
        b.extend_from_slice(m);
    }
    score.extend_from_slice(&(b.len() as i32).to_be_bytes());
    score.extend_from_slice(&b);
}

/// The score: load the SynthDef, start `n` voices with the parameters of
/// `bench_voices::voice`, end after `seconds`.
pub fn score(n: usize, seconds: f64) -> Vec<u8> {
    let def = synthdef("voice");
    let mut score = Vec::new();
    bundle(&mut score, 0.0, &[message("/d_recv", &[Arg::B(&def)])]);
    let voices: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let (freq, a, amp, pos) = bench_voices::voice(i, n);
            message(
                "/s_new",
                &[
                    Arg::S("voice"),
                    Arg::I(1000 + i as i32),
                    Arg::I(1), // add to tail
                    Arg::I(0), // of the root group
                    Arg::S("freq"),
                    Arg::F(freq as f32),
                    Arg::S("coef"),
                    Arg::F((1.0 - a) as f32),
                    Arg::S("amp"),
                    Arg::F(amp as f32),
                    Arg::S("pos"),
                    Arg::F(pos as f32),
                ],
            )
        })
        .collect();
    bundle(&mut score, 0.0, &voices);
    // The render lasts until the last command.
    bundle(
        &mut score,
        seconds,
        &[message("/c_set", &[Arg::I(0), Arg::F(0.0)])],
    );
    score
}
