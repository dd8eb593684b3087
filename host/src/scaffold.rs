//! `lel-host new NAME --lang ...`: create a ready guest project. Non-real-time.
//!
//! Every project is a 440 Hz sine at half scale that builds with one command
//! (`./build.sh`, writing `out/NAME.wasm`; WAT needs none) and plays live
//! with `lel-host run out/`. The templates are in `host/templates/<lang>/`;
//! the C, Zig and AssemblyScript SDKs are copied into the project from
//! `guest-sdk/<lang>/`, and a Rust project depends on this tree's
//! `guest-sdk` by path, both taken in when lel-host is built.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The languages a new signal can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Zig,
    Assemblyscript,
    Wat,
}

/// The Zig version the Zig SDK (`guest-sdk/zig/lel.zig`) is written for;
/// `scripts/setup-languages` and `scripts/build-examples` pin the same.
pub const ZIG_VERSION: &str = "0.15.2";

/// The source tree lel-host was built from.
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// One file of a project: its path inside the project, its text (with
/// `{{placeholders}}`), and whether it is a script to make executable.
struct File {
    path: String,
    text: &'static str,
    exec: bool,
}

fn file(path: impl Into<String>, text: &'static str) -> File {
    File {
        path: path.into(),
        text,
        exec: false,
    }
}

fn script(path: &str, text: &'static str) -> File {
    File {
        path: path.to_string(),
        text,
        exec: true,
    }
}

/// The files of a `lang` project named `name`.
fn files(name: &str, lang: Lang) -> Vec<File> {
    match lang {
        Lang::Rust => vec![
            file("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            file("src/lib.rs", include_str!("../templates/rust/lib.rs")),
            script("build.sh", include_str!("../templates/rust/build.sh")),
            file("README.md", include_str!("../templates/rust/README.md")),
            file(".gitignore", "# Build output.\n/target\n/out\n"),
        ],
        Lang::C => vec![
            file(format!("{name}.c"), include_str!("../templates/c/signal.c")),
            file("lel.h", include_str!("../../guest-sdk/c/lel.h")),
            file(
                "lel_constants.h",
                include_str!("../../guest-sdk/c/lel_constants.h"),
            ),
            script("build.sh", include_str!("../templates/c/build.sh")),
            file("README.md", include_str!("../templates/c/README.md")),
            file(".gitignore", "# Build output.\n/out\n"),
        ],
        Lang::Zig => vec![
            file(
                format!("{name}.zig"),
                include_str!("../templates/zig/signal.zig"),
            ),
            file("lel.zig", include_str!("../../guest-sdk/zig/lel.zig")),
            file(
                "lel_constants.zig",
                include_str!("../../guest-sdk/zig/lel_constants.zig"),
            ),
            script("build.sh", include_str!("../templates/zig/build.sh")),
            file("README.md", include_str!("../templates/zig/README.md")),
            file(".gitignore", "# Build output.\n/out\n/.zig-cache\n"),
        ],
        Lang::Assemblyscript => vec![
            file(
                format!("{name}.ts"),
                include_str!("../templates/assemblyscript/signal.ts"),
            ),
            file(
                "lel.ts",
                include_str!("../../guest-sdk/assemblyscript/lel.ts"),
            ),
            file(
                "lel_constants.ts",
                include_str!("../../guest-sdk/assemblyscript/lel_constants.ts"),
            ),
            file(
                "lel-transform.mjs",
                include_str!("../../guest-sdk/assemblyscript/lel-transform.mjs"),
            ),
            // The examples' pinned AssemblyScript, renamed for this project.
            file(
                "package.json",
                include_str!("../../examples/assemblyscript/package.json"),
            ),
            file(
                "package-lock.json",
                include_str!("../../examples/assemblyscript/package-lock.json"),
            ),
            script(
                "build.sh",
                include_str!("../templates/assemblyscript/build.sh"),
            ),
            file(
                "README.md",
                include_str!("../templates/assemblyscript/README.md"),
            ),
            file(
                "tsconfig.json",
                include_str!("../templates/assemblyscript/tsconfig.json"),
            ),
            file(
                ".gitignore",
                "# Build output and npm ci's install.\n/out\n/node_modules\n",
            ),
        ],
        Lang::Wat => vec![
            file(
                format!("{name}.wat"),
                include_str!("../templates/wat/signal.wat"),
            ),
            file("README.md", include_str!("../templates/wat/README.md")),
        ],
    }
}

/// A signal name must also be a file stem, a crate name and an npm name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        ok,
        "`{name}` cannot name a signal: use 1 to 64 ASCII letters, digits, `-` or `_`, starting with a letter"
    );
    Ok(())
}

/// Fills the `{{placeholders}}` of a template.
fn render(text: &str, name: &str) -> String {
    let toml_path = |p: PathBuf| {
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    let npm = format!("lel-signal-{}", name.to_ascii_lowercase());
    text.replace("{{name}}", name)
        .replace("{{crate}}", name)
        .replace("{{crate_file}}", &name.replace('-', "_"))
        .replace("{{sdk}}", &toml_path(repo_root().join("guest-sdk")))
        .replace(
            "{{tools}}",
            &repo_root().join("target/tools").display().to_string(),
        )
        .replace("{{zig_version}}", ZIG_VERSION)
        // package.json and package-lock.json of the examples.
        .replace("\"lel-examples-assemblyscript\"", &format!("\"{npm}\""))
        .replace(
            "AssemblyScript signal modules for lel-host (built by scripts/build-examples)",
            &format!("{name}: a lel signal in AssemblyScript"),
        )
}

/// Create the project `name` for `lang` inside `parent`; returns its folder.
///
/// # Errors
/// When the folder exists already or cannot be written.
pub fn new_project(name: &str, lang: Lang, parent: &Path) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    anyhow::ensure!(
        !dir.exists(),
        "{} exists already: choose another name or folder",
        dir.display()
    );
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    for f in files(name, lang) {
        let path = dir.join(&f.path);
        if let Some(up) = path.parent() {
            fs::create_dir_all(up).with_context(|| format!("create {}", up.display()))?;
        }
        fs::write(&path, render(f.text, name))
            .with_context(|| format!("write {}", path.display()))?;
        #[cfg(unix)]
        if f.exec {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("make {} executable", path.display()))?;
        }
    }
    let next = match lang {
        Lang::Wat => format!("play it: lel-host run {}/{name}.wat", dir.display()),
        _ => format!(
            "build it: {0}/build.sh, then play it: lel-host run {0}/out/",
            dir.display()
        ),
    };
    tracing::info!("{next}");
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_stems_crates_and_npm_names() {
        for ok in ["lead", "bass-2", "Pad_A"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2lead", "a b", "../x", "lead.wasm", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [
            Lang::Rust,
            Lang::C,
            Lang::Zig,
            Lang::Assemblyscript,
            Lang::Wat,
        ] {
            for f in files("lead", lang) {
                let text = render(f.text, "lead");
                assert!(!text.contains("{{"), "{lang:?} {}: {text}", f.path);
            }
        }
    }
}
