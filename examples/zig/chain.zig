//! chain.zig: the filtered, delayed sine, as the original engine's
//! pipe(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4)):
//! a 440 Hz sine through a one-pole lowpass at 800 Hz, a 5 Hz tremolo of
//! depth 0.8, an echo every 0.25 s (line of 0.5 s, feedback 0.5, mix 0.5)
//! and a gain of 0.4. Mono. The same samples as examples/rust/filtered-delayed-sine.
//!
//! Build:  scripts/build-examples zig   (-> target/examples/chain-zig.wasm;
//!         the zig command is in guest-sdk/zig/lel.zig)
//! Run:    lel-host run target/examples/chain-zig.wasm
//! Live:   lel-host run target/examples/   then edit a number, save and run
//!         scripts/build-examples zig: the phases, the filter's memory and the
//!         echoes in the line carry over (keys osc#0, lowpass#0, tremolo#0,
//!         delay#0, claimed in this order like the Rust SDK's).
//!
//! The helpers are one struct, `helpers`, that `frame` reads through its
//! third parameter: `process` keeps the block's copy in registers (see
//! guest-sdk/zig/lel.zig).

const lel = @import("lel");

const Helpers = struct {
    osc: lel.SineOsc = .{},
    lowpass: lel.Lowpass = .{},
    tremolo: lel.Tremolo = .{},
    echo: lel.Delay = .{}, // feedback and mix: 0.5 unless set
};
pub var helpers: Helpers = .{};

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try helpers.osc.claim(.{});
    try helpers.lowpass.claim(.{});
    try helpers.tremolo.claim(.{});
    try helpers.echo.claim(0.5, .{});
    return 1;
}

pub fn frame(cx: *const lel.Ctx, out: []f64, h: *Helpers) void {
    _ = cx;
    var x = h.osc.tick(440);
    x = h.lowpass.tick(x, 800);
    x = h.tremolo.tick(x, 5, 0.8);
    x = h.echo.tick(x, 0.25);
    out[0] = lel.gain(x, 0.4);
}

comptime {
    lel.signal(@This());
}
