;; stereo.wat: two channels, a fifth apart: 220 Hz on the left, 330 Hz on
;; the right, each at 0.3. Shows a multi-channel signal: `init` returns 2 and
;; `process` writes interleaved left/right frames. Each oscillator claims its
;; own state block ("osc#0", "osc#1"), so both phases survive a reload.
;;
;; Run it:           lel-host run examples/wat/stereo.wat
;; Render it:        lel-host render examples/wat/stereo.wat -o stereo.wav
;; Edit it live:     lel-host run examples/wat/   then change a frequency and save.
(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (import "lel:signal/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 3)

  ;; Memory map: state region 1024..2048, output buffer from 4096.
  (global $state i32 (i32.const 1024))
  (global $out i32 (i32.const 4096))
  (data (i32.const 64) "osc#0")
  (data (i32.const 72) "osc#1")
  (data (i32.const 80) "two oscillators ready")

  (global $left_hz f64 (f64.const 220))
  (global $right_hz f64 (f64.const 330))
  (global $amp f64 (f64.const 0.3))

  (global $left_at (mut i32) (i32.const 0))
  (global $right_at (mut i32) (i32.const 0))
  (global $left_step (mut f64) (f64.const 0))
  (global $right_step (mut f64) (f64.const 0))

  (func (export "state-ptr") (result i32) (global.get $state))
  (func (export "state-len") (result i32) (i32.const 1024))

  (func (export "init") (param $sample_rate i32) (param $max i32) (result i32)
    (if (i32.gt_u (local.get $max) (i32.const 8192)) (then (return (i32.const -1))))
    (global.set $left_at (call $claim (i32.const 64) (i32.const 5) (i32.const 8) (i32.const 8)))
    (global.set $right_at (call $claim (i32.const 72) (i32.const 5) (i32.const 8) (i32.const 8)))
    (global.set $left_step (f64.div (global.get $left_hz) (f64.convert_i32_u (local.get $sample_rate))))
    (global.set $right_step (f64.div (global.get $right_hz) (f64.convert_i32_u (local.get $sample_rate))))
    (call $log (i32.const 2) (i32.const 80) (i32.const 21))
    (i32.const 2))

  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $p i32)
    (local.set $p (global.get $out))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
        (f32.store (local.get $p) (call $tick (global.get $left_at) (global.get $left_step)))
        (f32.store offset=4 (local.get $p) (call $tick (global.get $right_at) (global.get $right_step)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $frame)))
    (global.get $out))

  ;; One sample of the oscillator whose phase (in turns) is stored at $at.
  (func $tick (param $at i32) (param $step f64) (result f32)
    (local $phase f64)
    (local.set $phase (f64.load (local.get $at)))
    (f64.store (local.get $at)
      (f64.sub (f64.add (local.get $phase) (local.get $step))
        (f64.floor (f64.add (local.get $phase) (local.get $step)))))
    (f32.demote_f64 (f64.mul (global.get $amp) (call $sin_turns (local.get $phase)))))

  ;; sin(2 pi t) for t in [0, 1), as in sine.wat.
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
                        (f64.mul (local.get $x2) (f64.const -2.505210838544172e-8))))))))))))))
