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

const lel = @import("lel");

var osc: lel.Osc = .{};
var lowpass: lel.Lowpass = .{};
var tremolo: lel.Tremolo = .{};
var echo: lel.Delay = .{}; // feedback and mix: 0.5 unless set

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try osc.claim(.sine, .{});
    try lowpass.claim(.{});
    try tremolo.claim(.{});
    try echo.claim(0.5, .{});
    return 1;
}

pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    var x = osc.tick(440);
    x = lowpass.tick(x, 800);
    x = tremolo.tick(x, 5, 0.8);
    x = echo.tick(x, 0.25);
    out[0] = lel.gain(x, 0.4);
}

comptime {
    lel.signal(@This());
}
