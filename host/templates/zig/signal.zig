//! {{name}}.zig: a 440 Hz sine at half scale, mono. Edit, run ./build.sh,
//! and the playing version is replaced keeping the oscillator's phase (osc#0).
//!
//! Build: ./build.sh (Zig {{zig_version}}, wasm32-freestanding; -> out/{{name}}.wasm).
//! Play live: lel-host run out/
//! lel.zig (the lel Zig SDK) documents every helper.

const lel = @import("lel");

var osc: lel.Osc = .{};

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try osc.claim(.sine, .{});
    return 1; // channels
}

pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    out[0] = lel.gain(osc.tick(440), 0.5);
}

comptime {
    lel.signal(@This());
}
