;; Test plugin `test-multi-memory`: a component whose core module declares two linear
;; memories, as a component may. Each request grows both by 40 MiB: under a per-memory cap
;; of 64 MiB each growth passes, but together they exceed the instance's cap, which covers
;; all memories (and tables) of an instance.
;;
;; Written in WAT because Rust cannot produce a second memory: `plugins/artifacts/build.rs`
;; parses it, embeds the `plugin` world of `plugin-sdk/wit`, and encodes the component with
;; `wit-component`. The exports follow the canonical ABI: `manifest` returns a pointer to a
;; static manifest record, `handle`, `render-webhook` and `render-ledger-webhook` take their (spilled) arguments by
;; pointer and return a pointer to a static result.
(module
  (memory $main (export "memory") 1)
  (memory $scratch 1)

  ;; Strings.
  (data (i32.const 0x100) "multi-memory")
  (data (i32.const 0x110) "0.1.0")
  (data (i32.const 0x118) "GET")
  (data (i32.const 0x120) "/memory/grow")
  ;; list<string> of methods: ["GET"]
  (data (i32.const 0x130) "\18\01\00\00\03\00\00\00")
  ;; route { methods: (0x130, 1), path: (0x120, 12) }
  (data (i32.const 0x140) "\30\01\00\00\01\00\00\00\20\01\00\00\0c\00\00\00")
  ;; manifest { name, version, routes: (0x140, 1), settings-schema: none, credentials: [] }
  (data (i32.const 0x200)
    "\00\01\00\00\0c\00\00\00"
    "\10\01\00\00\05\00\00\00"
    "\40\01\00\00\01\00\00\00"
    "\00\00\00\00\00\00\00\00\00\00\00\00"
    "\00\00\00\00\00\00\00\00")
  ;; http-response { status: 200, headers: [], body: [] }
  (data (i32.const 0x300) "\c8\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  ;; option<webhook-delivery>: none
  (data (i32.const 0x340) "\00")

  ;; A bump allocator in the main memory, for the arguments the host passes in.
  (global $heap (mut i32) (i32.const 0x1000))
  (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $fits
      (br_if $fits
        (i32.le_u (global.get $heap) (i32.mul (memory.size $main) (i32.const 65536))))
      (br_if $fits
        (i32.ne
          (memory.grow $main
            (i32.add
              (i32.shr_u
                (i32.sub (global.get $heap) (i32.mul (memory.size $main) (i32.const 65536)))
                (i32.const 16))
              (i32.const 1)))
          (i32.const -1)))
      unreachable)
    (local.get $ptr))

  (func (export "manifest") (result i32)
    (i32.const 0x200))

  (func (export "handle") (param i32) (result i32)
    ;; 640 pages = 40 MiB in each memory.
    (if (i32.eq (memory.grow $main (i32.const 640)) (i32.const -1)) (then unreachable))
    (if (i32.eq (memory.grow $scratch (i32.const 640)) (i32.const -1)) (then unreachable))
    (i32.const 0x300))

  (func (export "render-webhook") (param i32) (result i32)
    (i32.const 0x340))

  ;; The same static `none` as `render-webhook`.
  (func (export "render-ledger-webhook") (param i32) (result i32)
    (i32.const 0x340)))
