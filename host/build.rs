//! Build script: reads the contract `wit/lel.wit` with `wit-parser` and
//! generates the table of core-module imports and exports the host checks
//! every module against (`$OUT_DIR/contract_table.rs`); reads the contract's
//! constants `wit/constants.txt` and generates the host's constants
//! (`$OUT_DIR/consts.rs`) and the SDKs' constant files (`$OUT_DIR/sdk/`,
//! checked in under `guest-sdk/` and compared by a test).
//!
//! The names and core signatures come from wit-parser's own canonical-ABI
//! lowering and legacy name mangling, i.e. exactly what `wit-bindgen` derives
//! from the world, so the host can never drift from the WIT file.

use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "build/constants.rs"]
mod constants;

use wit_parser::abi::{AbiVariant, WasmType};
use wit_parser::{
    LiftLowerAbi, ManglingAndAbi, Resolve, WasmExport, WasmExportKind, WasmImport, WorldItem,
};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let wit = manifest.join("../wit/lel.wit");
    let table_path = manifest.join("../wit/constants.txt");
    println!("cargo:rerun-if-changed={}", wit.display());
    println!("cargo:rerun-if-changed={}", table_path.display());
    println!("cargo:rerun-if-changed=build/constants.rs");

    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_file(&wit)
        .unwrap_or_else(|e| panic!("{}: {e:#}", wit.display()));
    let world_id = resolve
        .select_world(&[pkg], Some("signal"))
        .expect("wit/lel.wit defines world `signal`");
    let world = &resolve.worlds[world_id];
    let package = &resolve.packages[pkg].name;
    let version = package
        .version
        .as_ref()
        .expect("the lel:signal package carries a version");
    let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);

    let mut out = String::new();
    writeln!(out, "/// The contract package, e.g. `lel:signal`.").unwrap();
    writeln!(
        out,
        "pub const PACKAGE: &str = \"{}:{}\";",
        package.namespace, package.name
    )
    .unwrap();
    writeln!(out, "/// The contract version this host speaks.").unwrap();
    writeln!(out, "pub const VERSION: &str = \"{version}\";").unwrap();

    // Imports: every function of every imported interface.
    writeln!(out, "/// Functions a module may import.").unwrap();
    writeln!(out, "pub const IMPORTS: &[FuncSpec] = &[").unwrap();
    for (key, item) in &world.imports {
        let WorldItem::Interface { id, .. } = item else {
            panic!("lel.wit: only interface imports are supported");
        };
        for func in resolve.interfaces[*id].functions.values() {
            let (module, name) = resolve.wasm_import_name(
                mangling,
                WasmImport::Func {
                    interface: Some(key),
                    func,
                },
            );
            let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
            emit(&mut out, &module, &name, &sig.params, &sig.results, true);
        }
    }
    writeln!(out, "];").unwrap();

    // Exports: world-level functions plus the canonical-ABI memory.
    writeln!(out, "/// Functions a module exports.").unwrap();
    writeln!(out, "pub const EXPORTS: &[FuncSpec] = &[").unwrap();
    for (key, item) in &world.exports {
        let WorldItem::Function(func) = item else {
            panic!("lel.wit: only function exports are supported");
        };
        let _ = key;
        let name = resolve.wasm_export_name(
            mangling,
            WasmExport::Func {
                interface: None,
                func,
                kind: WasmExportKind::Normal,
            },
        );
        let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
        let optional = func
            .docs
            .contents
            .as_deref()
            .unwrap_or("")
            .trim_start()
            .starts_with("(optional)");
        emit(&mut out, "", &name, &sig.params, &sig.results, optional);
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "/// Name of the exported linear memory.").unwrap();
    writeln!(
        out,
        "pub const MEMORY_EXPORT: &str = \"{}\";",
        resolve.wasm_export_name(mangling, WasmExport::Memory)
    )
    .unwrap();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("contract_table.rs"), out).unwrap();

    // The constants: checked against the prose of lel.wit, then generated
    // for the host and for every SDK.
    let table = constants::parse(&table_path);
    let mut imports = Vec::new();
    let mut host_module = String::new();
    for (key, item) in &world.imports {
        if let WorldItem::Interface { id, .. } = item {
            for func in resolve.interfaces[*id].functions.values() {
                host_module = resolve
                    .wasm_import_name(
                        mangling,
                        WasmImport::Func {
                            interface: Some(key),
                            func,
                        },
                    )
                    .0;
                imports.push(func);
            }
        }
    }
    let doc = |name: &str| -> &str {
        let import = imports.iter().find(|f| f.name == name).copied();
        let export = world.exports.values().find_map(|item| match item {
            WorldItem::Function(f) if f.name == name => Some(f),
            _ => None,
        });
        import
            .or(export)
            .and_then(|f| f.docs.contents.as_deref())
            .unwrap_or_else(|| panic!("wit/lel.wit: `{name}` is missing or has no doc"))
    };
    constants::check_wit_prose(
        &table,
        doc("claim"),
        doc("log"),
        doc("init"),
        doc("state-ptr"),
    );
    std::fs::write(out_dir.join("consts.rs"), constants::host(&table)).unwrap();
    let contract = constants::Contract {
        package: format!("{}:{}@{version}", package.namespace, package.name),
        host_module,
        imports,
        table: &table,
    };
    let sdk = out_dir.join("sdk");
    std::fs::create_dir_all(&sdk).unwrap();
    for (file, text) in [
        ("contract.rs", constants::rust(&contract)),
        ("lel_constants.h", constants::c(&contract)),
        ("lel_constants.zig", constants::zig(&contract)),
        ("lel_constants.ts", constants::assemblyscript(&contract)),
    ] {
        std::fs::write(sdk.join(file), text).unwrap();
    }
}

fn emit(
    out: &mut String,
    module: &str,
    name: &str,
    params: &[WasmType],
    results: &[WasmType],
    optional: bool,
) {
    let ty = |t: &WasmType| match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => "CoreType::I32",
        WasmType::I64 | WasmType::PointerOrI64 => "CoreType::I64",
        WasmType::F32 => "CoreType::F32",
        WasmType::F64 => "CoreType::F64",
    };
    let list = |ts: &[WasmType]| ts.iter().map(ty).collect::<Vec<_>>().join(", ");
    writeln!(
        out,
        "    FuncSpec {{ module: \"{module}\", name: \"{name}\", params: &[{}], results: &[{}], optional: {optional} }},",
        list(params),
        list(results)
    )
    .unwrap();
}
