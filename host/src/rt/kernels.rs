//! The per-sample loops of a slot's block path (output check, level,
//! mixing), written so the compiler can vectorize them (or, for the level,
//! with SSE by hand), with results bit-identical to the plain per-sample
//! loops they replace; the cache prefetch hint the pool gives for the
//! next slots; and the `vzeroupper` before every guest call. Runs on the
//! audio thread and the workers (the `vzeroupper` also on the loaders,
//! before `init`).

/// The largest |sample| of `samples` (interleaved `f32`, little-endian
/// bytes), or `None` if any sample is NaN or infinite: [`peak_and_squares`]'s
/// peak (the squares cost nothing extra in its SSE lanes).
#[inline]
pub fn peak(samples: &[u8]) -> Option<f32> {
    peak_and_squares(samples).map(|(peak, _)| peak)
}

/// Ask the CPU to start loading the cache lines of `bytes` bytes at `at`
/// (a hint: nothing is read, no fault is possible, any address will do).
/// With hundreds of signals, each block walks every signal's structures,
/// store and output, which no longer fit the caches: fetching the next
/// signals' lines while this one renders overlaps those misses with work.
#[inline(always)]
pub fn prefetch(at: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut offset = 0;
        while offset < bytes {
            let line = at.wrapping_add(offset).cast::<i8>();
            // SAFETY: `prefetcht0` is a hint (SSE, present on every x86-64
            // CPU): it reads nothing architecturally and never faults, on
            // any address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}

/// Find out now whether the CPU has AVX (std keeps the answer), so that
/// the first [`clean_vector_state`] on the audio thread does not run
/// `cpuid` (in a virtual machine a trap to the hypervisor).
pub fn detect() {
    #[cfg(target_arch = "x86_64")]
    let _ = std::arch::is_x86_feature_detected!("avx");
}

/// Before a guest call: `vzeroupper` on a CPU with AVX, so the guest's
/// code starts with the upper halves of the vector registers clean.
/// Code that used 256-bit registers and left them dirty (a native library,
/// a C function without `vzeroupper`) makes the SSE instructions that
/// compiled wasm mixes with AVX ones pay for the register state on every
/// one: the optimised build of the Zig SDK's chain ran 36 times slower
/// (550 instead of 15 ms for 20 s) after one `vxorps ymm1` before its
/// blocks, and in `cargo bench` a fast build 4 times slower, depending on
/// what ran before in the process. One instruction, nothing read or
/// written in memory.
#[inline]
pub fn clean_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above), so `vzeroupper`
        // exists; it zeroes bits 128 and up of the vector registers, and
        // every vector register is declared clobbered (`clobber_abi`), so
        // the compiler keeps no value in one across it.
        unsafe {
            core::arch::asm!(
                "vzeroupper",
                clobber_abi("C"),
                options(nomem, nostack, preserves_flags)
            );
        }
    }
}

/// Add `samples` (`ch` channels, little-endian `f32` bytes) into `mix`
/// (`oc` channels) at unity gain: mono goes to every output channel, N
/// channels to the first N outputs. The same sums as scaling each sample by
/// 1.0 first (exact), without the per-frame gain.
#[inline]
pub fn add_unity(mix: &mut [f32], samples: &[u8], ch: usize, oc: usize) {
    // Whole 4-byte words (byte by byte, the loops did not vectorize).
    let sample = |b: &[u8]| f32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    match (ch, oc) {
        (c, o) if c == o => {
            for (d, b) in mix.iter_mut().zip(samples.chunks_exact(4)) {
                *d += sample(b);
            }
        }
        (1, 2) => {
            for (d, b) in mix.chunks_exact_mut(2).zip(samples.chunks_exact(4)) {
                let s = sample(b);
                d[0] += s;
                d[1] += s;
            }
        }
        _ => {
            for (dst, frame) in mix.chunks_exact_mut(oc).zip(samples.chunks_exact(ch * 4)) {
                if ch == 1 {
                    let s = sample(frame);
                    dst.iter_mut().for_each(|d| *d += s);
                } else {
                    for (d, b) in dst.iter_mut().zip(frame.chunks_exact(4)) {
                        *d += sample(b);
                    }
                }
            }
        }
    }
}

/// Copy `samples` (little-endian `f32` bytes, as many channels as `dst`)
/// into `dst` plus zero: the bits [`add_unity`] leaves in a zeroed `dst`
/// (`-0.0` becomes `+0.0`), without zeroing it first.
#[inline]
pub fn copy_unity(dst: &mut [f32], samples: &[u8]) {
    for (d, b) in dst.iter_mut().zip(samples.chunks_exact(4)) {
        *d = f32::from_le_bytes(b[..4].try_into().expect("4 bytes")) + 0.0;
    }
}

/// Add one frame of `ch` channels (`frame`: little-endian `f32` bytes)
/// times `g` into `dst` (the mixer's channels), mapped as [`add_unity`].
#[inline]
pub fn add_frame(dst: &mut [f32], frame: &[u8], g: f32) {
    let sample = |b: &[u8]| f32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    if frame.len() == 4 {
        let s = sample(frame) * g;
        dst.iter_mut().for_each(|d| *d += s);
    } else {
        for (d, b) in dst.iter_mut().zip(frame.chunks_exact(4)) {
            *d += sample(b) * g;
        }
    }
}

/// Eight lanes side by side over the whole chunks of eight samples (lane
/// `k`: the samples `i` with `i % 8 == k`): the largest magnitude and the
/// sum of the squares, non-finite samples counted as 0, and whether any
/// sample is NaN or larger than a limit in magnitude.
pub struct Lanes {
    pub peak: [f32; 8],
    pub squares: [f32; 8],
    pub over: bool,
    /// Samples taken (the rest, fewer than eight, are the caller's).
    pub taken: usize,
}

/// [`Lanes`] of `samples` (interleaved `f32`, little-endian bytes) against
/// `limit`. Each lane does what the plain loop does (`peak = if a > peak
/// { a } else { peak }`, `squares += a * a`, with `a` the magnitude or 0
/// when not finite), so sums and maxima are bit for bit the plain loop's.
/// On x86-64, explicit SSE (two registers of four lanes: about seven
/// instructions per four samples); the compiler's vectorization of the
/// plain loop over eight lanes shuffled lanes around and took three times
/// as many (`perf annotate`). Where the CPU has AVX (found at run time: the
/// binary is built for any x86-64), the eight lanes are one register: half
/// the instructions, the same operations in each lane.
#[inline]
pub fn lanes(samples: &[u8], limit: f32) -> Lanes {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above).
            return unsafe { avx_lanes(samples, limit) };
        }
        // SAFETY: SSE and SSE2 are part of x86-64: every CPU this runs on
        // has them.
        unsafe { sse_lanes(samples, limit) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    plain_lanes(samples, limit)
}

/// [`lanes`] on x86-64 with AVX: the eight lanes in one 256-bit register,
/// each lane doing what [`sse_lanes`] does in its own (the compiler puts
/// `vzeroupper` before returning, so the SSE code after it pays nothing).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn avx_lanes(samples: &[u8], limit: f32) -> Lanes {
    use core::arch::x86_64::*;
    let taken = samples.len() / 32 * 8;
    let (mut peak, mut squares) = ([0.0f32; 8], [0.0f32; 8]);
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let (finite, lim) = (_mm256_set1_ps(f32::MAX), _mm256_set1_ps(limit));
    let (mut p, mut sq, mut over) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let base = samples.as_ptr().cast::<f32>();
    let mut i = 0;
    while i < taken {
        // SAFETY: `i + 8 <= taken <= samples.len() / 4`: the unaligned
        // 32-byte load lies inside `samples`.
        let x = unsafe { _mm256_loadu_ps(base.add(i)) };
        let a = _mm256_and_ps(x, abs);
        // NaN compares false: `!(a <= limit)` (`_CMP_NLE_UQ`, true for
        // unordered) catches it, as SSE's `cmpnleps` does.
        over = _mm256_or_ps(over, _mm256_cmp_ps::<_CMP_NLE_UQ>(a, lim));
        let a = _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_LE_OQ>(a, finite));
        // `vmaxps(p, a)` is `p > a ? p : a`, as `maxps`.
        p = _mm256_max_ps(p, a);
        sq = _mm256_add_ps(sq, _mm256_mul_ps(a, a));
        i += 8;
    }
    // SAFETY: each array is eight writable `f32`s (unaligned stores).
    unsafe {
        _mm256_storeu_ps(peak.as_mut_ptr(), p);
        _mm256_storeu_ps(squares.as_mut_ptr(), sq);
    }
    Lanes {
        peak,
        squares,
        over: _mm256_movemask_ps(over) != 0,
        taken,
    }
}

/// [`lanes`], the plain loop.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn plain_lanes(samples: &[u8], limit: f32) -> Lanes {
    let taken = samples.len() / 32 * 8;
    let (mut peak, mut squares, mut over) = ([0.0f32; 8], [0.0f32; 8], false);
    for c in samples[..taken * 4].chunks_exact(32) {
        for k in 0..8 {
            let s = f32::from_le_bytes(c[4 * k..4 * k + 4].try_into().expect("4 bytes"));
            let a = s.abs();
            over |= a.is_nan() || a > limit;
            let a = if a <= f32::MAX { a } else { 0.0 };
            peak[k] = if a > peak[k] { a } else { peak[k] };
            squares[k] += a * a;
        }
    }
    Lanes {
        peak,
        squares,
        over,
        taken,
    }
}

/// [`lanes`] on x86-64: two SSE registers of four lanes each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn sse_lanes(samples: &[u8], limit: f32) -> Lanes {
    use core::arch::x86_64::*;
    let taken = samples.len() / 32 * 8;
    let (mut peak, mut squares) = ([0.0f32; 8], [0.0f32; 8]);
    let abs = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
    let (finite, lim) = (_mm_set1_ps(f32::MAX), _mm_set1_ps(limit));
    let (mut p0, mut p1, mut s0, mut s1) = (
        _mm_setzero_ps(),
        _mm_setzero_ps(),
        _mm_setzero_ps(),
        _mm_setzero_ps(),
    );
    let mut over = _mm_setzero_ps();
    let base = samples.as_ptr().cast::<f32>();
    let mut i = 0;
    while i < taken {
        // SAFETY: `i + 8 <= taken <= samples.len() / 4`: both unaligned
        // 16-byte loads lie inside `samples`.
        let (x0, x1) = unsafe { (_mm_loadu_ps(base.add(i)), _mm_loadu_ps(base.add(i + 4))) };
        let (a0, a1) = (_mm_and_ps(x0, abs), _mm_and_ps(x1, abs));
        // NaN compares false: `!(a <= limit)` catches it.
        over = _mm_or_ps(
            over,
            _mm_or_ps(_mm_cmpnle_ps(a0, lim), _mm_cmpnle_ps(a1, lim)),
        );
        let a0 = _mm_and_ps(a0, _mm_cmple_ps(a0, finite));
        let a1 = _mm_and_ps(a1, _mm_cmple_ps(a1, finite));
        // `maxps(p, a)` is `p > a ? p : a`: the plain loop's choice
        // (equal values are the same non-negative bits).
        p0 = _mm_max_ps(p0, a0);
        p1 = _mm_max_ps(p1, a1);
        s0 = _mm_add_ps(s0, _mm_mul_ps(a0, a0));
        s1 = _mm_add_ps(s1, _mm_mul_ps(a1, a1));
        i += 8;
    }
    let (pl, ph) = peak.split_at_mut(4);
    let (sl, sh) = squares.split_at_mut(4);
    // SAFETY: each half is four writable `f32`s (unaligned stores).
    unsafe {
        _mm_storeu_ps(pl.as_mut_ptr(), p0);
        _mm_storeu_ps(ph.as_mut_ptr(), p1);
        _mm_storeu_ps(sl.as_mut_ptr(), s0);
        _mm_storeu_ps(sh.as_mut_ptr(), s1);
    }
    Lanes {
        peak,
        squares,
        over: _mm_movemask_ps(over) != 0,
        taken,
    }
}

/// [`peak`] and the sum of the squares of `samples` in one pass (for a
/// slot's level, measured on what the guest wrote), or `None` if any
/// sample is NaN or infinite.
#[inline]
pub fn peak_and_squares(samples: &[u8]) -> Option<(f32, f32)> {
    let l = lanes(samples, f32::MAX);
    let mut peak = l
        .peak
        .iter()
        .fold(0.0f32, |a, &b| if b > a { b } else { a });
    let mut sum: f32 = l.squares.iter().sum();
    let mut over = l.over;
    for b in samples[l.taken * 4..].chunks_exact(4) {
        let a = f32::from_le_bytes(b.try_into().expect("4 bytes")).abs();
        over |= !a.is_finite();
        peak = if a > peak { a } else { peak };
        sum += a * a;
    }
    (!over).then_some((peak, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(xs: &[f32]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn peak_is_the_largest_magnitude_and_rejects_non_finite() {
        let xs: Vec<f32> = (0..257)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let want = xs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert_eq!(peak(&bytes(&xs)), Some(want));
        assert_eq!(peak(&bytes(&[-0.0, 0.0])), Some(0.0));
        assert_eq!(peak(&bytes(&[1e-42, -2e-42])), Some(2e-42), "subnormals");
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut ys = xs.clone();
            ys[100] = bad;
            assert_eq!(peak(&bytes(&ys)), None, "{bad}");
        }
    }

    #[test]
    fn unity_mix_matches_the_gain_loop_bit_for_bit() {
        let src: Vec<f32> = (0..96).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
        for (ch, oc) in [(1, 1), (1, 2), (2, 2), (1, 3), (2, 3), (3, 2)] {
            let frames = src.len() / ch;
            let base: Vec<f32> = (0..frames * oc).map(|i| i as f32 * -0.01).collect();
            let mut want = base.clone();
            for (dst, frame) in want.chunks_exact_mut(oc).zip(src.chunks_exact(ch)) {
                if ch == 1 {
                    dst.iter_mut().for_each(|d| *d += frame[0] * 1.0);
                } else {
                    dst.iter_mut().zip(frame).for_each(|(d, s)| *d += s * 1.0);
                }
            }
            let mut got = base.clone();
            add_unity(&mut got, &bytes(&src[..frames * ch]), ch, oc);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{ch} -> {oc}");
        }
    }

    #[test]
    fn a_copy_leaves_the_bits_of_an_add_into_zeros() {
        let src: Vec<f32> = (0..67)
            .map(|i| match i % 5 {
                0 => -0.0,
                1 => 1e-42,
                _ => (i as f32 * 0.37).sin() * 0.5,
            })
            .collect();
        let mut want = vec![0.0f32; src.len()];
        add_unity(&mut want, &bytes(&src), 1, 1);
        let mut got = vec![f32::NAN; src.len()];
        copy_unity(&mut got, &bytes(&src));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        assert_eq!(got[0].to_bits(), 0.0f32.to_bits(), "-0.0 becomes +0.0");
    }

    #[test]
    fn the_lanes_are_the_plain_loops_bit_for_bit() {
        let xs: Vec<f32> = (0..300)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.011)
            .collect();
        let mut cases = vec![xs.clone(), xs[..7].to_vec(), Vec::new()];
        for (at, bad) in [
            (3, f32::NAN),
            (17, f32::INFINITY),
            (40, -f32::INFINITY),
            (9, 1e30),
        ] {
            let mut ys = xs.clone();
            ys[at] = bad;
            cases.push(ys);
        }
        // Whichever kernel this CPU runs, and on x86-64 both of them.
        type Kernel = fn(&[u8], f32) -> Lanes;
        let mut kernels: Vec<(&str, Kernel)> = vec![("lanes", lanes)];
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of x86-64.
            kernels.push(("sse", |s, l| unsafe { sse_lanes(s, l) }));
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: the CPU has AVX (checked just above).
                kernels.push(("avx", |s, l| unsafe { avx_lanes(s, l) }));
            }
        }
        for (n, case) in cases.iter().enumerate() {
            for limit in [0.3, 0.5, f32::MAX, f32::INFINITY] {
                for (name, kernel) in &kernels {
                    let (a, b) = (
                        kernel(&bytes(case), limit),
                        plain_lanes(&bytes(case), limit),
                    );
                    let bits = |v: &[f32; 8]| v.map(f32::to_bits);
                    assert_eq!(
                        bits(&a.peak),
                        bits(&b.peak),
                        "{name}: case {n}, limit {limit}"
                    );
                    assert_eq!(
                        bits(&a.squares),
                        bits(&b.squares),
                        "{name}: case {n}, limit {limit}"
                    );
                    assert_eq!(
                        (a.over, a.taken),
                        (b.over, b.taken),
                        "{name}: case {n}, limit {limit}"
                    );
                }
            }
        }
        assert!(lanes(&bytes(&cases[3]), f32::MAX).over, "NaN");
        assert!(!lanes(&bytes(&xs), 0.6).over && lanes(&bytes(&xs), 0.5).over);
    }

    #[test]
    fn peak_and_squares_agree_with_peak_and_a_plain_sum() {
        let xs: Vec<f32> = (0..261)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.011)
            .collect();
        let (p, sq) = peak_and_squares(&bytes(&xs)).unwrap();
        assert_eq!(Some(p), peak(&bytes(&xs)));
        let want: f64 = xs.iter().map(|x| (*x as f64) * (*x as f64)).sum();
        assert!((sq as f64 - want).abs() < want * 1e-5, "{sq} vs {want}");
        let mut ys = xs.clone();
        ys[200] = f32::NAN;
        assert_eq!(peak_and_squares(&bytes(&ys)), None);
    }

    #[test]
    fn a_frame_times_a_gain_adds_like_the_gain_loop() {
        for (ch, oc) in [(1, 2), (2, 2), (2, 3)] {
            let frame: Vec<f32> = (0..ch).map(|c| 0.3 - c as f32 * 0.7).collect();
            let base: Vec<f32> = (0..oc).map(|c| c as f32 * 0.1).collect();
            let mut got = base.clone();
            add_frame(&mut got, &bytes(&frame), 0.37);
            let mut want = base.clone();
            for (o, d) in want.iter_mut().enumerate() {
                let s = if ch == 1 {
                    Some(frame[0])
                } else {
                    frame.get(o).copied()
                };
                if let Some(s) = s {
                    *d += s * 0.37;
                }
            }
            assert_eq!(got, want, "{ch} -> {oc}");
        }
    }
}
