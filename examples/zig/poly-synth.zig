//! poly-synth.zig: examples/rust/poly-synth in Zig, the same samples. Eight
//! voices, each a band-limited saw through a resonant lowpass (`cutoff`,
//! q 0.7) and an ADSR (5 ms, 100 ms, 0.7, `release`) times the note's
//! velocity, summed at a gain of 0.2. Mono. Parameters `cutoff` (20 to
//! 20,000 Hz, default 2,000) and `release` (0.01 to 5 s, default 0.3).
//! Keys: poly#0, notes, then per voice osc#i, biquad#i, env#i (the Rust
//! SDK's, so any of the three builds can replace another mid-chord).
//!
//! Build:  scripts/build-examples zig   (-> target/examples/poly-synth-zig.wasm)
//! Run:    lel-host run target/examples/poly-synth-zig.wasm --osc 9000

const lel = @import("lel");

const voices = 8;

var cutoff: lel.Param = .{};
var release: lel.Param = .{};
var poly: lel.Poly = .{};
var osc: [voices]lel.Osc = [_]lel.Osc{.{}} ** voices;
var filter: [voices]lel.Biquad = [_]lel.Biquad{.{}} ** voices;
var env: [voices]lel.Env = [_]lel.Env{.{}} ** voices;

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try cutoff.claim("cutoff", 2000.0, 20.0, 20000.0, "Hz", 0);
    try release.claim("release", 0.3, 0.01, 5.0, "s", 0);
    try poly.claim(voices, .{});
    for (0..voices) |i| {
        try osc[i].claim(.saw, .{});
        try filter[i].claim(.lowpass, .{});
        try env[i].claim(.{});
    }
    return 1;
}

pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    const fc = cutoff.tick();
    const rel = release.tick();
    var sum: f64 = 0.0;
    poly.begin(cx);
    for (0..voices) |i| {
        const v = poly.voice(@intCast(i));
        const y = filter[i].tick(osc[i].tick(v.hz), fc, 0.7);
        sum += y * env[i].tick(v.gate, 0.005, 0.1, 0.7, rel) * v.velocity;
    }
    out[0] = sum * 0.2;
}

comptime {
    lel.signal(@This());
}
