//! The `lel:signal` contract: the import/export table generated from
//! `wit/lel.wit` at build time, and [`validate`], which checks a module's
//! bytes against it before anything is compiled. Runs on loader threads.

use std::fmt;

use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};

/// A core WebAssembly value type as it appears in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreType {
    I32,
    I64,
    F32,
    F64,
}

/// One function of the contract at the core-module level.
#[derive(Debug)]
pub struct FuncSpec {
    /// Import module (empty for exports).
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [CoreType],
    pub results: &'static [CoreType],
    /// May the module leave it out?
    pub optional: bool,
}

/// One version of the contract, as `wit/lel.wit` defines it.
#[derive(Debug)]
pub struct VersionSpec {
    /// `0.1.0`, `0.2.0`.
    pub version: &'static str,
    /// The import module of the host's functions, e.g. `lel:signal/host@0.2.0`.
    pub host_module: &'static str,
    pub imports: &'static [FuncSpec],
    pub exports: &'static [FuncSpec],
}

include!(concat!(env!("OUT_DIR"), "/contract_table.rs"));

/// The contract versions a module can be built against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContractVersion {
    /// `lel:signal@0.1.0`: state, `init`, `process(frames, clock)`.
    #[default]
    V0_1,
    /// `lel:signal@0.2.0`: adds parameters (`param`), the event buffer
    /// (`events-ptr`/`events-len`) and `process(frames, clock, events)`.
    V0_2,
}

impl ContractVersion {
    /// Its table, generated from `wit/lel.wit`.
    pub fn spec(self) -> &'static VersionSpec {
        let v = match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        };
        spec(v).expect("wit/lel.wit defines 0.1.0 and 0.2.0")
    }
}

/// The table of contract version `version` (`0.1.0`, `0.2.0`).
pub fn spec(version: &str) -> Option<&'static VersionSpec> {
    VERSIONS.iter().find(|v| v.version == version)
}

/// The newest contract version's table.
pub fn newest() -> &'static VersionSpec {
    VERSIONS.last().expect("wit/lel.wit defines a version")
}

/// The import module of the newest contract version, e.g.
/// `lel:signal/host@0.2.0` (each version has its own: see [`VERSIONS`]).
pub fn host_module() -> &'static str {
    newest().host_module
}

/// The newest version's imports.
pub const IMPORTS: &[FuncSpec] = VERSIONS[VERSIONS.len() - 1].imports;
/// The newest version's exports.
pub const EXPORTS: &[FuncSpec] = VERSIONS[VERSIONS.len() - 1].exports;

/// `0.1.0 and 0.2.0`.
fn versions_spoken() -> String {
    let v: Vec<&str> = VERSIONS.iter().map(|v| v.version).collect();
    match v.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => v.join(""),
    }
}

/// The contract's numbers (error codes, log levels, limits) as tabled in
/// `wit/constants.txt`, the table the SDKs' constants are generated from.
pub use crate::rt::consts::{Constant, TABLE as CONSTANTS};

/// Largest module file the host accepts (`wit/constants.txt`).
pub const MAX_MODULE_BYTES: usize = crate::rt::consts::MAX_MODULE_BYTES as usize;
/// Largest `.wat` text parsed (16 MiB): parsing text takes about ten times
/// its size in memory and seconds for tens of MiB; a hand-written module is
/// kilobytes, and text that large comes from a tool that can write `.wasm`.
pub const MAX_TEXT_BYTES: usize = 16 << 20;

/// Most functions one module may define: compile time and memory grow with
/// it (50,000 small functions took 6 to 12 s and 300 MB to compile here).
pub const MAX_FUNCTIONS: u32 = 10_000;
/// Most bytes in a module's code section.
pub const MAX_CODE_BYTES: u64 = 8 << 20;
/// Most bytes in one function body.
pub const MAX_FUNCTION_BYTES: u64 = 1 << 20;

/// What [`validate`] learned about a module that satisfies the contract.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// The contract version it was built against.
    pub version: ContractVersion,
    /// The module exports `state-ptr` and `state-len`.
    pub has_state_region: bool,
    /// The module exports `events-ptr` and `events-len` (0.2.0 only).
    pub has_event_buffer: bool,
    /// The host functions it imports (`claim`, `log`, `param`).
    pub imports: Vec<String>,
}

/// Why a module does not satisfy the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("not a WebAssembly module (it does not start with the `\\0asm` magic bytes){hint}")]
    NotWasm { hint: &'static str },
    #[error(
        "truncated file: the module ends in the middle of a section (was it still being written?)"
    )]
    Truncated,
    #[error("the file is {size} bytes, above the {max}-byte limit for a signal module")]
    TooLarge { size: usize, max: usize },
    #[error(
        "the WAT text is {size} bytes, above the {max}-byte limit for text (parsing it would take seconds and hundreds of MB); give lel-host the binary `.wasm` (`wasm-tools parse` or your compiler writes it)"
    )]
    TextTooLarge { size: usize, max: usize },
    #[error(
        "the module defines {count} functions, above the limit of {max} per signal (no hand-written or SDK-built signal comes near it; compiling it would take seconds and hundreds of MB)"
    )]
    TooManyFunctions { count: u32, max: u32 },
    #[error(
        "the module has {size} bytes of code, above the limit of {max} per signal (compiling it would take too long and too much memory)"
    )]
    CodeTooLarge { size: u64, max: u64 },
    #[error(
        "function {index} has {size} bytes of code, above the limit of {max} for one function (compiling it would take too long and too much memory)"
    )]
    FunctionTooLarge { index: u32, size: u64, max: u64 },
    #[error(
        "this is a WebAssembly component; lel-host plays core modules (build for `wasm32-unknown-unknown`, not a component target)"
    )]
    Component,
    #[error(
        "its memory is shared (the WebAssembly threads proposal); a signal's memory may not be (build without threads: no `-pthread`, no `+atomics`/`+shared-memory`)"
    )]
    SharedMemory,
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    #[error(
        "module targets `{module}`, this host speaks {speaks} (rebuild it against lel:signal@{newest})"
    )]
    WrongVersion {
        module: String,
        speaks: String,
        newest: &'static str,
    },
    #[error(
        "imports `{first}` from `{first_module}` and `{second}` from `{second_module}`: a module is built against one contract version (rebuild it against lel:signal@{newest} alone)"
    )]
    MixedVersions {
        first: String,
        first_module: String,
        second: String,
        second_module: String,
        newest: &'static str,
    },
    #[error(
        "imports `{name}` from `{module}`, which lel-host does not provide: a signal may import only {allowed} from `{host}` (build without libc/WASI, e.g. `-nostdlib`)"
    )]
    UnknownImport {
        module: String,
        name: String,
        allowed: String,
        host: &'static str,
    },
    #[error("import `{name}` has type {got}, expected {expected}")]
    ImportType {
        name: String,
        got: Signature,
        expected: Signature,
    },
    #[error("missing export `{name}`: a signal must export {required}")]
    MissingExport {
        name: &'static str,
        required: String,
    },
    #[error("export `{name}` is a {kind}, expected a {expected}")]
    ExportKind {
        name: &'static str,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("`{name}` has type {got}, expected {expected}")]
    ExportType {
        name: &'static str,
        got: Signature,
        /// The type expected, and which version it is of and why, when
        /// that matters.
        expected: String,
    },
    #[error(
        "exports `{present}` but not `{missing}`: the event buffer needs both (or neither, for a module that takes no events)"
    )]
    HalfEventBuffer {
        present: &'static str,
        missing: &'static str,
    },
    #[error(
        "exports `{present}` but not `{missing}`: the state region needs both (or neither, for a module that claims nothing)"
    )]
    HalfStateRegion {
        present: &'static str,
        missing: &'static str,
    },
}

/// A function type, printed as `(i32, i64) -> i32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub params: Vec<CoreType>,
    pub results: Vec<CoreType>,
}

impl Signature {
    fn of(spec: &FuncSpec) -> Self {
        Signature {
            params: spec.params.to_vec(),
            results: spec.results.to_vec(),
        }
    }
}

impl fmt::Display for CoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoreType::I32 => "i32",
            CoreType::I64 => "i64",
            CoreType::F32 => "f32",
            CoreType::F64 => "f64",
        })
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[CoreType]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({}) -> ", list(&self.params))?;
        match self.results.as_slice() {
            [] => f.write_str("()"),
            [one] => write!(f, "{one}"),
            many => write!(f, "({})", list(many)),
        }
    }
}

/// A function type the module declares: `Err` holds a printable name for
/// types outside the contract's vocabulary (v128, references).
fn core_type(t: ValType) -> Result<CoreType, ()> {
    match t {
        ValType::I32 => Ok(CoreType::I32),
        ValType::I64 => Ok(CoreType::I64),
        ValType::F32 => Ok(CoreType::F32),
        ValType::F64 => Ok(CoreType::F64),
        _ => Err(()),
    }
}

/// Turn `.wat` text or `.wasm` bytes into module bytes. `is_text` comes from
/// the file name (`.wat`); binary input is passed through untouched.
pub fn to_binary(bytes: &[u8], is_text: bool) -> Result<Vec<u8>, ContractError> {
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(ContractError::TooLarge {
            size: bytes.len(),
            max: MAX_MODULE_BYTES,
        });
    }
    if is_text {
        if bytes.len() > MAX_TEXT_BYTES {
            return Err(ContractError::TextTooLarge {
                size: bytes.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        return wat::parse_bytes(bytes)
            .map(|b| b.into_owned())
            .map_err(|e| {
                ContractError::Invalid(format!(
                    "WAT text does not parse: {}",
                    one_line_wat_error(&e)
                ))
            });
    }
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.to_vec());
    }
    let trimmed = bytes.trim_ascii_start();
    let hint = if trimmed.starts_with(b"(") || trimmed.starts_with(b";;") {
        "; it looks like WAT text: give it the `.wat` extension"
    } else if bytes.is_empty() {
        "; the file is empty (was it still being written?)"
    } else if b"\0asm".starts_with(bytes) {
        "; the file is cut short (was it still being written?)"
    } else {
        ""
    };
    Err(ContractError::NotWasm { hint })
}

/// The WAT parser's message on one line: `expected `)` at line 1, column 14`
/// (its own text adds a multi-line excerpt of the source).
fn one_line_wat_error(e: &wat::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim().to_string();
    let at = lines
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|loc| {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next()?;
            let line = parts.next()?;
            Some(format!(" at line {line}, column {col}"))
        })
        .unwrap_or_default();
    format!("{first}{at}")
}

/// Check the limits that bound compile time and memory: function count,
/// code size, function size; and that no memory is shared (parse errors go
/// through `parse_err`).
fn compile_limits(
    bytes: &[u8],
    parse_err: impl Fn(wasmparser::BinaryReaderError) -> ContractError,
) -> Result<(), ContractError> {
    let mut index = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(&parse_err)? {
            Payload::FunctionSection(reader) if reader.count() > MAX_FUNCTIONS => {
                return Err(ContractError::TooManyFunctions {
                    count: reader.count(),
                    max: MAX_FUNCTIONS,
                });
            }
            Payload::CodeSectionStart { size, .. } if size as u64 > MAX_CODE_BYTES => {
                return Err(ContractError::CodeTooLarge {
                    size: size as u64,
                    max: MAX_CODE_BYTES,
                });
            }
            // Shared memories are the threads proposal's, which the
            // engines enable for lel-host's own stop flags only.
            Payload::MemorySection(reader) => {
                for memory in reader {
                    if memory.map_err(&parse_err)?.shared {
                        return Err(ContractError::SharedMemory);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let wasmparser::TypeRef::Memory(m) = import.map_err(&parse_err)?.ty
                        && m.shared
                    {
                        return Err(ContractError::SharedMemory);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len() as u64;
                if size > MAX_FUNCTION_BYTES {
                    return Err(ContractError::FunctionTooLarge {
                        index,
                        size,
                        max: MAX_FUNCTION_BYTES,
                    });
                }
                index += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Check module bytes against the contract generated from `wit/lel.wit`.
///
/// # Errors
/// A [`ContractError`] saying what is wrong and what would fix it.
pub fn validate(bytes: &[u8]) -> Result<Shape, ContractError> {
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(ContractError::TooLarge {
            size: bytes.len(),
            max: MAX_MODULE_BYTES,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return to_binary(bytes, false).map(|_| Shape::default());
    }
    if bytes.len() < 8 {
        return Err(ContractError::Truncated);
    }
    if wasmparser::Parser::is_component(bytes) {
        return Err(ContractError::Component);
    }
    // The compile limits first: they are cheap to check, and a module over
    // them is not worth validating.
    compile_limits(bytes, parse_err)?;
    // Full validation first, so that nothing malformed reaches the compiler.
    wasmparser::Validator::new()
        .validate_all(bytes)
        .map_err(parse_err)?;
    let Sections {
        types,
        func_types,
        exports,
        mut shape,
        version,
    } = read_sections(bytes)?;
    // A module that imports nothing is told apart by its `process`: the
    // 0.2.0 one takes `events`.
    let by_imports = version.is_some();
    let version = version.unwrap_or_else(|| {
        let process = exports
            .iter()
            .find(|(n, k, _)| n == "process" && *k == ExternalKind::Func)
            .and_then(|(_, _, i)| func_types.get(*i as usize))
            .and_then(|&t| types.get(t as usize).cloned().flatten());
        let v2 = ContractVersion::V0_2.spec();
        let v2_process = v2.exports.iter().find(|f| f.name == "process");
        match (process, v2_process) {
            (Some(p), Some(f)) if p == Signature::of(f) => ContractVersion::V0_2,
            _ => ContractVersion::V0_1,
        }
    });
    shape.version = version;
    (shape.has_state_region, shape.has_event_buffer) =
        check_exports(&exports, &func_types, &types, version, by_imports)?;
    Ok(shape)
}

/// A parse error: a module cut short, or another malformation.
fn parse_err(e: wasmparser::BinaryReaderError) -> ContractError {
    let msg = e.to_string();
    if msg.contains("unexpected end") || msg.contains("end of file") || msg.contains("end-of-file")
    {
        ContractError::Truncated
    } else {
        ContractError::Invalid(msg)
    }
}

/// What [`validate`] reads from a module's sections.
struct Sections {
    /// Each type's signature (`None`: not a plain function type).
    types: Vec<Option<Signature>>,
    /// The type index of every function, imports first.
    func_types: Vec<u32>,
    exports: Vec<(String, ExternalKind, u32)>,
    /// Its imports so far.
    shape: Shape,
    /// The contract version its imports name (`None`: it imports nothing).
    version: Option<ContractVersion>,
}

/// Read the types, imports (checked against the contract), functions and
/// exports of a validated module.
fn read_sections(bytes: &[u8]) -> Result<Sections, ContractError> {
    let mut types: Vec<Option<Signature>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut shape = Shape::default();
    // The version its imports name (the first import decides; the others
    // must agree), and that first import.
    let mut version: Option<ContractVersion> = None;
    let mut first_import: Option<(String, String)> = None;

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(parse_err)? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(parse_err)?;
                    let params: Result<Vec<_>, _> =
                        ty.params().iter().map(|&t| core_type(t)).collect();
                    let results: Result<Vec<_>, _> =
                        ty.results().iter().map(|&t| core_type(t)).collect();
                    types.push(match (params, results) {
                        (Ok(params), Ok(results)) => Some(Signature { params, results }),
                        _ => None,
                    });
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(parse_err)?;
                    let spec = import_version(&import, &mut first_import)?;
                    func_types.push(check_import(&import, spec, &types)?);
                    if version.is_none() {
                        version = Some(if spec.version == "0.1.0" {
                            ContractVersion::V0_1
                        } else {
                            ContractVersion::V0_2
                        });
                    }
                    shape.imports.push(import.name.to_string());
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    func_types.push(ty.map_err(parse_err)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(parse_err)?;
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }

    Ok(Sections {
        types,
        func_types,
        exports,
        shape,
        version,
    })
}

/// The contract version an import belongs to; an import from another
/// version than the module's first import is an error.
fn import_version(
    import: &wasmparser::Import<'_>,
    first: &mut Option<(String, String)>,
) -> Result<&'static VersionSpec, ContractError> {
    let Some(spec) = VERSIONS.iter().find(|v| v.host_module == import.module) else {
        let newest = newest();
        let package_prefix = newest
            .host_module
            .split('@')
            .next()
            .unwrap_or(newest.host_module);
        if import.module.starts_with(package_prefix) && import.module.contains('@') {
            return Err(ContractError::WrongVersion {
                module: import.module.to_string(),
                speaks: versions_spoken(),
                newest: VERSION,
            });
        }
        return Err(unknown_import(import.module, import.name, newest));
    };
    match first {
        Some((module, name)) if *module != import.module => Err(ContractError::MixedVersions {
            first: name.clone(),
            first_module: module.clone(),
            second: import.name.to_string(),
            second_module: import.module.to_string(),
            newest: VERSION,
        }),
        Some(_) => Ok(spec),
        None => {
            *first = Some((import.module.to_string(), import.name.to_string()));
            Ok(spec)
        }
    }
}

/// The exports `version` asks for, with their kinds and types; whether
/// the module has a state region and an event buffer (each a pair of
/// optional exports: both, or neither). `by_imports`: the version was
/// decided by the module's imports (else by its `process`).
fn check_exports(
    exports: &[(String, ExternalKind, u32)],
    func_types: &[u32],
    types: &[Option<Signature>],
    version: ContractVersion,
    by_imports: bool,
) -> Result<(bool, bool), ContractError> {
    let spec = version.spec();
    let find = |name: &str| exports.iter().find(|(n, _, _)| n == name);
    match find(MEMORY_EXPORT) {
        None => {
            return Err(ContractError::MissingExport {
                name: MEMORY_EXPORT,
                required: required_exports(spec),
            });
        }
        Some((_, ExternalKind::Memory, _)) => {}
        Some((_, kind, _)) => {
            return Err(ContractError::ExportKind {
                name: MEMORY_EXPORT,
                kind: kind_name(*kind),
                expected: "memory",
            });
        }
    }
    for f in spec.exports {
        let Some((_, kind, index)) = find(f.name) else {
            if f.optional {
                continue;
            }
            return Err(ContractError::MissingExport {
                name: f.name,
                required: required_exports(spec),
            });
        };
        if *kind != ExternalKind::Func {
            return Err(ContractError::ExportKind {
                name: f.name,
                kind: kind_name(*kind),
                expected: "function",
            });
        }
        let got = func_types
            .get(*index as usize)
            .and_then(|&t| types.get(t as usize).cloned().flatten());
        let expected = Signature::of(f);
        if got.as_ref() != Some(&expected) {
            let why = match (version, f.name) {
                (ContractVersion::V0_2, "process") if by_imports => format!(
                    " (it imports from `{}`, so it is a {} module, whose `process` takes `events`)",
                    spec.host_module, spec.version
                ),
                (ContractVersion::V0_1, "process") => {
                    let v2 = ContractVersion::V0_2.spec();
                    let v2_process = v2
                        .exports
                        .iter()
                        .find(|f| f.name == "process")
                        .map(|f| Signature::of(f).to_string())
                        .unwrap_or_default();
                    if by_imports {
                        format!(
                            " (it imports from `{}`, so it is a {} module; a {} module's `process` is {v2_process} and imports from `{}`)",
                            spec.host_module, spec.version, v2.version, v2.host_module
                        )
                    } else {
                        format!(" ({}), or {v2_process} ({})", spec.version, v2.version)
                    }
                }
                _ => String::new(),
            };
            return Err(ContractError::ExportType {
                name: f.name,
                got: got.unwrap_or(Signature {
                    params: vec![],
                    results: vec![],
                }),
                expected: format!("{expected}{why}"),
            });
        }
    }
    let pair = |a: &'static str, b: &'static str| -> Result<bool, (&'static str, &'static str)> {
        let has = |n: &str| spec.exports.iter().any(|f| f.name == n) && find(n).is_some();
        match (has(a), has(b)) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) => Err((a, b)),
            (false, true) => Err((b, a)),
        }
    };
    let state = pair("state-ptr", "state-len")
        .map_err(|(present, missing)| ContractError::HalfStateRegion { present, missing })?;
    let events = pair("events-ptr", "events-len")
        .map_err(|(present, missing)| ContractError::HalfEventBuffer { present, missing })?;
    Ok((state, events))
}

/// One import from the host module of contract version `spec`: a known
/// function with the contract's type. Returns its type index.
fn check_import(
    import: &wasmparser::Import<'_>,
    spec: &'static VersionSpec,
    types: &[Option<Signature>],
) -> Result<u32, ContractError> {
    let Some(f) = spec.imports.iter().find(|f| f.name == import.name) else {
        return Err(unknown_import(import.module, import.name, spec));
    };
    let TypeRef::Func(ty) = import.ty else {
        return Err(unknown_import(import.module, import.name, spec));
    };
    let expected = Signature::of(f);
    let got = types.get(ty as usize).cloned().flatten();
    if got.as_ref() != Some(&expected) {
        return Err(ContractError::ImportType {
            name: import.name.to_string(),
            got: got.unwrap_or(Signature {
                params: vec![],
                results: vec![],
            }),
            expected,
        });
    }
    Ok(ty)
}

fn unknown_import(module: &str, name: &str, spec: &'static VersionSpec) -> ContractError {
    let names: Vec<String> = spec
        .imports
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect();
    let allowed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    };
    ContractError::UnknownImport {
        module: module.to_string(),
        name: name.to_string(),
        allowed,
        host: spec.host_module,
    }
}

fn required_exports(spec: &VersionSpec) -> String {
    let mut names = vec![format!("`{MEMORY_EXPORT}`")];
    names.extend(
        spec.exports
            .iter()
            .filter(|f| !f.optional)
            .map(|f| format!("`{}`", f.name)),
    );
    names.join(", ")
}

fn kind_name(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Func => "function",
        ExternalKind::Table => "table",
        ExternalKind::Memory => "memory",
        ExternalKind::Global => "global",
        ExternalKind::Tag => "tag",
        _ => "non-function export",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_generated_from_lel_wit_is_the_documented_abi() {
        assert_eq!(PACKAGE, "lel:signal");
        assert_eq!(VERSION, "0.2.0");
        assert_eq!(host_module(), "lel:signal/host@0.2.0");
        assert_eq!(MEMORY_EXPORT, "memory");
        let sig = |version: ContractVersion, name: &str| {
            let spec = version.spec();
            let f = spec
                .imports
                .iter()
                .chain(spec.exports)
                .find(|f| f.name == name)
                .unwrap();
            (Signature::of(f).to_string(), f.optional)
        };
        for v in [ContractVersion::V0_1, ContractVersion::V0_2] {
            assert_eq!(
                sig(v, "claim"),
                ("(i32, i32, i32, i32) -> i32".into(), true)
            );
            assert_eq!(sig(v, "log"), ("(i32, i32, i32) -> ()".into(), true));
            assert_eq!(sig(v, "state-ptr"), ("() -> i32".into(), true));
            assert_eq!(sig(v, "state-len"), ("() -> i32".into(), true));
            assert_eq!(sig(v, "init"), ("(i32, i32) -> i32".into(), false));
        }
        let v1 = ContractVersion::V0_1;
        let v2 = ContractVersion::V0_2;
        assert_eq!(v1.spec().host_module, "lel:signal/host@0.1.0");
        assert_eq!(v2.spec().host_module, "lel:signal/host@0.2.0");
        assert_eq!(sig(v1, "process"), ("(i32, i64) -> i32".into(), false));
        assert_eq!(sig(v2, "process"), ("(i32, i64, i32) -> i32".into(), false));
        assert_eq!(
            sig(v2, "param"),
            (
                "(i32, i32, f32, f32, f32, i32, i32, i32) -> i32".into(),
                true
            )
        );
        assert_eq!(sig(v2, "events-ptr"), ("() -> i32".into(), true));
        assert_eq!(sig(v2, "events-len"), ("() -> i32".into(), true));
        assert_eq!(v1.spec().imports.len(), 2);
        assert_eq!(v1.spec().exports.len(), 4);
    }
}
