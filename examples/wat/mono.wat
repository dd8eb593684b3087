;; mono.wat: a playable signal by hand, against the lel:signal@0.2.0
;; contract (wit/lel.wit): one parameter and the note events. A sine at the
;; last note's pitch (with the pitch bend, two semitones each way), on
;; while that note is held, times its velocity and the parameter `level`
;; (0 to 1, default 0.5, smoothed by a 20 ms ramp). Mono. The same signal
;; as examples/rust/mono and its C, Zig and AssemblyScript copies, with the
;; Rust SDK's laws (guest-sdk/README.md, "Algorithms"); sine and exp are
;; short series here, so the samples match to about 1e-7, not bit for bit.
;;
;; Run it:       lel-host run examples/wat/mono.wat --osc 9000
;; Play it:      oscsend localhost 9000 /lel/mono-wat/note ii 69 127
;; Turn it:      oscsend localhost 9000 /lel/mono-wat/level f 0.2
;; Edit it live: lel-host run examples/wat/ then save: the phase (osc#0), the
;;               held note (notes) and the level (kept by the host) carry over.
(module
  (import "lel:signal/host@0.2.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (import "lel:signal/host@0.2.0" "param"
    (func $param (param i32 i32 f32 f32 f32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; Memory map: keys at 64, the event buffer at 1024 (256 events of 16
  ;; bytes), the output buffer at 8192 (8192 frames), the state region from
  ;; 65536 (64 KiB).
  (global $events i32 (i32.const 1024))
  (global $capacity i32 (i32.const 256))
  (global $out i32 (i32.const 8192))
  (global $state i32 (i32.const 65536))
  (global $state_len i32 (i32.const 65536))
  (data (i32.const 64) "osc#0")
  (data (i32.const 72) "notes")
  (data (i32.const 80) "level")

  ;; Addresses of the claimed blocks and the parameter's cell.
  (global $osc (mut i32) (i32.const 0))    ;; f64 phase in turns
  (global $notes (mut i32) (i32.const 0))  ;; key u32 @0, gate u32 @4, played u32 @8,
                                           ;; velocity f32 @12, bend f32 @16, pressure f32 @20,
                                           ;; cc f32[128] @32 (544 bytes)
  (global $level (mut i32) (i32.const 0))  ;; f32 value cell of `level` (index 0)
  (global $inv_sr (mut f64) (f64.const 0))
  ;; The level's ramp: samples per change, value, target, step, samples left.
  (global $ramp (mut i32) (i32.const 1))
  (global $y (mut f64) (f64.const 0))
  (global $target (mut f64) (f64.const nan))
  (global $step (mut f64) (f64.const 0))
  (global $left (mut i32) (i32.const 0))

  (func (export "state-ptr") (result i32) (global.get $state))
  (func (export "state-len") (result i32) (global.get $state_len))
  (func (export "events-ptr") (result i32) (global.get $events))
  (func (export "events-len") (result i32) (i32.mul (global.get $capacity) (i32.const 16)))

  (func (export "init") (param $sample_rate i32) (param $max i32) (result i32)
    (local $sr f64)
    (if (i32.gt_u (local.get $max) (i32.const 8192)) (then (return (i32.const -17))))
    (local.set $sr (f64.convert_i32_u (local.get $sample_rate)))
    (global.set $inv_sr (f64.div (f64.const 1) (local.get $sr)))
    (global.set $osc (call $claim (i32.const 64) (i32.const 5) (i32.const 8) (i32.const 16)))
    (if (i32.lt_s (global.get $osc) (i32.const 0)) (then (return (global.get $osc))))
    (global.set $notes (call $claim (i32.const 72) (i32.const 5) (i32.const 544) (i32.const 16)))
    (if (i32.lt_s (global.get $notes) (i32.const 0)) (then (return (global.get $notes))))
    ;; param("level", default 0.5, 0 to 1, no unit, continuous)
    (global.set $level (call $param (i32.const 80) (i32.const 5)
      (f32.const 0.5) (f32.const 0) (f32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (global.get $level) (i32.const 0)) (then (return (global.get $level))))
    ;; A 20 ms ramp: floor(0.02 sr + 0.5) samples.
    (global.set $ramp (i32.trunc_f64_u (f64.floor (f64.add (f64.mul (f64.const 0.02) (local.get $sr)) (f64.const 0.5)))))
    (global.set $target (f64.const nan))
    (global.set $left (i32.const 0))
    (i32.const 1))

  ;; Applies the event at `e`: a param event writes the level's cell (its
  ;; only parameter, index 0); notes, bend, pressure and controllers go to
  ;; the note state (a note-off closes the gate only for the last key).
  (func $apply (param $e i32)
    (local $kind i32) (local $number i32) (local $value f32) (local $n i32)
    (local.set $kind (i32.load8_u offset=4 (local.get $e)))
    (local.set $number (i32.load16_u offset=6 (local.get $e)))
    (local.set $value (f32.load offset=8 (local.get $e)))
    (local.set $n (global.get $notes))
    (block $done
      (if (i32.eq (local.get $kind) (i32.const 6)) (then
        (if (i32.and (i32.eqz (local.get $number)) (f32.eq (local.get $value) (local.get $value)))
          (then (f32.store (global.get $level) (local.get $value))))
        (br $done)))
      (if (i32.eq (local.get $kind) (i32.const 1)) (then
        (i32.store (local.get $n) (i32.and (local.get $number) (i32.const 127)))
        (f32.store offset=12 (local.get $n) (local.get $value))
        (i32.store offset=4 (local.get $n) (i32.const 1))
        (i32.store offset=8 (local.get $n) (i32.const 1))
        (br $done)))
      (if (i32.eq (local.get $kind) (i32.const 2)) (then
        (if (i32.eq (i32.load (local.get $n)) (local.get $number))
          (then (i32.store offset=4 (local.get $n) (i32.const 0))))
        (br $done)))
      (if (i32.eq (local.get $kind) (i32.const 3)) (then
        (if (i32.lt_u (local.get $number) (i32.const 128))
          (then (f32.store offset=32
            (i32.add (local.get $n) (i32.shl (local.get $number) (i32.const 2))) (local.get $value))))
        (br $done)))
      (if (i32.eq (local.get $kind) (i32.const 4)) (then
        (f32.store offset=16 (local.get $n) (local.get $value)) (br $done)))
      (if (i32.eq (local.get $kind) (i32.const 5)) (then
        (f32.store offset=20 (local.get $n) (local.get $value))))))

  ;; The level for this frame: a straight ramp to each new value.
  (func $level_tick (result f64)
    (local $x f64)
    (local.set $x (f64.promote_f32 (f32.load (global.get $level))))
    (if (f64.ne (local.get $x) (global.get $target)) (then
      (if (i32.or (f64.ne (global.get $target) (global.get $target))
                  (i32.le_u (global.get $ramp) (i32.const 1)))
        (then (global.set $y (local.get $x)) (global.set $left (i32.const 0)))
        (else
          (global.set $step (f64.div (f64.sub (local.get $x) (global.get $y))
                                     (f64.convert_i32_u (global.get $ramp))))
          (global.set $left (global.get $ramp))))
      (global.set $target (local.get $x))))
    (if (i32.gt_u (global.get $left) (i32.const 0)) (then
      (global.set $left (i32.sub (global.get $left) (i32.const 1)))
      (global.set $y
        (if (result f64) (i32.eqz (global.get $left))
          (then (global.get $target))
          (else (f64.add (global.get $y) (global.get $step)))))))
    (global.get $y))

  ;; The pitch: 440 e^((key - 69 + 2 bend) ln2 / 12), key 69 before any note.
  (func $pitch (result f64)
    (local $key f64)
    (local.set $key
      (if (result f64) (i32.load offset=8 (global.get $notes))
        (then (f64.convert_i32_u (i32.load (global.get $notes))))
        (else (f64.const 69))))
    (f64.mul (f64.const 440)
      (call $exp (f64.mul
        (f64.add (f64.sub (local.get $key) (f64.const 69))
                 (f64.mul (f64.const 2) (f64.promote_f32 (f32.load offset=16 (global.get $notes)))))
        (f64.const 0.057762265046662105)))))

  (func (export "process") (param $frames i32) (param $clock i64) (param $n_events i32) (result i32)
    (local $i i32) (local $k i32) (local $e i32) (local $at i32) (local $last i32)
    (local $phase f64) (local $p i32) (local $n i32) (local $y f64)
    (if (i32.gt_u (local.get $frames) (i32.const 8192)) (then (local.set $frames (i32.const 8192))))
    (if (i32.gt_u (local.get $n_events) (global.get $capacity))
      (then (local.set $n_events (global.get $capacity))))
    (local.set $last (i32.sub (local.get $frames) (i32.const 1)))
    (local.set $n (global.get $notes))
    (local.set $phase (f64.load (global.get $osc)))
    (local.set $p (global.get $out))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
        ;; The events at this frame (late ones now, past-the-end ones at the
        ;; last frame).
        (block $applied
          (loop $event
            (br_if $applied (i32.ge_u (local.get $k) (local.get $n_events)))
            (local.set $e (i32.add (global.get $events) (i32.shl (local.get $k) (i32.const 4))))
            (local.set $at (i32.load (local.get $e)))
            (if (i32.gt_u (local.get $at) (local.get $last)) (then (local.set $at (local.get $last))))
            (br_if $applied (i32.gt_u (local.get $at) (local.get $i)))
            (call $apply (local.get $e))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $event)))
        ;; sine * gate * velocity * level, in the Rust SDK's order
        (local.set $y
          (f64.mul
            (f64.mul
              (f64.mul (call $sin_turns (local.get $phase))
                       (f64.convert_i32_u (i32.load offset=4 (local.get $n))))
              (f64.promote_f32 (f32.load offset=12 (local.get $n))))
            (call $level_tick)))
        (f32.store (local.get $p) (f32.demote_f64 (local.get $y)))
        (local.set $phase (f64.add (local.get $phase) (f64.mul (call $pitch) (global.get $inv_sr))))
        (local.set $phase (f64.sub (local.get $phase) (f64.floor (local.get $phase))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $frame)))
    (f64.store (global.get $osc) (local.get $phase))
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
                        (f64.mul (local.get $x2) (f64.const -2.505210838544172e-8)))))))))))))

  ;; e^x for |x| < 8: e^(x/16) by its Taylor series to the 12th power,
  ;; squared four times.
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
      (br_if $series (i32.le_u (local.get $k) (i32.const 12))))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (local.set $y (f64.mul (local.get $y) (local.get $y)))
    (f64.mul (local.get $y) (local.get $y))))
