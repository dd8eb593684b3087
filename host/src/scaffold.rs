//! `lel-host new NAME --lang ...`: create a ready guest project. Non-real-time.

use std::path::{Path, PathBuf};

/// The languages a new signal can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Zig,
    Assemblyscript,
    Wat,
}

/// Create the project `name` for `lang` inside `parent`; returns its folder.
///
/// # Errors
/// When the folder exists already or cannot be written.
pub fn new_project(name: &str, lang: Lang, parent: &Path) -> anyhow::Result<PathBuf> {
    let _ = (name, lang, parent);
    anyhow::bail!("`lel-host new` is not implemented yet")
}
