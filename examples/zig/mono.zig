//! mono.zig: examples/rust/mono in Zig, the same samples: a sine at the
//! last note's pitch (with the bend), on while the note is held, times its
//! velocity and the parameter `level` (0 to 1, default 0.5, smoothed over
//! 20 ms). Mono. Keys: osc#0, notes (the Rust SDK's).
//!
//! Build:  scripts/build-examples zig   (-> target/examples/mono-zig.wasm)
//! Run:    lel-host run target/examples/mono-zig.wasm --osc 9000

const lel = @import("lel");

var osc: lel.Osc = .{};
var level: lel.Param = .{};

pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try osc.claim(.sine, .{});
    try lel.notes();
    try level.claim("level", 0.5, 0.0, 1.0, "", 0);
    return 1;
}

pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    out[0] = osc.tick(lel.pitch()) * lel.gate() * lel.velocity() * level.tick();
}

comptime {
    lel.signal(@This());
}
