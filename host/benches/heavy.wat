;; A deliberately expensive mono signal, for load tests and benchmarks: a
;; 220 Hz sine (a rotating phasor) smoothed by `$work` one-pole filter steps
;; per frame, so one block costs about `$work` times a plain sine.
(module
  (memory (export "memory") 1)
  (global $work i32 (i32.const 256))
  (global $c (mut f32) (f32.const 1))
  (global $s (mut f32) (f32.const 0))
  (global $y (mut f32) (f32.const 0))
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $k i32) (local $t f32) (local $y f32) (local $n f32)
    (local.set $y (global.get $y))
    (block $done (loop $frame
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      ;; rotate the phasor by 2 pi 220 / 48000, keeping its length at 1
      (local.set $t (f32.sub (f32.mul (global.get $c) (f32.const 0.99958527))
                             (f32.mul (global.get $s) (f32.const 0.028797324))))
      (global.set $s (f32.add (f32.mul (global.get $s) (f32.const 0.99958527))
                              (f32.mul (global.get $c) (f32.const 0.028797324))))
      (global.set $c (local.get $t))
      (local.set $n (f32.sub (f32.const 1.5) (f32.mul (f32.const 0.5)
        (f32.add (f32.mul (global.get $c) (global.get $c)) (f32.mul (global.get $s) (global.get $s))))))
      (global.set $c (f32.mul (global.get $c) (local.get $n)))
      (global.set $s (f32.mul (global.get $s) (local.get $n)))
      ;; the work: $work steps of a one-pole lowpass towards the sine
      (local.set $k (i32.const 0))
      (block $w (loop $step
        (br_if $w (i32.ge_u (local.get $k) (global.get $work)))
        (local.set $y (f32.add (f32.mul (local.get $y) (f32.const 0.9))
                               (f32.mul (global.get $s) (f32.const 0.1))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step)))
      (f32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))
                 (f32.mul (local.get $y) (f32.const 0.25)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $frame)))
    (global.set $y (local.get $y))
    (i32.const 1024)))
