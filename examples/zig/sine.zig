//! sine.zig: the smallest Zig signal: a 440 Hz sine at half scale, mono
//! (the same samples as examples/rust/sine).
//!
//! Build:  scripts/build-examples     (or by hand, from the repository root:)
//!   PYTHONPATH=target/tools/ziglang python3 -m ziglang build-exe \
//!       -target wasm32-freestanding -O ReleaseFast -fno-entry -fstrip -rdynamic \
//!       --dep lel -Mroot=examples/zig/sine.zig -Mlel=guest-sdk/zig/lel.zig \
//!       -femit-bin=target/examples/sine-zig.wasm
//! Run:    lel-host run target/examples/sine-zig.wasm
//! Live:   lel-host run target/examples/   then edit, save, scripts/build-examples:
//!         the phase (key "osc#0") carries over.

const lel = @import("lel");

var osc: lel.Osc = .{};

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try osc.claim(.sine, .{});
    return 1;
}

pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    out[0] = lel.gain(osc.tick(440), 0.5);
}

comptime {
    lel.signal(@This());
}
