//! Compiled-module cache keyed by content hash: in memory for the life of the
//! process, and on disk as wasmtime serialized modules, so reloading a known
//! version or restarting lel-host is near-instant. Runs on loader threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::{Engine, Module};

/// Content hash of module bytes (BLAKE3, hex).
pub type Hash = String;

pub fn hash(bytes: &[u8]) -> Hash {
    blake3::hash(bytes).to_hex().to_string()
}

/// Where compiled modules are kept between runs: `$LEL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/lel-host`, else `~/.cache/lel-host`. `LEL_CACHE_DIR=off`
/// disables the disk cache.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("LEL_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("lel-host")),
    }
}

/// How a module was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Compiled,
    Memory,
    Disk,
}

pub struct ModuleCache {
    dir: Option<PathBuf>,
    modules: Mutex<HashMap<Hash, Module>>,
}

impl ModuleCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        ModuleCache {
            dir,
            modules: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled module for `bytes`, compiling it at most once.
    ///
    /// # Errors
    /// When the module does not compile.
    pub fn get(
        &self,
        engine: &Engine,
        hash: &Hash,
        bytes: &[u8],
    ) -> wasmtime::Result<(Module, Source)> {
        if let Some(m) = self.modules.lock().unwrap().get(hash) {
            return Ok((m.clone(), Source::Memory));
        }
        let (module, source) = match self.load_disk(engine, hash) {
            Some(m) => (m, Source::Disk),
            None => {
                let m = Module::new(engine, bytes)?;
                // Off the reload's critical path: the swap need not wait for
                // the disk.
                let (dir, hash, module) = (self.dir.clone(), hash.clone(), m.clone());
                std::thread::spawn(move || store_disk(dir.as_deref(), &hash, &module));
                (m, Source::Compiled)
            }
        };
        self.modules
            .lock()
            .unwrap()
            .insert(hash.clone(), module.clone());
        Ok((module, source))
    }

    fn paths(&self, hash: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.dir.as_ref()?;
        Some((
            dir.join(format!("{hash}.cwasm")),
            dir.join(format!("{hash}.cwasm.b3")),
        ))
    }

    fn load_disk(&self, engine: &Engine, hash: &str) -> Option<Module> {
        let (path, check) = self.paths(hash)?;
        let bytes = std::fs::read(&path).ok()?;
        // The artifact is trusted only if it is exactly what this cache wrote.
        if std::fs::read_to_string(&check).ok()? != blake3::hash(&bytes).to_hex().as_str() {
            return None;
        }
        // SAFETY: `bytes` were produced by `Module::serialize` in `store_disk`
        // (the checksum written beside them matches), and wasmtime itself
        // rejects artifacts of another version or configuration.
        unsafe { Module::deserialize(engine, &bytes) }.ok()
    }
}

fn paths(dir: Option<&Path>, hash: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = dir?;
    Some((
        dir.join(format!("{hash}.cwasm")),
        dir.join(format!("{hash}.cwasm.b3")),
    ))
}

/// Serialize a compiled module into the cache folder (atomically: a temp file
/// renamed into place, then its checksum).
fn store_disk(dir: Option<&Path>, hash: &str, module: &Module) {
    let Some((path, check)) = paths(dir, hash) else {
        return;
    };
    let Ok(bytes) = module.serialize() else {
        return;
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("cache file has a folder"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        std::fs::write(&check, blake3::hash(&bytes).to_hex().as_str())
    };
    if let Err(e) = write() {
        tracing::debug!("module cache {}: {e}", path.display());
    }
}
