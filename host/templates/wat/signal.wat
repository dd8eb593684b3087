;; {{name}}.wat: a 440 Hz sine at half scale, mono, written by hand against
;; the lel:signal@0.1.0 contract. No build step: lel-host reads the text.
;;
;; Play live: lel-host run {{name}}.wat   then change $freq or $amp and save:
;; the new version swaps in keeping the phase (key "osc#0").
(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; Memory map: the key at 64, state region 1024..2048, output from 4096.
  (global $state i32 (i32.const 1024))
  (global $out i32 (i32.const 4096))
  (data (i32.const 64) "osc#0")

  ;; Edit these and save.
  (global $freq f64 (f64.const 440))
  (global $amp f64 (f64.const 0.5))

  (global $phase_at (mut i32) (i32.const 0)) ;; address of the f64 phase, in turns
  (global $step (mut f64) (f64.const 0))     ;; turns per frame

  (func (export "state-ptr") (result i32) (global.get $state))
  (func (export "state-len") (result i32) (i32.const 1024))

  (func (export "init") (param $sample_rate i32) (param $max i32) (result i32)
    (if (i32.gt_u (local.get $max) (i32.const 8192)) (then (return (i32.const -17))))
    (global.set $phase_at (call $claim (i32.const 64) (i32.const 5) (i32.const 8) (i32.const 16)))
    (if (i32.lt_s (global.get $phase_at) (i32.const 0)) (then (return (global.get $phase_at))))
    (global.set $step (f64.div (global.get $freq) (f64.convert_i32_u (local.get $sample_rate))))
    (i32.const 1))

  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $phase f64) (local $p i32)
    (local.set $phase (f64.load (global.get $phase_at)))
    (local.set $p (global.get $out))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
        (f32.store (local.get $p)
          (f32.demote_f64 (f64.mul (global.get $amp) (call $sin_turns (local.get $phase)))))
        (local.set $phase (f64.add (local.get $phase) (global.get $step)))
        (local.set $phase (f64.sub (local.get $phase) (f64.floor (local.get $phase))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $frame)))
    (f64.store (global.get $phase_at) (local.get $phase))
    (global.get $out))

  ;; sin(2 pi t) for t in [0, 1): fold to [-1/4, 1/4] turn, then a Taylor
  ;; series to x^11 (error below 4e-8).
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
