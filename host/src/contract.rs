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

include!(concat!(env!("OUT_DIR"), "/contract_table.rs"));

/// The import module the host provides, e.g. `lel:signal/host@0.1.0`.
pub fn host_module() -> &'static str {
    IMPORTS.first().map(|f| f.module).unwrap_or("")
}

/// The contract's numbers (error codes, log levels, limits) as tabled in
/// `wit/constants.txt`, the table the SDKs' constants are generated from.
pub use crate::rt::consts::{Constant, TABLE as CONSTANTS};

/// Largest module file the host accepts (`wit/constants.txt`).
pub const MAX_MODULE_BYTES: usize = crate::rt::consts::MAX_MODULE_BYTES as usize;

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
    /// The module exports `state-ptr` and `state-len`.
    pub has_state_region: bool,
    /// The host functions it imports (`claim`, `log`).
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
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    #[error(
        "module targets `{module}`, this host speaks {speaks} (rebuild it against lel:signal@{speaks})"
    )]
    WrongVersion {
        module: String,
        speaks: &'static str,
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
        expected: Signature,
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
/// code size, function size (parse errors go through `parse_err`).
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
    let parse_err = |e: wasmparser::BinaryReaderError| {
        let msg = e.to_string();
        if msg.contains("unexpected end")
            || msg.contains("end of file")
            || msg.contains("end-of-file")
        {
            ContractError::Truncated
        } else {
            ContractError::Invalid(msg)
        }
    };
    // The compile limits first: they are cheap to check, and a module over
    // them is not worth validating.
    compile_limits(bytes, parse_err)?;
    // Full validation first, so that nothing malformed reaches the compiler.
    wasmparser::Validator::new()
        .validate_all(bytes)
        .map_err(parse_err)?;

    let mut types: Vec<Option<Signature>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut shape = Shape::default();

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
                    func_types.push(check_import(&import, &types)?);
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

    shape.has_state_region = check_exports(&exports, &func_types, &types)?;
    Ok(shape)
}

/// The exports the contract asks for, with their kinds and types; whether
/// the module has a state region (both optional exports, or neither).
fn check_exports(
    exports: &[(String, ExternalKind, u32)],
    func_types: &[u32],
    types: &[Option<Signature>],
) -> Result<bool, ContractError> {
    let find = |name: &str| exports.iter().find(|(n, _, _)| n == name);
    match find(MEMORY_EXPORT) {
        None => {
            return Err(ContractError::MissingExport {
                name: MEMORY_EXPORT,
                required: required_exports(),
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
    for spec in EXPORTS {
        let Some((_, kind, index)) = find(spec.name) else {
            if spec.optional {
                continue;
            }
            return Err(ContractError::MissingExport {
                name: spec.name,
                required: required_exports(),
            });
        };
        if *kind != ExternalKind::Func {
            return Err(ContractError::ExportKind {
                name: spec.name,
                kind: kind_name(*kind),
                expected: "function",
            });
        }
        let got = func_types
            .get(*index as usize)
            .and_then(|&t| types.get(t as usize).cloned().flatten());
        let expected = Signature::of(spec);
        if got.as_ref() != Some(&expected) {
            return Err(ContractError::ExportType {
                name: spec.name,
                got: got.unwrap_or(Signature {
                    params: vec![],
                    results: vec![],
                }),
                expected,
            });
        }
    }
    let optional: Vec<&'static str> = EXPORTS
        .iter()
        .filter(|f| f.optional)
        .map(|f| f.name)
        .collect();
    let present: Vec<bool> = optional.iter().map(|n| find(n).is_some()).collect();
    if let Some(i) = present.iter().position(|&p| p)
        && let Some(j) = present.iter().position(|&p| !p)
    {
        return Err(ContractError::HalfStateRegion {
            present: optional[i],
            missing: optional[j],
        });
    }
    Ok(!optional.is_empty() && present.iter().all(|&p| p))
}

/// One import: from the host module of this contract version, a known
/// function with the contract's type. Returns its type index.
fn check_import(
    import: &wasmparser::Import<'_>,
    types: &[Option<Signature>],
) -> Result<u32, ContractError> {
    let host = host_module();
    let package_prefix = host.split('@').next().unwrap_or(host);
    if import.module != host {
        if import.module.starts_with(package_prefix) && import.module.contains('@') {
            return Err(ContractError::WrongVersion {
                module: import.module.to_string(),
                speaks: VERSION,
            });
        }
        return Err(unknown_import(import.module, import.name));
    }
    let Some(spec) = IMPORTS.iter().find(|f| f.name == import.name) else {
        return Err(unknown_import(import.module, import.name));
    };
    let TypeRef::Func(ty) = import.ty else {
        return Err(unknown_import(import.module, import.name));
    };
    let expected = Signature::of(spec);
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

fn unknown_import(module: &str, name: &str) -> ContractError {
    ContractError::UnknownImport {
        module: module.to_string(),
        name: name.to_string(),
        allowed: IMPORTS
            .iter()
            .map(|f| format!("`{}`", f.name))
            .collect::<Vec<_>>()
            .join(" and "),
        host: host_module(),
    }
}

fn required_exports() -> String {
    let mut names = vec![format!("`{MEMORY_EXPORT}`")];
    names.extend(
        EXPORTS
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
        assert_eq!(VERSION, "0.1.0");
        assert_eq!(host_module(), "lel:signal/host@0.1.0");
        assert_eq!(MEMORY_EXPORT, "memory");
        let sig = |name: &str| {
            let f = IMPORTS
                .iter()
                .chain(EXPORTS)
                .find(|f| f.name == name)
                .unwrap();
            (Signature::of(f).to_string(), f.optional)
        };
        assert_eq!(sig("claim"), ("(i32, i32, i32, i32) -> i32".into(), true));
        assert_eq!(sig("log"), ("(i32, i32, i32) -> ()".into(), true));
        assert_eq!(sig("state-ptr"), ("() -> i32".into(), true));
        assert_eq!(sig("state-len"), ("() -> i32".into(), true));
        assert_eq!(sig("init"), ("(i32, i32) -> i32".into(), false));
        assert_eq!(sig("process"), ("(i32, i64) -> i32".into(), false));
    }
}
