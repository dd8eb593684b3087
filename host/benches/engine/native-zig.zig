//! native-zig.zig: a Zig SDK example compiled for the build machine, as a
//! shared library the benchmark loads (part 3: each SDK's chain against the
//! same source compiled natively). The example is the module `example`:
//!
//!     python3 -m ziglang build-lib -dynamic -O ReleaseFast \
//!         --dep lel --dep example -Mroot=host/benches/engine/native-zig.zig \
//!         --dep lel -Mexample=examples/zig/chain.zig \
//!         -Mlel=guest-sdk/zig/lel.zig -femit-bin=chain-zig.so
//!
//! The host side lel-host gives a module is played here by hand, as in
//! native-c.c: `claim` hands out zeroed blocks below 2 GiB (the SDK keeps an
//! address in 32 bits, as in wasm32), `init` and `process` are called as the
//! engine calls them, and each block's samples are copied out.

const std = @import("std");
const lel = @import("lel");
const example = @import("example");

const E = lel.Signal(example);
const heap_bytes: usize = 64 << 20;
var heap: ?[*]u8 = null;
var heap_used: usize = 0;

/// The host functions lel.zig calls in a native build.
pub const lel_native_host = struct {
    pub fn claim(key: [*]const u8, key_len: i32, size: i32, alignment: i32) i32 {
        _ = key;
        _ = key_len;
        const base = heap orelse return -1;
        if (size < 0 or alignment <= 0) return -1;
        const a: usize = @intCast(alignment);
        const at = (heap_used + a - 1) & ~(a - 1);
        if (at + @as(usize, @intCast(size)) > heap_bytes) return -1;
        heap_used = at + @as(usize, @intCast(size));
        return @intCast(@intFromPtr(base + at));
    }

    pub fn log(level: i32, msg: [*]const u8, msg_len: i32) void {
        _ = level;
        _ = msg;
        _ = msg_len;
    }

    pub fn param(key: [*]const u8, key_len: i32, default: f32, min: f32, max: f32, unit: [*]const u8, unit_len: i32, steps: i32) i32 {
        _ = .{ key, key_len, default, min, max, unit, unit_len, steps };
        return -1;
    }
};

/// `init` at `sample_rate` for blocks of `block` frames: the channel count,
/// or a negative code (-100: no memory below 2 GiB for the claims).
export fn lel_native_init(sample_rate: u32, block: u32) i32 {
    if (heap == null) {
        const linux = std.os.linux;
        const p = linux.mmap(null, heap_bytes, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .@"32BIT" = true }, -1, 0);
        if (linux.E.init(p) != .SUCCESS) return -100;
        heap = @ptrFromInt(p);
    }
    return E.init(sample_rate, block);
}

/// Render `frames` frames (`channels` each) into `out`, `block` at a time.
export fn lel_native_render(out: [*]f32, frames: u64, channels: u32, block: u32, clock: *u64) void {
    var done: u64 = 0;
    while (done < frames) {
        const n: u32 = @intCast(@min(frames - done, block));
        _ = E.process(n, clock.*, 0);
        const len = @as(usize, n) * channels;
        const at: usize = @intCast(done * channels);
        @memcpy(out[at .. at + len], E.output()[0..len]);
        done += n;
        clock.* += n;
    }
}
