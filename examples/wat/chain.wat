;; chain.wat: the filtered, delayed sine by hand, as the original engine's
;; pipe(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4)):
;; a 440 Hz sine through a one-pole lowpass at 800 Hz, a 5 Hz tremolo of
;; depth 0.8, an echo every 0.25 s (line of 0.5 s, feedback 0.5, mix 0.5) and
;; a gain of 0.4. Mono. The formulas and keys are the Rust SDK's
;; (guest-sdk/README.md, "Algorithms"); sine, cosine and exp are short
;; series here instead of libm, so the samples match
;; examples/rust/filtered-delayed-sine to within about 1e-7, not bit for bit.
;;
;; Run it:           lel-host run examples/wat/chain.wat
;; Render it:        lel-host render examples/wat/chain.wat -o chain.wav --seconds 5
;; Edit it live:     lel-host run examples/wat/   then change a $... global and save:
;;                   phases, filter memory and echoes carry over (keys osc#0,
;;                   lowpass#0, tremolo#0, delay#0).
(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)

  ;; Memory map: keys at 64, output buffer at 4096 (8192 frames), state
  ;; region from 65536 (128 KiB: the delay line takes 96 KB at 48 kHz).
  (global $out i32 (i32.const 4096))
  (global $state i32 (i32.const 65536))
  (global $state_len i32 (i32.const 131072))
  (data (i32.const 64) "osc#0")
  (data (i32.const 72) "lowpass#0")
  (data (i32.const 88) "tremolo#0")
  (data (i32.const 104) "delay#0")

  ;; Edit these and save.
  (global $freq f64 (f64.const 440))
  (global $cutoff f64 (f64.const 800))
  (global $rate f64 (f64.const 5))
  (global $depth f64 (f64.const 0.8))
  (global $max_seconds f64 (f64.const 0.5))
  (global $seconds f64 (f64.const 0.25))
  (global $feedback f64 (f64.const 0.5))
  (global $mix f64 (f64.const 0.5))
  (global $gain f64 (f64.const 0.4))

  ;; Addresses of the claimed blocks, and what init precomputes.
  (global $osc (mut i32) (i32.const 0))     ;; f64 phase in turns
  (global $lp (mut i32) (i32.const 0))      ;; f64 filter memory y
  (global $trem (mut i32) (i32.const 0))    ;; f64 phase in turns
  (global $delay (mut i32) (i32.const 0))   ;; u32 write position, 12 bytes pad, then the line
  (global $len (mut i32) (i32.const 0))     ;; frames in the line
  (global $inv_sr (mut f64) (f64.const 0))
  (global $a (mut f64) (f64.const 0))       ;; lowpass coefficient
  (global $d (mut f64) (f64.const 0))       ;; delay in samples

  (func (export "state-ptr") (result i32) (global.get $state))
  (func (export "state-len") (result i32) (global.get $state_len))

  (func (export "init") (param $sample_rate i32) (param $max i32) (result i32)
    (local $sr f64)
    (if (i32.gt_u (local.get $max) (i32.const 8192)) (then (return (i32.const -17))))
    (local.set $sr (f64.convert_i32_u (local.get $sample_rate)))
    (global.set $inv_sr (f64.div (f64.const 1) (local.get $sr)))
    ;; Claims, in the Rust SDK's order: source first, then each stage.
    (global.set $osc (call $claim (i32.const 64) (i32.const 5) (i32.const 8) (i32.const 16)))
    (if (i32.lt_s (global.get $osc) (i32.const 0)) (then (return (global.get $osc))))
    (global.set $lp (call $claim (i32.const 72) (i32.const 9) (i32.const 8) (i32.const 16)))
    (if (i32.lt_s (global.get $lp) (i32.const 0)) (then (return (global.get $lp))))
    (global.set $trem (call $claim (i32.const 88) (i32.const 9) (i32.const 8) (i32.const 16)))
    (if (i32.lt_s (global.get $trem) (i32.const 0)) (then (return (global.get $trem))))
    ;; len = ceil(max_seconds * sr) + 2 frames of f32, after a 16-byte head.
    (global.set $len (i32.add (i32.trunc_sat_f64_u (f64.ceil (f64.mul (global.get $max_seconds) (local.get $sr))))
                              (i32.const 2)))
    (global.set $delay (call $claim (i32.const 104) (i32.const 7)
      (i32.add (i32.const 16) (i32.shl (global.get $len) (i32.const 2))) (i32.const 16)))
    (if (i32.lt_s (global.get $delay) (i32.const 0)) (then (return (global.get $delay))))
    ;; a = 1 - exp(-2 pi fc / sr), fc clamped to [0, sr / 2]
    (global.set $a (f64.sub (f64.const 1)
      (call $exp (f64.div (f64.mul (f64.const -6.283185307179586)
                                   (f64.min (f64.max (global.get $cutoff) (f64.const 0))
                                            (f64.mul (f64.const 0.5) (local.get $sr))))
                          (local.get $sr)))))
    ;; d = clamp(seconds * sr, 1, len - 2)
    (global.set $d (f64.min (f64.max (f64.mul (global.get $seconds) (local.get $sr)) (f64.const 1))
                            (f64.convert_i32_u (i32.sub (global.get $len) (i32.const 2)))))
    (i32.const 1))

  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $p i32) (local $x f64)
    (local.set $p (global.get $out))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
        (local.set $x (call $osc_tick))
        (local.set $x (call $lowpass_tick (local.get $x)))
        (local.set $x (call $tremolo_tick (local.get $x)))
        (local.set $x (call $delay_tick (local.get $x)))
        (f32.store (local.get $p) (f32.demote_f64 (f64.mul (local.get $x) (global.get $gain))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $frame)))
    (global.get $out))

  ;; sin(2 pi p), then p = fract(p + freq / sr)
  (func $osc_tick (result f64)
    (local $p f64)
    (local.set $p (f64.load (global.get $osc)))
    (f64.store (global.get $osc) (call $fract (f64.add (local.get $p)
      (f64.mul (global.get $freq) (global.get $inv_sr)))))
    (call $sin_turns (local.get $p)))

  ;; y += a (x - y)
  (func $lowpass_tick (param $x f64) (result f64)
    (local $y f64)
    (local.set $y (f64.load (global.get $lp)))
    (local.set $y (f64.add (local.get $y) (f64.mul (global.get $a) (f64.sub (local.get $x) (local.get $y)))))
    (f64.store (global.get $lp) (local.get $y))
    (local.get $y))

  ;; x (1 - depth (0.5 - 0.5 cos(2 pi p))), then p = fract(p + rate / sr)
  (func $tremolo_tick (param $x f64) (result f64)
    (local $p f64) (local $g f64)
    (local.set $p (f64.load (global.get $trem)))
    (local.set $g (f64.sub (f64.const 1) (f64.mul (global.get $depth)
      (f64.sub (f64.const 0.5) (f64.mul (f64.const 0.5)
        (call $sin_turns (call $fract (f64.add (local.get $p) (f64.const 0.25)))))))))
    (f64.store (global.get $trem) (call $fract (f64.add (local.get $p)
      (f64.mul (global.get $rate) (global.get $inv_sr)))))
    (f64.mul (local.get $x) (local.get $g)))

  ;; y = L[r0] + frac (L[r1] - L[r0]) with r0 = w - floor(d), r1 = r0 - 1
  ;; (mod len); L[w] = x + feedback y; out (1 - mix) x + mix y; w = w + 1.
  (func $delay_tick (param $x f64) (result f64)
    (local $w i32) (local $r0 i32) (local $r1 i32) (local $di i32)
    (local $frac f64) (local $a f64) (local $b f64) (local $y f64) (local $line i32)
    (local.set $line (i32.add (global.get $delay) (i32.const 16)))
    (local.set $di (i32.trunc_sat_f64_u (global.get $d)))
    (local.set $frac (f64.sub (global.get $d) (f64.convert_i32_u (local.get $di))))
    (local.set $w (i32.load (global.get $delay)))
    (if (i32.ge_u (local.get $w) (global.get $len)) (then (local.set $w (i32.const 0))))
    (local.set $r0 (i32.sub (i32.add (local.get $w) (global.get $len)) (local.get $di)))
    (if (i32.ge_u (local.get $r0) (global.get $len))
      (then (local.set $r0 (i32.sub (local.get $r0) (global.get $len)))))
    (local.set $r1 (select (i32.sub (global.get $len) (i32.const 1)) (i32.sub (local.get $r0) (i32.const 1))
                           (i32.eqz (local.get $r0))))
    (local.set $a (f64.promote_f32 (f32.load (i32.add (local.get $line) (i32.shl (local.get $r0) (i32.const 2))))))
    (local.set $b (f64.promote_f32 (f32.load (i32.add (local.get $line) (i32.shl (local.get $r1) (i32.const 2))))))
    (local.set $y (f64.add (local.get $a) (f64.mul (local.get $frac) (f64.sub (local.get $b) (local.get $a)))))
    (f32.store (i32.add (local.get $line) (i32.shl (local.get $w) (i32.const 2)))
      (f32.demote_f64 (f64.add (local.get $x) (f64.mul (global.get $feedback) (local.get $y)))))
    (local.set $w (i32.add (local.get $w) (i32.const 1)))
    (i32.store (global.get $delay)
      (select (i32.const 0) (local.get $w) (i32.eq (local.get $w) (global.get $len))))
    (f64.add (f64.mul (f64.sub (f64.const 1) (global.get $mix)) (local.get $x))
             (f64.mul (global.get $mix) (local.get $y))))

  (func $fract (param $x f64) (result f64)
    (f64.sub (local.get $x) (f64.floor (local.get $x))))

  ;; sin(2 pi t) for t in [0, 1), as in sine.wat: fold to [-1/4, 1/4] turn,
  ;; then a Taylor series to x^11 (error below 4e-8).
  (func $sin_turns (param $t f64) (result f64)
    (local $x f64) (local $x2 f64)
    (local.set $x
      (if (result f64) (f64.lt (local.get $t) (f64.const 0.25))
        (then (local.get $t))
        (else
          (if (result f64) (f64.lt (local.get $t) (f64.const 0.75))
            (then (f64.sub (f64.const 0.5) (local.get $t)))
            (else (f64.sub (local.get $t) (f64.const 1)))))))
    (local.set $x (f64.mul (local.get $x) (f64.const 6.283185307179586)))
    (local.set $x2 (f64.mul (local.get $x) (local.get $x)))
    (f64.mul (local.get $x)
      (f64.add (f64.const 1)
        (f64.mul (local.get $x2)
          (f64.add (f64.const -0.16666666666666666)
            (f64.mul (local.get $x2)
              (f64.add (f64.const 0.008333333333333333)
                (f64.mul (local.get $x2)
                  (f64.add (f64.const -1.984126984126984e-4)
                    (f64.mul (local.get $x2)
                      (f64.add (f64.const 2.755731922398589e-6)
                        (f64.mul (local.get $x2) (f64.const -2.505210838544172e-8)))))))))))))

  ;; e^x for x in [-pi, 0] (all the lowpass needs): e^(x/16) by its Taylor
  ;; series to the 10th power, squared four times.
  (func $exp (param $x f64) (result f64)
    (local $y f64) (local $term f64) (local $k i32)
    (local.set $x (f64.mul (local.get $x) (f64.const 0.0625)))
    (local.set $y (f64.const 1))
    (local.set $term (f64.const 1))
    (local.set $k (i32.const 1))
    (loop $series
      (local.set $term (f64.div (f64.mul (local.get $term) (local.get $x)) (f64.convert_i32_u (local.get $k))))
      (local.set $y (f64.add (local.get $y) (local.get $term)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $series (i32.le_u (local.get $k) (i32.const 10))))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (f64.mul (local.get $y) (local.get $y))))
