//! Part of the build script: reads the contract's constants table
//! (`wit/constants.txt`), checks that the prose of `wit/lel.wit` states the
//! same numbers, and writes the host's constants and the four SDKs' constant
//! files (with each language's declarations of the host imports).

use std::fmt::Write as _;
use std::path::Path;

use wit_parser::{Function, Type};

/// One constant of the table.
pub struct Constant {
    pub group: String,
    /// kebab-case, as in the table.
    pub name: String,
    pub value: i64,
    pub doc: String,
}

/// A group of the table and the comment above its `[group]` line.
pub struct Group {
    pub name: String,
    pub doc: String,
}

pub struct Table {
    pub groups: Vec<Group>,
    pub constants: Vec<Constant>,
}

/// What every group means for the code generated from it.
const GROUPS: [&str; 6] = [
    "limit",
    "claim-code",
    "sdk-code",
    "log-level",
    "event-kind",
    "sdk-default",
];

/// Parses the table; panics naming the file, line and problem.
pub fn parse(path: &Path) -> Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    let fail = |line: usize, what: &str| -> ! { panic!("{}:{line}: {what}", path.display()) };
    let mut groups: Vec<Group> = Vec::new();
    let mut constants: Vec<Constant> = Vec::new();
    let mut comment = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(c) = line.strip_prefix('#') {
            if !comment.is_empty() {
                comment.push(' ');
            }
            comment.push_str(c.trim());
            continue;
        }
        if line.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !GROUPS.contains(&g) {
                fail(i + 1, &format!("unknown group [{g}] (known: {GROUPS:?})"));
            }
            if groups.iter().any(|x| x.name == g) {
                fail(i + 1, &format!("group [{g}] opened twice"));
            }
            groups.push(Group {
                name: g.to_string(),
                doc: std::mem::take(&mut comment),
            });
            continue;
        }
        let Some(group) = groups.last() else {
            fail(i + 1, "a constant before the first [group]");
        };
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let (value, doc) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let doc = doc.trim().to_string();
        if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            fail(i + 1, &format!("`{name}` is not a kebab-case name"));
        }
        let Ok(value) = value.parse::<i64>() else {
            fail(i + 1, &format!("`{value}` is not a decimal integer"));
        };
        if doc.is_empty() {
            fail(i + 1, &format!("`{name}` has no description"));
        }
        if constants.iter().any(|c| c.name == name) {
            fail(i + 1, &format!("`{name}` is defined twice"));
        }
        let range_ok = match group.name.as_str() {
            "claim-code" => (-15..=-1).contains(&value),
            "sdk-code" => (-31..=-16).contains(&value),
            "log-level" => (0..=i32::MAX as i64).contains(&value),
            "event-kind" => (1..=255).contains(&value),
            _ => (1..=i32::MAX as i64).contains(&value),
        };
        if !range_ok {
            fail(
                i + 1,
                &format!(
                    "`{name}` = {value} is outside the range of [{}]",
                    group.name
                ),
            );
        }
        if matches!(group.name.as_str(), "claim-code" | "sdk-code")
            && let Some(other) = constants
                .iter()
                .find(|c| c.value == value && c.group.ends_with("-code"))
        {
            fail(
                i + 1,
                &format!("`{name}` has the code {value} of `{}`", other.name),
            );
        }
        constants.push(Constant {
            group: group.name.clone(),
            name: name.to_string(),
            value,
            doc,
        });
    }
    for g in GROUPS {
        if !groups.iter().any(|x| x.name == g) {
            panic!("{}: the group [{g}] is missing", path.display());
        }
    }
    Table { groups, constants }
}

impl Table {
    pub fn value(&self, name: &str) -> i64 {
        self.constants
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("wit/constants.txt: `{name}` is missing"))
            .value
    }

    fn in_group<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Constant> + 'a {
        self.constants.iter().filter(move |c| c.group == group)
    }
}

/// The docs of the newest contract version's functions.
pub struct Docs<'a> {
    pub claim: &'a str,
    pub log: &'a str,
    pub param: &'a str,
    pub init: &'a str,
    pub state_ptr: &'a str,
    pub events_len: &'a str,
    pub process: &'a str,
}

/// The codes a doc lists, one a line (`  -4  duplicate key: ...`).
fn listed_codes(doc: &str) -> Vec<i64> {
    doc.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.starts_with('-')
                .then(|| l.split_whitespace().next()?.parse::<i64>().ok())
                .flatten()
        })
        .collect()
}

/// Claim codes that only `param` returns, and those only `claim` returns.
const PARAM_ONLY: [&str; 3] = ["bad-range", "too-many-params", "bad-unit"];
const CLAIM_ONLY: [&str; 1] = ["bad-align"];

/// The prose of `wit/lel.wit` must state the table's numbers: each code in
/// `claim`'s and `param`'s lists, the key lengths and alignment, the log
/// levels, the channel range, the state region's alignment, the parameter
/// limits, the event size and the event kinds.
pub fn check_wit_prose(table: &Table, d: &Docs) {
    let fail = |func: &str, what: String| -> ! {
        panic!(
            "wit/lel.wit: the doc of `{func}` disagrees with wit/constants.txt: {what} (edit the one that is wrong)"
        )
    };
    let says = |func: &str, doc: &str, text: String| {
        let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        if !flat.contains(&text) {
            fail(func, format!("it does not say \"{text}\""));
        }
    };
    for (func, doc, skip) in [
        ("claim", d.claim, &PARAM_ONLY[..]),
        ("param", d.param, &CLAIM_ONLY[..]),
    ] {
        let listed = listed_codes(doc);
        let codes: Vec<i64> = table
            .in_group("claim-code")
            .filter(|c| !skip.contains(&c.name.as_str()))
            .map(|c| c.value)
            .collect();
        if listed != codes {
            fail(
                func,
                format!("it lists the codes {listed:?}, the table {codes:?}"),
            );
        }
    }
    says(
        "claim",
        d.claim,
        format!("1 to {} bytes", table.value("max-key-len")),
    );
    says(
        "claim",
        d.claim,
        format!("at most {}", table.value("max-align")),
    );
    for c in table.in_group("log-level") {
        says(
            "log",
            d.log,
            format!("{} {}", c.value, c.name.trim_start_matches("log-")),
        );
    }
    says(
        "init",
        d.init,
        format!("1 to {}", table.value("max-channels")),
    );
    says(
        "state-ptr",
        d.state_ptr,
        format!("aligned to {} bytes", table.value("max-align")),
    );
    for (before, name, after) in [
        ("1 to ", "max-param-key-len", " bytes"),
        ("0 to ", "max-unit-len", " bytes"),
        ("At most ", "max-params", " parameters"),
        ("more than ", "max-params", " in one"),
    ] {
        says(
            "param",
            d.param,
            format!("{before}{}{after}", table.value(name)),
        );
    }
    let bytes = table.value("event-bytes");
    says("process", d.process, format!("Each event is {bytes} bytes"));
    says(
        "events-len",
        d.events_len,
        format!("`len / {bytes}` events"),
    );
    says(
        "events-len",
        d.events_len,
        format!("room for {}", table.value("default-event-capacity")),
    );
    for c in table.in_group("event-kind") {
        says("process", d.process, format!("{} {}", c.value, c.name));
    }
}

// ---- names -----------------------------------------------------------------

fn upper_snake(kebab: &str) -> String {
    kebab.replace('-', "_").to_ascii_uppercase()
}

fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

fn camel(kebab: &str, first_upper: bool) -> String {
    let mut out = String::new();
    for (i, part) in kebab.split('-').enumerate() {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            if i > 0 || first_upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            out.extend(chars);
        }
    }
    out
}

/// `text` wrapped to lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

// ---- the host ----------------------------------------------------------------

/// The host's constants (`$OUT_DIR/consts.rs`, included by `rt/consts.rs`).
pub fn host(table: &Table) -> String {
    let mut out = String::new();
    for c in &table.constants {
        let ty = match c.group.as_str() {
            "limit" | "sdk-default" => "u32",
            "event-kind" => "u8",
            _ => "i32",
        };
        for l in wrap(&c.doc, 76) {
            writeln!(out, "/// {l}").unwrap();
        }
        writeln!(
            out,
            "pub const {}: {ty} = {};",
            upper_snake(&c.name),
            c.value
        )
        .unwrap();
    }
    writeln!(
        out,
        "/// Every constant of `wit/constants.txt`, in its order."
    )
    .unwrap();
    writeln!(out, "pub const TABLE: &[Constant] = &[").unwrap();
    for c in &table.constants {
        writeln!(
            out,
            "    Constant {{ group: {:?}, name: {:?}, value: {} as i64, doc: {:?} }},",
            c.group,
            c.name,
            upper_snake(&c.name),
            c.doc
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    out
}

// ---- the SDKs ------------------------------------------------------------------

/// What every SDK file is generated from.
pub struct Contract<'a> {
    pub package: String,
    pub host_module: String,
    pub imports: Vec<&'a Function>,
    pub table: &'a Table,
}

/// A core-level parameter of a host import: a WIT `string` becomes a
/// pointer and a length.
enum Core {
    Ptr(String),
    Len(String),
    I32(String),
    I64(String),
    F32(String),
}

fn core_params(f: &Function) -> Vec<Core> {
    let mut out = Vec::new();
    for p in &f.params {
        match p.ty {
            Type::String => {
                out.push(Core::Ptr(p.name.clone()));
                out.push(Core::Len(format!("{}-len", p.name)));
            }
            Type::U32 | Type::S32 | Type::U8 | Type::S8 | Type::U16 | Type::S16 => {
                out.push(Core::I32(p.name.clone()))
            }
            Type::U64 | Type::S64 => out.push(Core::I64(p.name.clone())),
            Type::F32 => out.push(Core::F32(p.name.clone())),
            ref other => panic!(
                "wit/lel.wit: `{}` takes a {other:?}; the SDK generator in host/build/constants.rs knows string and integers only",
                f.name
            ),
        }
    }
    out
}

/// `None` for no result, else whether it is 64-bit.
fn core_result(f: &Function) -> Option<bool> {
    match f.result {
        None => None,
        Some(Type::U32 | Type::S32) => Some(false),
        Some(Type::U64 | Type::S64) => Some(true),
        Some(ref other) => panic!(
            "wit/lel.wit: `{}` returns a {other:?}; the SDK generator knows integers only",
            f.name
        ),
    }
}

const DO_NOT_EDIT: &str = "generated from wit/lel.wit and wit/constants.txt by lel-host's build script (host/build/constants.rs): do not edit; run scripts/gen-constants after changing those";

fn group_doc<'a>(table: &'a Table, group: &str) -> &'a str {
    table
        .groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.doc.as_str())
        .unwrap_or("")
}

/// `guest-sdk/src/contract.rs`.
pub fn rust(c: &Contract) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "//! The `{}` contract's constants and host imports for the Rust SDK,",
        c.package
    )
    .unwrap();
    for l in wrap(DO_NOT_EDIT, 74) {
        writeln!(out, "//! {l}").unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "/// The contract package and version this SDK speaks.").unwrap();
    writeln!(out, "pub const PACKAGE: &str = {:?};", c.package).unwrap();
    writeln!(out, "/// The import module of the host's functions.").unwrap();
    writeln!(out, "pub const HOST_MODULE: &str = {:?};", c.host_module).unwrap();
    for g in GROUPS {
        writeln!(out).unwrap();
        for l in wrap(group_doc(c.table, g), 76) {
            writeln!(out, "// {l}").unwrap();
        }
        for k in c.table.in_group(g) {
            let ty = match g {
                "limit" | "sdk-default" => "usize",
                "event-kind" => "u8",
                _ => "i32",
            };
            for l in wrap(&k.doc, 76) {
                writeln!(out, "/// {l}").unwrap();
            }
            writeln!(
                out,
                "pub const {}: {ty} = {};",
                upper_snake(&k.name),
                k.value
            )
            .unwrap();
        }
    }
    writeln!(out).unwrap();
    writeln!(
        out,
        "/// The host's functions (`{}`), on wasm32.",
        c.host_module
    )
    .unwrap();
    writeln!(out, "#[cfg(target_arch = \"wasm32\")]").unwrap();
    // Generated text, compared byte for byte with the checked-in file:
    // `cargo fmt` must not rewrap the long import lines.
    writeln!(out, "#[rustfmt::skip]").unwrap();
    writeln!(out, "pub(crate) mod host {{").unwrap();
    writeln!(out, "    #[link(wasm_import_module = {:?})]", c.host_module).unwrap();
    writeln!(out, "    unsafe extern \"C\" {{").unwrap();
    for f in &c.imports {
        let params: Vec<String> = core_params(f)
            .iter()
            .map(|p| match p {
                Core::Ptr(n) => format!("{}_ptr: i32", snake(n)),
                Core::Len(n) | Core::I32(n) => format!("{}: i32", snake(n)),
                Core::I64(n) => format!("{}: i64", snake(n)),
                Core::F32(n) => format!("{}: f32", snake(n)),
            })
            .collect();
        let ret = match core_result(f) {
            None => String::new(),
            Some(false) => " -> i32".into(),
            Some(true) => " -> i64".into(),
        };
        writeln!(out, "        /// `{}` of `wit/lel.wit`.", f.name).unwrap();
        writeln!(
            out,
            "        pub fn {}({}){ret};",
            snake(&f.name),
            params.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "    }}").unwrap();
    writeln!(out, "}}").unwrap();
    out
}

/// `guest-sdk/c/lel_constants.h`.
pub fn c(c: &Contract) -> String {
    let mut out = String::new();
    let intro = format!(
        "lel_constants.h: the {} contract's constants and host imports for the C SDK (lel.h includes it), {DO_NOT_EDIT}.",
        c.package
    );
    let lines = wrap(&intro, 72);
    for (i, l) in lines.iter().enumerate() {
        let open = if i == 0 { "/*" } else { " *" };
        let close = if i + 1 == lines.len() { " */" } else { "" };
        writeln!(out, "{open} {l}{close}").unwrap();
    }
    writeln!(out, "#ifndef LEL_CONSTANTS_H").unwrap();
    writeln!(out, "#define LEL_CONSTANTS_H").unwrap();
    writeln!(out).unwrap();
    writeln!(out, "#include <stdint.h>").unwrap();
    writeln!(out).unwrap();
    writeln!(
        out,
        "/* The contract package and version this SDK speaks. */"
    )
    .unwrap();
    writeln!(out, "#define LEL_PACKAGE {:?}", c.package).unwrap();
    writeln!(out, "/* The import module of the host's functions. */").unwrap();
    writeln!(out, "#define LEL_HOST_MODULE {:?}", c.host_module).unwrap();
    for g in GROUPS {
        writeln!(out).unwrap();
        let lines = wrap(group_doc(c.table, g), 72);
        for (i, l) in lines.iter().enumerate() {
            let open = if i == 0 { "/*" } else { " *" };
            let close = if i + 1 == lines.len() { " */" } else { "" };
            writeln!(out, "{open} {l}{close}").unwrap();
        }
        for k in c.table.in_group(g) {
            let v = if k.value < 0 {
                format!("({})", k.value)
            } else {
                k.value.to_string()
            };
            writeln!(
                out,
                "#define LEL_{} {v} /* {} */",
                upper_snake(&k.name),
                k.doc
            )
            .unwrap();
        }
    }
    writeln!(out).unwrap();
    writeln!(out, "/* The host's functions. */").unwrap();
    for f in &c.imports {
        let params: Vec<String> = core_params(f)
            .iter()
            .map(|p| match p {
                Core::Ptr(n) => format!("const char *{}", snake(n)),
                Core::Len(n) | Core::I32(n) => format!("int32_t {}", c_ident(&snake(n))),
                Core::I64(n) => format!("int64_t {}", snake(n)),
                Core::F32(n) => format!("float {}", c_ident(&snake(n))),
            })
            .collect();
        let ret = match core_result(f) {
            None => "void",
            Some(false) => "int32_t",
            Some(true) => "int64_t",
        };
        writeln!(
            out,
            "__attribute__((import_module(LEL_HOST_MODULE), import_name({:?})))",
            f.name
        )
        .unwrap();
        writeln!(
            out,
            "{ret} lel_host_{}({});",
            snake(&f.name),
            params.join(", ")
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "#endif /* LEL_CONSTANTS_H */").unwrap();
    out
}

/// C keywords a WIT parameter name could collide with (spelled with a
/// `_value` suffix).
const C_KEYWORDS: [&str; 6] = ["default", "case", "switch", "int", "float", "unsigned"];

fn c_ident(name: &str) -> String {
    if C_KEYWORDS.contains(&name) {
        format!("{name}_value")
    } else {
        name.to_string()
    }
}

/// AssemblyScript (TypeScript) keywords a WIT parameter name could collide
/// with (spelled with a `Value` suffix).
const TS_KEYWORDS: [&str; 5] = ["default", "case", "switch", "in", "function"];

fn ts_ident(name: &str) -> String {
    if TS_KEYWORDS.contains(&name) {
        format!("{name}Value")
    } else {
        name.to_string()
    }
}

/// Zig keywords a WIT name could collide with (spelled `@"align"`).
const ZIG_KEYWORDS: [&str; 12] = [
    "align", "error", "type", "fn", "const", "var", "test", "return", "try", "async", "and", "or",
];

fn zig_ident(name: &str) -> String {
    if ZIG_KEYWORDS.contains(&name) {
        format!("@\"{name}\"")
    } else {
        name.to_string()
    }
}

/// `guest-sdk/zig/lel_constants.zig`.
pub fn zig(c: &Contract) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "//! lel_constants.zig: the {} contract's constants and host imports",
        c.package
    )
    .unwrap();
    for l in wrap(
        &format!("for the Zig SDK (lel.zig imports it), {DO_NOT_EDIT}."),
        72,
    ) {
        writeln!(out, "//! {l}").unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "/// The contract package and version this SDK speaks.").unwrap();
    writeln!(out, "pub const package = {:?};", c.package).unwrap();
    writeln!(out, "/// The import module of the host's functions.").unwrap();
    writeln!(out, "pub const host_module = {:?};", c.host_module).unwrap();
    for g in GROUPS {
        writeln!(out).unwrap();
        for l in wrap(group_doc(c.table, g), 76) {
            writeln!(out, "// {l}").unwrap();
        }
        for k in c.table.in_group(g) {
            let ty = match g {
                "limit" | "sdk-default" => "",
                "event-kind" => ": u8",
                _ => ": i32",
            };
            for l in wrap(&k.doc, 76) {
                writeln!(out, "/// {l}").unwrap();
            }
            writeln!(out, "pub const {}{ty} = {};", snake(&k.name), k.value).unwrap();
        }
    }
    writeln!(out).unwrap();
    writeln!(out, "/// The host's functions.").unwrap();
    writeln!(out, "pub const host = struct {{").unwrap();
    for f in &c.imports {
        let params: Vec<String> = core_params(f)
            .iter()
            .map(|p| match p {
                Core::Ptr(n) => format!("{}: [*]const u8", zig_ident(&snake(n))),
                Core::Len(n) | Core::I32(n) => format!("{}: i32", zig_ident(&snake(n))),
                Core::I64(n) => format!("{}: i64", zig_ident(&snake(n))),
                Core::F32(n) => format!("{}: f32", zig_ident(&snake(n))),
            })
            .collect();
        let ret = match core_result(f) {
            None => "void",
            Some(false) => "i32",
            Some(true) => "i64",
        };
        writeln!(
            out,
            "    pub extern {:?} fn {}({}) {ret};",
            c.host_module,
            zig_ident(&snake(&f.name)),
            params.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "}};").unwrap();
    out
}

/// `guest-sdk/assemblyscript/lel_constants.ts`.
pub fn assemblyscript(c: &Contract) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// lel_constants.ts: the {} contract's constants and host imports",
        c.package
    )
    .unwrap();
    for l in wrap(
        &format!("for the AssemblyScript SDK (lel.ts imports it), {DO_NOT_EDIT}."),
        72,
    ) {
        writeln!(out, "// {l}").unwrap();
    }
    writeln!(out).unwrap();
    writeln!(
        out,
        "/** The contract package and version this SDK speaks. */"
    )
    .unwrap();
    writeln!(out, "export const PACKAGE = {:?};", c.package).unwrap();
    writeln!(out, "/** The import module of the host's functions. */").unwrap();
    writeln!(out, "export const HOST_MODULE = {:?};", c.host_module).unwrap();
    for g in GROUPS {
        writeln!(out).unwrap();
        for l in wrap(group_doc(c.table, g), 76) {
            writeln!(out, "// {l}").unwrap();
        }
        for k in c.table.in_group(g) {
            writeln!(out, "/** {} */", k.doc).unwrap();
            writeln!(
                out,
                "export const {}: i32 = {};",
                upper_snake(&k.name),
                k.value
            )
            .unwrap();
        }
    }
    writeln!(out).unwrap();
    writeln!(out, "// The host's functions.").unwrap();
    for f in &c.imports {
        let params: Vec<String> = core_params(f)
            .iter()
            .map(|p| match p {
                Core::Ptr(n) => format!("{}: usize", camel(n, false)),
                Core::Len(n) | Core::I32(n) => format!("{}: i32", ts_ident(&camel(n, false))),
                Core::I64(n) => format!("{}: i64", camel(n, false)),
                Core::F32(n) => format!("{}: f32", ts_ident(&camel(n, false))),
            })
            .collect();
        let ret = match core_result(f) {
            None => "void",
            Some(false) => "i32",
            Some(true) => "i64",
        };
        writeln!(out, "@external({:?}, {:?})", c.host_module, f.name).unwrap();
        writeln!(
            out,
            "export declare function host{}({}): {ret};",
            camel(&f.name, true),
            params.join(", ")
        )
        .unwrap();
    }
    out
}
