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

/// The raw bytes (text or binary) of the module file at `path`. Only a
/// regular file is read: the type is checked on what was opened (so a
/// symbolic link to a device or a FIFO is refused, and opening a FIFO does not
/// wait for a writer), and the read stops at the size cap whatever the file
/// claims.
///
/// # Errors
/// When the file cannot be read, is not a regular file or is over the cap.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    read_capped(path, contract::MAX_MODULE_BYTES)
}

/// The bytes of the regular file at `path`, at most `cap` of them.
fn read_capped(path: &Path, cap: usize) -> Result<Vec<u8>, LoadError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => LoadError::NotAFile(
                "a loop of symbolic links (or a chain too long to follow); only regular files are loaded".into(),
            ),
            _ => LoadError::Io(e),
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotAFile(format!(
            "not a regular file but {}; only regular files are loaded",
            kind(&meta.file_type())
        )));
    }
    let too_large = |size: u64| contract::ContractError::TooLarge {
        size: size as usize,
        max: cap,
    };
    if meta.len() > cap as u64 {
        return Err(too_large(meta.len()).into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(too_large(bytes.len() as u64).into());
    }
    Ok(bytes)
}

/// What a file that is not a regular one is, for messages.
fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A `.wat` file (text) rather than a `.wasm` one.
pub fn is_text(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wat")
}

/// Expand files and folders into module files (folders: every `.wasm` and
/// `.wat` name directly inside, sorted, except hidden ones; what is not a
/// regular file is refused when it is read, with a message).
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
                .filter(|f| is_folder_module(f))
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

/// A name in a watched folder that is a signal: a module file that is not
/// hidden (a leading `.`: editors' temp files such as `.tmp.wat`, and Emacs
/// lock files `.#name.wat`).
pub fn is_folder_module(p: &Path) -> bool {
    is_module_file(p)
        && !p
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
}
