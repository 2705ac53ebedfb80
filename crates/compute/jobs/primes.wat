;; A deterministic WASM job: counts the primes below n by trial division.
;; Input: n as ASCII decimal. Output: the count as ASCII decimal.
;; ABI (every EMC wasm job): export `memory`, `alloc(len) -> ptr` for the input, and
;; `run(ptr, len) -> i64` returning (output pointer << 32) | output length.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $i i32) (local $c i32) (local $count i32)
    (local $d i32) (local $prime i32) (local $out i32) (local $olen i32)
    ;; parse the decimal input, stopping at the first non-digit
    (block $parsed
      (loop $parse
        (br_if $parsed (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (br_if $parsed (i32.lt_u (local.get $c) (i32.const 48)))
        (br_if $parsed (i32.gt_u (local.get $c) (i32.const 57)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (local.get $c) (i32.const 48))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $parse)))
    ;; count primes below n
    (local.set $i (i32.const 2))
    (block $end
      (loop $outer
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $prime (i32.const 1))
        (local.set $d (i32.const 2))
        (block $dend
          (loop $inner
            (br_if $dend (i32.gt_u (i32.mul (local.get $d) (local.get $d)) (local.get $i)))
            (if (i32.eqz (i32.rem_u (local.get $i) (local.get $d)))
              (then (local.set $prime (i32.const 0)) (br $dend)))
            (local.set $d (i32.add (local.get $d) (i32.const 1)))
            (br $inner)))
        (local.set $count (i32.add (local.get $count) (local.get $prime)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    ;; the count in decimal, written backwards ending at byte 528
    (local.set $out (i32.const 528))
    (loop $digits
      (local.set $out (i32.sub (local.get $out) (i32.const 1)))
      (i32.store8 (local.get $out)
                  (i32.add (i32.rem_u (local.get $count) (i32.const 10)) (i32.const 48)))
      (local.set $olen (i32.add (local.get $olen) (i32.const 1)))
      (br_if $digits (local.tee $count (i32.div_u (local.get $count) (i32.const 10)))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $olen))))
)
