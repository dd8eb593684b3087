//! The shape of the source tree, checked: the real-time core (`host/src/rt/`)
//! is a leaf that depends on nothing upstream of the audio thread.

use crate::util::repo_root;

/// Every `crate::` path named in `host/src/rt/` stays inside `crate::rt`.
/// The loader, the control side, the live host and the command line all
/// depend on the real-time core, never the other way round.
#[test]
fn the_real_time_core_imports_nothing_upstream() {
    let dir = repo_root().join("host/src/rt");
    let mut offences = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("host/src/rt exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("read source");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let after = &rest[at + "crate::".len()..];
                let word: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{')
                    .collect();
                if word != "rt" {
                    offences.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
                rest = after;
            }
            if code.contains("super::super") {
                offences.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(files >= 5, "found only {files} files in {}", dir.display());
    assert!(
        offences.is_empty(),
        "host/src/rt/ must not import code upstream of the audio thread:\n{}",
        offences.join("\n")
    );
}

/// The library's facade stays small: `host/src/lib.rs` opens only the
/// contract and the test hooks as modules; everything else is re-exported
/// item by item, so the rest of the crate stays private and the compiler
/// reports what is dead.
#[test]
fn the_library_exposes_only_its_facade() {
    let lib = std::fs::read_to_string(repo_root().join("host/src/lib.rs")).expect("read lib.rs");
    let public: Vec<&str> = lib
        .lines()
        .filter(|l| l.starts_with("pub mod "))
        .map(|l| {
            l.trim_start_matches("pub mod ")
                .trim_end_matches([';', ' ', '{'])
        })
        .collect();
    assert_eq!(public, ["contract", "testing"], "public modules in lib.rs");
    let private = lib.lines().filter(|l| l.starts_with("mod ")).count();
    assert!(private >= 8, "only {private} private modules in lib.rs");
}
