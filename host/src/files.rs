//! Module files on disk: which paths are signals, what a signal is called,
//! and reading a file into module bytes. Runs on the load pipeline's workers
//! (reading) and on the control thread (naming, listing folders).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::contract;
use crate::loader::LoadError;

/// A signal's name: its file stem.
pub fn signal_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Read a `.wasm` or `.wat` file into binary module bytes.
///
/// # Errors
/// When the file cannot be read or is not a module.
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let meta = std::fs::metadata(path)?;
    if meta.len() as usize > contract::MAX_MODULE_BYTES {
        return Err(contract::ContractError::TooLarge {
            size: meta.len() as usize,
            max: contract::MAX_MODULE_BYTES,
        }
        .into());
    }
    let bytes = std::fs::read(path)?;
    Ok(contract::to_binary(&bytes, is_text(path))?)
}

/// A `.wat` file (text) rather than a `.wasm` one.
pub fn is_text(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wat")
}

/// Expand files and folders into module files (folders: every `.wasm` and
/// `.wat` directly inside, sorted).
///
/// # Errors
/// A path that does not exist, a file with another extension, or two files
/// that would give the same signal name.
pub fn collect_modules(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: cannot read the folder: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_module_file(f))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            anyhow::ensure!(
                is_module_file(p),
                "{}: not a module file (expected a `.wasm` or `.wat` file, or a folder of them)",
                p.display()
            );
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
    }
    let mut seen: HashMap<String, &PathBuf> = HashMap::new();
    for p in &out {
        if let Some(first) = seen.insert(signal_name(p), p) {
            anyhow::bail!(
                "{} and {} would both be the signal `{}`: rename one",
                first.display(),
                p.display(),
                signal_name(p)
            );
        }
    }
    Ok(out)
}

/// Paths for a message: `a.wat, b/`.
pub fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `.wasm` or `.wat` file.
pub fn is_module_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm" || e == "wat")
}
