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

/// The contract version whose imports the SDKs' generated constant files
/// declare (`guest-sdk/src/contract.rs`, `lel_constants.h`, ...): the SDKs
/// move to a new version all at once, by changing this and running
/// `scripts/gen-constants`.
const SDK_VERSION: &str = "0.2.0";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let wit = manifest.join("../wit/lel.wit");
    let table_path = manifest.join("../wit/constants.txt");
    println!("cargo:rerun-if-changed={}", wit.display());
    println!("cargo:rerun-if-changed={}", table_path.display());
    println!("cargo:rerun-if-changed=build/constants.rs");

    let mut resolve = Resolve::default();
    let main_pkg = resolve
        .push_file(&wit)
        .unwrap_or_else(|e| panic!("{}: {e:#}", wit.display()));
    let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);
    let main_name = resolve.packages[main_pkg].name.clone();

    // Every version of the package in the file (the main one and the nested
    // ones), oldest first.
    let mut versions: Vec<_> = resolve
        .packages
        .iter()
        .filter(|(_, p)| p.name.namespace == main_name.namespace && p.name.name == main_name.name)
        .map(|(id, p)| {
            let v = p
                .name
                .version
                .clone()
                .unwrap_or_else(|| panic!("lel.wit: package {} carries no version", p.name));
            (v, id)
        })
        .collect();
    versions.sort();
    let newest = versions
        .last()
        .expect("lel.wit defines the package")
        .0
        .clone();
    assert_eq!(
        main_name.version.as_ref(),
        Some(&newest),
        "lel.wit: the file's main package must be the newest version (older ones are nested)"
    );
    let sdk_version = SDK_VERSION;
    assert!(
        versions.iter().any(|(v, _)| v.to_string() == sdk_version),
        "build.rs: SDK_VERSION {SDK_VERSION} is not a version in lel.wit"
    );

    let mut out = String::new();
    writeln!(out, "/// The contract package, e.g. `lel:signal`.").unwrap();
    writeln!(
        out,
        "pub const PACKAGE: &str = \"{}:{}\";",
        main_name.namespace, main_name.name
    )
    .unwrap();
    writeln!(out, "/// The newest contract version this host speaks.").unwrap();
    writeln!(out, "pub const VERSION: &str = \"{newest}\";").unwrap();
    writeln!(
        out,
        "/// The contract version the SDKs' generated constant files declare."
    )
    .unwrap();
    writeln!(out, "pub const SDK_VERSION: &str = \"{SDK_VERSION}\";").unwrap();
    writeln!(
        out,
        "/// Every contract version this host speaks, oldest first."
    )
    .unwrap();
    writeln!(out, "pub const VERSIONS: &[VersionSpec] = &[").unwrap();
    let mut sdk = None;
    for (version, pkg) in &versions {
        let world_id = resolve
            .select_world(&[*pkg], Some("signal"))
            .unwrap_or_else(|e| {
                panic!("lel.wit: lel:signal@{version} defines no world `signal`: {e}")
            });
        let world = &resolve.worlds[world_id];
        let mut imports = Vec::new();
        let mut host_module = String::new();
        writeln!(out, "    VersionSpec {{").unwrap();
        writeln!(out, "        version: \"{version}\",").unwrap();
        let mut table = String::new();
        writeln!(table, "        imports: &[").unwrap();
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
                emit(&mut table, &module, &name, &sig.params, &sig.results, true);
                host_module = module;
                imports.push(func);
            }
        }
        writeln!(table, "        ],").unwrap();
        writeln!(out, "        host_module: \"{host_module}\",").unwrap();
        out.push_str(&table);
        // Exports: world-level functions plus the canonical-ABI memory.
        writeln!(out, "        exports: &[").unwrap();
        for item in world.exports.values() {
            let WorldItem::Function(func) = item else {
                panic!("lel.wit: only function exports are supported");
            };
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
        writeln!(out, "        ],").unwrap();
        writeln!(out, "    }},").unwrap();
        if version.to_string() == sdk_version {
            sdk = Some((host_module, imports, world_id));
        }
        if *version == newest {
            check_prose(&resolve, world_id, &table_path);
        }
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

    // The constants, generated for the host and for every SDK (the SDKs
    // declare the imports of `SDK_VERSION`).
    let table = constants::parse(&table_path);
    std::fs::write(out_dir.join("consts.rs"), constants::host(&table)).unwrap();
    let (host_module, imports, _) = sdk.expect("checked above");
    let contract = constants::Contract {
        package: format!("{}:{}@{sdk_version}", main_name.namespace, main_name.name),
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

/// The prose of the newest version must state the table's numbers.
fn check_prose(resolve: &Resolve, world_id: wit_parser::WorldId, table_path: &std::path::Path) {
    let table = constants::parse(table_path);
    let world = &resolve.worlds[world_id];
    let mut funcs = Vec::new();
    for item in world.imports.values() {
        if let WorldItem::Interface { id, .. } = item {
            funcs.extend(resolve.interfaces[*id].functions.values());
        }
    }
    for item in world.exports.values() {
        if let WorldItem::Function(f) = item {
            funcs.push(f);
        }
    }
    let doc = |name: &str| -> &str {
        funcs
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.docs.contents.as_deref())
            .unwrap_or_else(|| panic!("wit/lel.wit: `{name}` is missing or has no doc"))
    };
    constants::check_wit_prose(
        &table,
        &constants::Docs {
            claim: doc("claim"),
            log: doc("log"),
            param: doc("param"),
            init: doc("init"),
            state_ptr: doc("state-ptr"),
            events_len: doc("events-len"),
            process: doc("process"),
        },
    );
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
        "            FuncSpec {{ module: \"{module}\", name: \"{name}\", params: &[{}], results: &[{}], optional: {optional} }},",
        list(params),
        list(results)
    )
    .unwrap();
}
