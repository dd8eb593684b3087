//! Stop checks, written into every module before it is compiled: how a
//! runaway call is stopped without wasmtime's epoch checks (whose slow path
//! is a call, so Cranelift keeps a loop's floating-point values in memory
//! across it: a one-frame-per-iteration loop ran 1.7x native with them).
//!
//! The module gets two more imports, from lel-host's own import module
//! [`STOP_MODULE`]: a one-page shared memory of stop flags
//! ([`FLAGS_NAME`]), one 32-bit word per instance, and the byte offset of
//! its instance's word ([`WORD_NAME`], an immutable global, copied into an
//! immutable global of the module's own, `$stop-word` below). At every
//! function entry and every loop header it reads its word with an atomic
//! load and leaves for a trap (`unreachable`) if the word is negative. The
//! trap is written once, after the function's body, which goes inside two
//! blocks:
//!
//! ```wat
//! (func $f (param ...) (result i32)
//!   (block $stop
//!     (block $body (result i32)
//!       (br_if $stop (i32.lt_s (i32.atomic.load $stop-flags (global.get $stop-word)) (i32.const 0)))
//!       ...the body, a check after every `loop`...)
//!     (return))
//!   (unreachable))
//! ```
//!
//! `$body` has the function's results, so a branch to the function's own
//! label lands at its end and returns; only the checks reach the trap. A
//! load, a compare and a branch that is not taken: no call, so nothing is
//! kept out of registers for it (part 6 of `cargo bench -p lel-host`), and
//! no trap inside the loop: with `(if (...) (then unreachable))` after each
//! check, as before, the trap split every loop's first block in two, and
//! the Zig SDK's chain ran 9 % slower with the checks than without (8 %
//! slower than with wasmtime's epoch checks); this way it runs as fast as
//! without. For a function with several results, `$body`'s block type is
//! a type `[] -> [results]` added after the module's own (one per list of
//! results). The load is atomic so that the
//! compiler reads the word again at every check: a plain load in a loop
//! that stores nothing was found folded into the function entry's
//! (redundant-load elimination), and such a loop then never saw its flag.
//! The host writes the number of the call it is about to make into the
//! word; the CPU-clock watchdog (`rt::cpu`) turns exactly that number
//! negative once the call used its budget ([`crate::rt::stop`]).
//!
//! It also exports the module's mutable numeric globals to lel-host
//! ([`GLOBAL_EXPORT`]), so that a tier-up can carry them, and passes each
//! function body through [`operands`] (a constant minus a product
//! by a constant turned into a sum with the constants second: the same
//! bits, fewer instructions in Cranelift's code).
//!
//! The new imports come after the module's own: memory and global indices
//! at or past them move up by one, and everything that names them
//! (instructions, exports, data segments, constant expressions, names) is
//! rewritten to match, so the module cannot name either import. A module
//! that itself imports from [`STOP_MODULE`] is refused.

use wasm_encoder::reencode::{Error, Reencode, utils};

use super::operands;
use wasm_encoder::{BlockType, EntityType, Function, GlobalType, Instruction, MemArg, ValType};

/// lel-host's own import module, for the stop flags.
pub const STOP_MODULE: &str = "lel-host:stop";
/// The shared memory of stop flags.
pub const FLAGS_NAME: &str = "flags";
/// The byte offset of the instance's word in it.
pub const WORD_NAME: &str = "word";

/// Why a module cannot be instrumented.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstrumentError(pub String);

/// The prefix of the exports through which the host reads and writes a
/// module's mutable globals: `lel-host:global:N`, N the global's index in
/// the instrumented module. A tier-up copies them from the fast build to
/// the optimised one (`rt::version::Version::take_over_from`), so that a
/// module keeping something in a global (a counter, a phase) goes on
/// exactly where it was.
pub const GLOBAL_EXPORT: &str = "lel-host:global:";

/// `bytes` with the stop imports and a stop check at every function entry
/// and loop header, and its mutable numeric globals exported (see the
/// module docs and [`GLOBAL_EXPORT`]).
///
/// # Errors
/// When the module does not parse, imports from [`STOP_MODULE`] or
/// exports a name starting with `lel-host:`.
pub fn instrument(bytes: &[u8]) -> Result<Vec<u8>, InstrumentError> {
    let scan = scan(bytes)?;
    // Block types of several results are types of the type section: one
    // `[] -> [results]` per list, added after the module's own.
    let mut added: Vec<Vec<ValType>> = Vec::new();
    let bodies = scan
        .functions
        .iter()
        .map(|&t| {
            let results = scan.types.get(t as usize)?.as_ref()?;
            let results = results
                .iter()
                .map(|&r| ValType::try_from(r).ok())
                .collect::<Option<Vec<_>>>()?;
            Some(match results.as_slice() {
                [] => BlockType::Empty,
                [one] => BlockType::Result(*one),
                _ => {
                    let at = added.iter().position(|a| *a == results).unwrap_or_else(|| {
                        added.push(results);
                        added.len() - 1
                    });
                    BlockType::FunctionType(scan.types.len() as u32 + at as u32)
                }
            })
        })
        .collect();
    let mut checks = Checks {
        memories: scan.memories,
        globals: scan.globals,
        defined: scan.defined,
        mutable: scan.mutable,
        bodies,
        body: 0,
        added,
        imported: false,
        copied: false,
        exported: false,
    };
    let mut module = wasm_encoder::Module::new();
    checks
        .parse_core_module(&mut module, wasmparser::Parser::new(0), bytes)
        .map_err(|e| InstrumentError(format!("cannot add the stop checks: {e}")))?;
    Ok(module.finish())
}

/// What the rewrite needs to know first.
struct Scan {
    /// Memories and globals the module imports.
    memories: u32,
    globals: u32,
    /// Its own mutable globals of a numeric type, by index (before the
    /// rewrite).
    mutable: Vec<u32>,
    /// Globals it defines.
    defined: u32,
    /// The results of each type (None: not a function type).
    types: Vec<Option<Vec<wasmparser::ValType>>>,
    /// The type of each function the module defines.
    functions: Vec<u32>,
}

fn scan(bytes: &[u8]) -> Result<Scan, InstrumentError> {
    let invalid =
        |e: wasmparser::BinaryReaderError| InstrumentError(format!("not a valid module: {e}"));
    let mut scan = Scan {
        memories: 0,
        globals: 0,
        mutable: Vec::new(),
        defined: 0,
        types: Vec::new(),
        functions: Vec::new(),
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    if import.module == STOP_MODULE {
                        return Err(InstrumentError(format!(
                            "it imports `{}` from `{STOP_MODULE}`, lel-host's own import module: import only from the contract's (`lel:signal@...`)",
                            import.name
                        )));
                    }
                    match import.ty {
                        wasmparser::TypeRef::Memory(_) => scan.memories += 1,
                        wasmparser::TypeRef::Global(_) => scan.globals += 1,
                        _ => {}
                    }
                }
            }
            wasmparser::Payload::TypeSection(reader) => {
                for group in reader {
                    for ty in group.map_err(invalid)?.types() {
                        scan.types.push(match &ty.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => Some(f.results().to_vec()),
                            _ => None,
                        });
                    }
                }
            }
            wasmparser::Payload::FunctionSection(reader) => {
                for ty in reader {
                    scan.functions.push(ty.map_err(invalid)?);
                }
            }
            wasmparser::Payload::GlobalSection(reader) => {
                scan.defined = reader.count();
                for (i, global) in reader.into_iter().enumerate() {
                    let ty = global.map_err(invalid)?.ty;
                    let numeric = matches!(
                        ty.content_type,
                        wasmparser::ValType::I32
                            | wasmparser::ValType::I64
                            | wasmparser::ValType::F32
                            | wasmparser::ValType::F64
                            | wasmparser::ValType::V128
                    );
                    if ty.mutable && numeric {
                        scan.mutable.push(scan.globals + i as u32);
                    }
                }
            }
            wasmparser::Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.name.starts_with("lel-host:") {
                        return Err(InstrumentError(format!(
                            "it exports `{}`: names starting with `lel-host:` are lel-host's own; rename it",
                            export.name
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(scan)
}

/// The type of the word's offset: an immutable `i32`.
const WORD_TYPE: GlobalType = GlobalType {
    val_type: ValType::I32,
    mutable: false,
    shared: false,
};

/// `index` after the rewrite, in a space (memories or globals) where the
/// module imports `imported` itself: the stop import comes right after
/// those, so the module's own move up by one.
fn shifted(index: u32, imported: u32) -> u32 {
    if index >= imported { index + 1 } else { index }
}

/// Whether the section coming next (`before`, `None` at the end) lies past
/// where a `section` would go in the binary order of sections.
fn past(before: Option<wasm_encoder::SectionId>, section: wasm_encoder::SectionId) -> bool {
    use wasm_encoder::SectionId::*;
    // The order of a module's sections (Tag, DataCount are numbered out of
    // order).
    const ORDER: [wasm_encoder::SectionId; 13] = [
        Type, Import, Function, Table, Memory, Tag, Global, Export, Start, Element, DataCount,
        Code, Data,
    ];
    let rank = |s| ORDER.iter().position(|&o| o == s);
    match before {
        None => true,
        Some(b) => rank(b) > rank(section),
    }
}

struct Checks {
    /// Memories and globals the module imports itself.
    memories: u32,
    globals: u32,
    /// Globals it defines.
    defined: u32,
    /// Its mutable numeric globals (indices before the rewrite).
    mutable: Vec<u32>,
    /// The stop imports were written.
    imported: bool,
    /// The word's offset was copied into a global of the module's own.
    copied: bool,
    /// The globals' exports were written.
    exported: bool,
    /// For each function the module defines, the block type of its
    /// results (None: results `wasm-encoder` cannot write; see
    /// [`Checks::parse_function_body`]).
    bodies: Vec<Option<BlockType>>,
    /// The function whose body comes next.
    body: usize,
    /// The result lists of the types added for `bodies`.
    added: Vec<Vec<ValType>>,
}

/// Where a function body's stop checks branch to.
#[derive(Clone, Copy)]
enum Stop {
    /// To a trap after the body, through the block around it: `depth`
    /// user blocks are open, so the trap's block is `depth + 1` out.
    Out { depth: u32 },
    /// To a trap of its own right after the check (a function whose
    /// results `wasm-encoder` cannot write back).
    Here,
}

impl Checks {
    fn flags_memory(&self) -> u32 {
        self.memories
    }

    /// The imported offset of the instance's word.
    fn word_import(&self) -> u32 {
        self.globals
    }

    /// The same offset in a global the module defines (the last one): the
    /// checks read it from the instance itself rather than through the
    /// import (one memory access less in each call, and one cache miss
    /// less per signal and block, found in part 4 of the benchmark).
    fn word_global(&self) -> u32 {
        self.globals + 1 + self.defined
    }

    fn add_word_global(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        globals.global(
            WORD_TYPE,
            &wasm_encoder::ConstExpr::global_get(self.word_import()),
        );
        self.copied = true;
    }

    fn add_imports(&mut self, imports: &mut wasm_encoder::ImportSection) {
        imports.import(
            STOP_MODULE,
            FLAGS_NAME,
            EntityType::Memory(wasm_encoder::MemoryType {
                minimum: 1,
                maximum: Some(1),
                memory64: false,
                shared: true,
                page_size_log2: None,
            }),
        );
        imports.import(STOP_MODULE, WORD_NAME, EntityType::Global(WORD_TYPE));
        self.imported = true;
    }

    fn add_exports(&mut self, exports: &mut wasm_encoder::ExportSection) {
        for &g in &self.mutable {
            let index = shifted(g, self.globals);
            exports.export(
                &format!("{GLOBAL_EXPORT}{index}"),
                wasm_encoder::ExportKind::Global,
                index,
            );
        }
        self.exported = true;
    }

    /// `instruction` into `f`, with a check after a loop's header; the
    /// body's last `end` closes the blocks around it and places the trap.
    fn encode(&self, f: &mut Function, instruction: &Instruction<'_>, stop: &mut Stop) {
        use Instruction::*;
        if let Stop::Out { depth } = stop {
            match instruction {
                Block(_) | Loop(_) | If(_) | TryTable(..) | Try(_) => *depth += 1,
                End | Delegate(_) if *depth > 0 => *depth -= 1,
                End => {
                    // The end of the body: its results leave through
                    // `return`; only the checks' branches reach the trap.
                    f.instruction(&End);
                    f.instruction(&Return);
                    f.instruction(&End);
                    f.instruction(&Unreachable);
                }
                _ => {}
            }
        }
        f.instruction(instruction);
        if matches!(instruction, Instruction::Loop(_)) {
            self.check(f, *stop);
        }
    }

    fn check(&self, f: &mut Function, stop: Stop) {
        f.instruction(&Instruction::GlobalGet(self.word_global()));
        f.instruction(&Instruction::I32AtomicLoad(MemArg {
            offset: 0,
            align: 2,
            memory_index: self.flags_memory(),
        }));
        f.instruction(&Instruction::I32Const(0));
        f.instruction(&Instruction::I32LtS);
        match stop {
            Stop::Out { depth } => {
                f.instruction(&Instruction::BrIf(depth + 1));
            }
            Stop::Here => {
                f.instruction(&Instruction::If(BlockType::Empty));
                f.instruction(&Instruction::Unreachable);
                f.instruction(&Instruction::End);
            }
        }
    }
}

impl Reencode for Checks {
    type Error = std::convert::Infallible;

    fn memory_index(&mut self, memory: u32) -> Result<u32, Error<Self::Error>> {
        Ok(shifted(memory, self.memories))
    }

    fn global_index(&mut self, global: u32) -> Result<u32, Error<Self::Error>> {
        Ok(shifted(global, self.globals))
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), Error<Self::Error>> {
        utils::parse_import_section(self, imports, section)?;
        self.add_imports(imports);
        Ok(())
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), Error<Self::Error>> {
        utils::parse_type_section(self, types, section)?;
        for results in &self.added {
            types.ty().function([], results.iter().copied());
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), Error<Self::Error>> {
        utils::parse_global_section(self, globals, section)?;
        self.add_word_global(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), Error<Self::Error>> {
        utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> Result<(), Error<Self::Error>> {
        use wasm_encoder::SectionId;
        // A module without imports (or globals, or exports): the section
        // goes in where it would have been.
        if !self.imported && past(before, SectionId::Import) {
            let mut imports = wasm_encoder::ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
        }
        if !self.copied && past(before, SectionId::Global) {
            let mut globals = wasm_encoder::GlobalSection::new();
            self.add_word_global(&mut globals);
            module.section(&globals);
        }
        if !self.exported && past(before, SectionId::Export) && !self.mutable.is_empty() {
            let mut exports = wasm_encoder::ExportSection::new();
            self.add_exports(&mut exports);
            module.section(&exports);
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), Error<Self::Error>> {
        let mut f = self.new_function_with_parsed_locals(&func)?;
        // The body goes inside two blocks: its own (typed with the
        // function's results, so a branch to the function's label lands
        // there and returns) and, around it, the one the checks leave by,
        // whose end is followed by the trap. The trap then sits after the
        // function's code instead of after each check, where it split
        // every loop's header from the rest of its first block.
        let mut stop = match self.bodies.get(self.body).copied().flatten() {
            Some(results) => {
                f.instruction(&Instruction::Block(BlockType::Empty));
                f.instruction(&Instruction::Block(results));
                Stop::Out { depth: 0 }
            }
            _ => Stop::Here,
        };
        self.body += 1;
        self.check(&mut f, stop);
        let mut reader = func.get_operators_reader()?;
        // The body goes through `operands` as it is read: the last
        // instructions are kept back for it, the rest encoded.
        let mut window = Vec::with_capacity(2 * operands::WINDOW);
        while !reader.eof() {
            window.push(self.parse_instruction(&mut reader)?);
            operands::rewrite_last(&mut window);
            if window.len() == 2 * operands::WINDOW {
                for instruction in window.drain(..operands::WINDOW) {
                    self.encode(&mut f, &instruction, &mut stop);
                }
            }
        }
        for instruction in &window {
            self.encode(&mut f, instruction, &mut stop);
        }
        code.function(&f);
        Ok(())
    }
}

/// An engine that runs rewritten modules in tests (their flags are a
/// shared memory).
#[cfg(test)]
pub(super) fn stop_engine() -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config.wasm_threads(true).shared_memory(true);
    wasmtime::Engine::new(&config).unwrap()
}

/// The stop imports of a rewritten module in tests: a flags memory and
/// the word's offset in it (nothing sets the word unless the test does).
#[cfg(test)]
pub(super) fn stop_imports(
    engine: &wasmtime::Engine,
    store: &mut wasmtime::Store<()>,
    word: i32,
) -> (wasmtime::SharedMemory, wasmtime::Global) {
    let flags = wasmtime::SharedMemory::new(engine, wasmtime::MemoryType::shared(1, 1)).unwrap();
    let word = wasmtime::Global::new(
        store,
        wasmtime::GlobalType::new(wasmtime::ValType::I32, wasmtime::Mutability::Const),
        wasmtime::Val::I32(word),
    )
    .unwrap();
    (flags, word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The stop word at byte `offset` of `flags`.
    fn word_at(flags: &wasmtime::SharedMemory, offset: usize) -> &AtomicI32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= flags.data().len());
        // SAFETY: four bytes inside the shared memory at a 4-byte aligned
        // offset (checked above); the reference lives no longer than the
        // borrow of `flags`, and the host accesses the memory only
        // atomically.
        unsafe { &*(flags.data()[offset].get() as *const AtomicI32) }
    }

    /// Turn the word at `offset` to `value` from another thread, `ms`
    /// milliseconds from now.
    fn set_later(
        flags: &wasmtime::SharedMemory,
        offset: usize,
        value: i32,
        ms: u64,
    ) -> std::thread::JoinHandle<()> {
        let flags = flags.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            word_at(&flags, offset).store(value, Ordering::Relaxed);
        })
    }

    /// `e` is a stop check's trap.
    fn assert_stopped(e: &wasmtime::Error) {
        assert_eq!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::UnreachableCodeReached)
        );
    }

    fn imports_of(bytes: &[u8]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::ImportSection(reader) = payload.unwrap() {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    out.push((
                        import.module.to_string(),
                        import.name.to_string(),
                        format!("{:?}", import.ty),
                    ));
                }
            }
        }
        out
    }

    fn validate(bytes: &[u8]) {
        let mut features = wasmparser::WasmFeatures::default();
        features.insert(wasmparser::WasmFeatures::THREADS);
        wasmparser::Validator::new_with_features(features)
            .validate_all(bytes)
            .expect("the instrumented module validates");
    }

    #[test]
    fn a_module_without_imports_gets_the_stop_imports_and_its_memory_moves_up() {
        let wasm = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (global $g (mut i32) (i32.const 7))
                 (data (i32.const 16) "hi")
                 (func (export "f") (result i32)
                   (global.set $g (i32.add (global.get $g) (i32.load8_u (i32.const 16))))
                   (global.get $g)))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap();
        validate(&out);
        let imports = imports_of(&out);
        assert_eq!(imports.len(), 2, "{imports:?}");
        assert_eq!(
            (imports[0].0.as_str(), imports[0].1.as_str()),
            (STOP_MODULE, FLAGS_NAME)
        );
        assert!(imports[0].2.contains("shared: true"), "{imports:?}");
        assert_eq!(
            (imports[1].0.as_str(), imports[1].1.as_str()),
            (STOP_MODULE, WORD_NAME)
        );
        let text = exports_of(&out);
        assert!(
            text.contains("Export { name: \"memory\", kind: Memory, index: 1 }"),
            "{text}"
        );
        // The mutable global (0 before, 1 after the word's import).
        assert!(
            text.contains("Export { name: \"lel-host:global:1\", kind: Global, index: 1 }"),
            "{text}"
        );
    }

    #[test]
    fn imported_memories_and_globals_keep_their_indices() {
        let wasm = wat::parse_str(
            r#"(module
                 (import "lel:signal@0.1.0" "log" (func (param i32 i32 i32)))
                 (import "env" "g" (global i32))
                 (memory (export "memory") 1)
                 (global $own i32 (global.get 0))
                 (func (export "f") (result i32) (i32.add (global.get 0) (global.get $own))))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap();
        validate(&out);
        let imports = imports_of(&out);
        assert_eq!(imports.len(), 4, "{imports:?}");
        assert_eq!(imports[1].1, "g");
        let text = exports_of(&out);
        assert!(
            text.contains("Export { name: \"memory\", kind: Memory, index: 1 }"),
            "{text}"
        );
    }

    #[test]
    fn a_module_importing_from_the_stop_module_is_refused() {
        let wasm = wat::parse_str(
            r#"(module (import "lel-host:stop" "flags" (memory 1 1 shared)) (memory (export "memory") 1))"#,
        )
        .unwrap();
        let e = instrument(&wasm).unwrap_err().to_string();
        assert!(e.contains("lel-host's own import module"), "{e}");
    }

    /// The exports, as wasmparser debug-prints them.
    fn exports_of(bytes: &[u8]) -> String {
        let mut s = String::new();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::ExportSection(reader) = payload.unwrap() {
                for e in reader {
                    s.push_str(&format!("{:?}\n", e.unwrap()));
                }
            }
        }
        s
    }

    /// The checks stop a loop that stores nothing (a plain load there was
    /// folded into the entry's check), and a recursion, as soon as the word
    /// turns negative; a function with a set word traps at its entry.
    #[test]
    fn a_negative_word_stops_loops_and_calls() {
        let engine = stop_engine();
        let wasm = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (func (export "spin") (result i32) (local $i i32)
                   (loop $l
                     (local.set $i (i32.add (local.get $i) (i32.const 1)))
                     (br_if $l (i32.lt_u (local.get $i) (i32.const 2000000000))))
                   (local.get $i))
                 (func $down (export "down") (param i32) (result i32)
                   (if (result i32) (i32.eqz (local.get 0))
                     (then (i32.const 0))
                     (else (call $down (i32.sub (local.get 0) (i32.const 1)))))))"#,
        )
        .unwrap();
        let module = wasmtime::Module::new(&engine, instrument(&wasm).unwrap()).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let (flags, word) = stop_imports(&engine, &mut store, 64);
        let instance =
            wasmtime::Instance::new(&mut store, &module, &[flags.clone().into(), word.into()])
                .unwrap();
        let cell = word_at(&flags, 64);
        let down = instance
            .get_typed_func::<i32, i32>(&mut store, "down")
            .unwrap();
        assert_eq!(down.call(&mut store, 1000).unwrap(), 0, "runs while clear");
        cell.store(i32::MIN | 5, Ordering::Relaxed);
        assert_stopped(&down.call(&mut store, 1000).unwrap_err());
        cell.store(5, Ordering::Relaxed);
        let spin = instance
            .get_typed_func::<(), i32>(&mut store, "spin")
            .unwrap();
        let setter = set_later(&flags, 64, i32::MIN | 5, 30);
        let t = std::time::Instant::now();
        let r = spin.call(&mut store, ());
        setter.join().unwrap();
        assert!(
            r.is_err(),
            "the loop ran to its end ({:?}): its checks never saw the flag",
            t.elapsed()
        );
    }

    /// Functions of every shape the blocks around a body must keep:
    /// results left at the body's end, branches to the function's own
    /// label (with values, from nested blocks, through `br_table`),
    /// `return` from inside loops, several results (a block type added to
    /// the type section), no result. Each returns the same before and after
    /// the rewrite.
    const SHAPES: &str = r#"(module
      (memory (export "memory") 1)
      (func (export "sum") (param $n i32) (result i32) (local $i i32) (local $s i32)
        (block $out
          (loop $outer
            (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
            (block $skip
              (loop $inner
                (local.set $s (i32.add (local.get $s) (i32.add (local.get $i) (i32.const 1))))
                (br_if $skip (i32.and (local.get $s) (i32.const 1)))
                (br_if $inner (i32.lt_u (local.get $s) (i32.const 10)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $outer)))
        (local.get $s))
      (func (export "early") (param $x i32) (result i32)
        (block $b (result i32)
          (block $c (result i32)
            (loop $l
              (i32.const 111)
              (i32.eq (local.get $x) (i32.const 1))
              (br_if 3)
              (drop)
              (if (i32.eq (local.get $x) (i32.const 2))
                (then (return (i32.const 222))))
              (i32.const 333)
              (i32.and (local.get $x) (i32.const 3))
              (br_table $c $b 3 $c))
            (i32.const 444))
          (i32.const 1000)
          (i32.add))
        (i32.const 5000)
        (i32.add))
      (func (export "two") (param $x i64) (result i64 f64) (local $i i64)
        (loop $l
          (local.set $i (i64.add (local.get $i) (i64.const 3)))
          (br_if $l (i64.lt_s (local.get $i) (local.get $x))))
        (local.get $i)
        (f64.convert_i64_s (local.get $x)))
      (func (export "swap") (param $x f64) (param $y i64) (result i64 f64)
        (local.get $y)
        (local.get $x))
      (func (export "store") (param $x i32)
        (if (i32.eqz (local.get $x)) (then (br 1)))
        (loop $l
          (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (local.get $x)))
          (local.set $x (i32.sub (local.get $x) (i32.const 1)))
          (br_if $l (local.get $x))))
      (func (export "load") (result f64)
        (f64.convert_i32_s (i32.load (i32.const 0)))))"#;

    /// The number of types in `bytes`'s type section.
    fn types_of(bytes: &[u8]) -> u32 {
        wasmparser::Parser::new(0)
            .parse_all(bytes)
            .find_map(|p| match p.unwrap() {
                wasmparser::Payload::TypeSection(r) => Some(r.count()),
                _ => None,
            })
            .unwrap()
    }

    /// The `unreachable`s in each function body of `bytes`.
    fn traps_per_body(bytes: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                let mut n = 0;
                while !reader.eof() {
                    n += usize::from(matches!(
                        reader.read().unwrap(),
                        wasmparser::Operator::Unreachable
                    ));
                }
                out.push(n);
            }
        }
        out
    }

    #[test]
    fn a_body_in_the_checks_blocks_returns_what_it_returned() {
        let wasm = wat::parse_str(SHAPES).unwrap();
        let out = instrument(&wasm).unwrap();
        validate(&out);
        // One trap after each body whatever its loops (three in `sum`).
        assert_eq!(traps_per_body(&out), [1, 1, 1, 1, 1, 1]);
        // `two` and `swap` return the same list: one type added for both.
        assert_eq!(types_of(&out), types_of(&wasm) + 1);
        let engine = stop_engine();
        let plain = wasmtime::Module::new(&engine, &wasm).unwrap();
        let checked = wasmtime::Module::new(&engine, &out).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let (flags, word) = stop_imports(&engine, &mut store, 0);
        let plain = wasmtime::Instance::new(&mut store, &plain, &[]).unwrap();
        let checked =
            wasmtime::Instance::new(&mut store, &checked, &[flags.into(), word.into()]).unwrap();
        macro_rules! same {
            ($name:literal, $params:ty, $results:ty, $args:expr) => {
                for a in $args {
                    let run = |i: &wasmtime::Instance, store: &mut wasmtime::Store<()>| {
                        i.get_typed_func::<$params, $results>(&mut *store, $name)
                            .unwrap()
                            .call(&mut *store, a)
                            .unwrap()
                    };
                    let (before, after) = (run(&plain, &mut store), run(&checked, &mut store));
                    assert_eq!(before, after, "{}({a:?})", $name);
                }
            };
        }
        same!("sum", i32, i32, [0, 1, 2, 5, 40]);
        same!("early", i32, i32, 0..8);
        same!("two", i64, (i64, f64), [0i64, 1, 7, 100]);
        same!("swap", (f64, i64), (i64, f64), [(1.5, -2i64), (-0.0, 7)]);
        same!("store", i32, (), [0, 3, 9]);
        same!("load", (), f64, [()]);
        assert_eq!(
            [plain, checked].map(|i| i
                .get_typed_func::<(), f64>(&mut store, "load")
                .unwrap()
                .call(&mut store, ())
                .unwrap()),
            [51.0, 51.0],
            "`store` ran the same loops on both memories"
        );
    }

    /// With the word negative, every shape stops at its first check: at
    /// the entry, and in loops three deep or in a function of several
    /// results (its block typed by an added type) when the entry's check
    /// is passed.
    #[test]
    fn a_negative_word_stops_every_shape() {
        let engine = stop_engine();
        let checked = wasmtime::Module::new(
            &engine,
            instrument(&wat::parse_str(SHAPES).unwrap()).unwrap(),
        )
        .unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let (flags, word) = stop_imports(&engine, &mut store, 8);
        let i = wasmtime::Instance::new(&mut store, &checked, &[flags.clone().into(), word.into()])
            .unwrap();
        let cell = word_at(&flags, 8);
        cell.store(i32::MIN | 3, Ordering::Relaxed);
        let sum = i.get_typed_func::<i32, i32>(&mut store, "sum").unwrap();
        assert_stopped(&sum.call(&mut store, 5).unwrap_err());
        let two = i
            .get_typed_func::<i64, (i64, f64)>(&mut store, "two")
            .unwrap();
        assert_stopped(&two.call(&mut store, 5).unwrap_err());
        let store_fn = i.get_typed_func::<i32, ()>(&mut store, "store").unwrap();
        assert_stopped(&store_fn.call(&mut store, 3).unwrap_err());
        // Past the entry: the word turns negative while the loops run.
        cell.store(3, Ordering::Relaxed);
        let setter = set_later(&flags, 8, i32::MIN | 3, 20);
        let r = sum.call(&mut store, i32::MAX);
        setter.join().unwrap();
        assert_stopped(&r.unwrap_err());
        cell.store(3, Ordering::Relaxed);
        let setter = set_later(&flags, 8, i32::MIN | 3, 20);
        let r = two.call(&mut store, i64::MAX);
        setter.join().unwrap();
        assert_stopped(&r.unwrap_err());
    }
}
