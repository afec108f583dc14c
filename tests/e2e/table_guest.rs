//! A guest that writes function references into its own table, for the isolation test of
//! tables. Rust cannot emit `table.set` or `table.grow` (its function table is fixed at
//! link time), but a guest in another language may (C through clang's builtins, a runtime
//! that links libraries at start), so this one is a core module in the text format,
//! made a component of the `base` world with `wit-component`, as `wasm-tools component new`
//! would.
//!
//! `token`, `introspect` and `revoke` each answer 200 with what they found in the table on
//! entry and what it held after they left their marks: slot 0 set to a function, the table
//! grown by one.
//!
//! ```json
//! {"size":1,"slot":0,"size_after":2,"slot_after":1}
//! ```

use std::path::{Path, PathBuf};

/// The core module. Its memory holds, at fixed offsets, the answers' records and the body's
/// template; `cabi_realloc` hands out memory above them for the request's parameters.
const MODULE: &str = r#"
(module
  (memory (export "memory") 1)
  (table $table 1 funcref)
  (elem declare func $probe)
  (global $heap (mut i32) (i32.const 4096))

  ;; guest-info { name, version } at 1024
  (data (i32.const 1024) "\00\01\00\00\10\00\00\00\20\01\00\00\05\00\00\00")
  (data (i32.const 256) "table-test-guest")
  (data (i32.const 288) "0.1.0")
  ;; response { status: 200, headers: [], body } at 1040
  (data (i32.const 1040) "\c8\00\00\00\00\00\00\00\00\00\00\00\00\08\00\00\31\00\00\00")
  ;; the body at 2048; its digits at 2056, 2065, 2080, 2095
  (data (i32.const 2048) "{\"size\":0,\"slot\":0,\"size_after\":0,\"slot_after\":0}")

  (func $digit (param $at i32) (param $value i32)
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (local.get $value))))

  (func $slot_set (result i32)
    (i32.eqz (ref.is_null (table.get $table (i32.const 0)))))

  ;; token, introspect and revoke: (params, authorization, client-ip) flattened.
  (func $probe (param i32 i32 i32 i32 i32 i32 i32) (result i32)
    (call $digit (i32.const 2056) (table.size $table))
    (call $digit (i32.const 2065) (call $slot_set))
    (table.set $table (i32.const 0) (ref.func $probe))
    (drop (table.grow $table (ref.func $probe) (i32.const 1)))
    (call $digit (i32.const 2080) (table.size $table))
    (call $digit (i32.const 2095) (call $slot_set))
    (i32.const 1040))

  (func $info (result i32) (i32.const 1024))
  (func $metadata (result i32) (i32.const 1040))

  ;; A bump allocator: the host only asks for new memory while it lowers a request.
  (func $realloc (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
    (result i32)
    (local $ptr i32)
    (if (local.get $old) (then unreachable))
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then
        (drop (memory.grow
          (i32.add (i32.const 1)
            (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
              (i32.const 16)))))))
    (local.get $ptr))

  (export "cabi_realloc" (func $realloc))
  (export "tokenginx:oauth/handler@VERSION#info" (func $info))
  (export "tokenginx:oauth/handler@VERSION#token" (func $probe))
  (export "tokenginx:oauth/handler@VERSION#introspect" (func $probe))
  (export "tokenginx:oauth/handler@VERSION#revoke" (func $probe))
  (export "tokenginx:oauth/handler@VERSION#metadata" (func $metadata)))
"#;

/// The component, written into `dir`.
pub fn table_guest(dir: &Path) -> PathBuf {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1");
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(&wit).unwrap();
    let world = resolve.select_world(&[package], Some("base")).unwrap();
    // The exports are named by the contract's version, whatever it is now.
    let version = resolve.packages[package].name.version.as_ref().unwrap();
    let mut module = wat::parse_str(MODULE.replace("VERSION", &version.to_string())).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let path = dir.join("table_test_guest.wasm");
    std::fs::write(&path, component).unwrap();
    path
}
