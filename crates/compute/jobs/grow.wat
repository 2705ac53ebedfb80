;; A WASM job that asks for memory: grows by n pages of 64 KiB (ASCII decimal input),
;; writes the last byte and reads it back, and answers "ok". Over the node's memory cap
;; the grow traps, so the call fails with a clear error instead of using the memory.
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $i i32) (local $c i32) (local $last i32)
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
    (if (i32.eq (memory.grow (local.get $n)) (i32.const -1)) (then unreachable))
    (local.set $last (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 1)))
    (i32.store8 (local.get $last) (i32.const 7))
    (if (i32.ne (i32.load8_u (local.get $last)) (i32.const 7)) (then unreachable))
    (i32.store8 (i32.const 512) (i32.const 111))
    (i32.store8 (i32.const 513) (i32.const 107))
    (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 2)))
)
