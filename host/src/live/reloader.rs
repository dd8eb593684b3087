//! Reloading changed files without ever blocking the control loop: each new
//! version is prepared (compiled, instantiated, `init`-ed) on a thread of its
//! own and handed to the audio thread the moment it is ready, so a save whose
//! `init` hangs holds back no other save. Loads of one signal are kept in
//! order: while one is being prepared, a newer change waits for it, so every
//! version claims its state against the version it will replace.
//! Runs on the control thread (the worker threads only call the loader).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Instant;

use crate::control::{Control, read_module};
use crate::loader::{LoadError, Prepared};

use super::watcher::Settler;

/// A version finished preparing (or failed to).
pub struct Finished {
    name: String,
    path: PathBuf,
    first: Instant,
    result: Result<Prepared, LoadError>,
}

pub struct Reloader<M> {
    in_flight: HashSet<String>,
    /// Newer changes to signals whose previous change is still in flight.
    waiting: HashMap<String, (PathBuf, Instant)>,
    tx: Sender<M>,
    wrap: fn(Finished) -> M,
}

impl<M: Send + 'static> Reloader<M> {
    /// Finished loads are sent to `tx`, wrapped by `wrap`.
    pub fn new(tx: Sender<M>, wrap: fn(Finished) -> M) -> Self {
        Reloader {
            in_flight: HashSet::new(),
            waiting: HashMap::new(),
            tx,
            wrap,
        }
    }

    /// The file of `name` changed (first noticed at `first`): load it.
    pub fn request(
        &mut self,
        control: &Control,
        settler: &mut Settler,
        name: String,
        path: PathBuf,
        first: Instant,
    ) {
        if self.in_flight.contains(&name) {
            self.waiting.insert(name, (path, first));
            return;
        }
        let bytes = match read_module(&path) {
            Ok(b) => b,
            Err(e) => return failed(control, settler, &name, &path, e),
        };
        let Some(previous) = control.previous_layout(&name, &bytes) else {
            settler.loaded(&path);
            tracing::debug!(
                "{name}: {} changed on disk but not in content",
                path.display()
            );
            return;
        };
        self.in_flight.insert(name.clone());
        let (loader, tx, wrap) = (control.loader().clone(), self.tx.clone(), self.wrap);
        let spawned = std::thread::Builder::new()
            .name(format!("lel-load-{name}"))
            .spawn(move || {
                let result = loader.prepare(&name, &bytes, &previous);
                let _ = tx.send(wrap(Finished {
                    name,
                    path,
                    first,
                    result,
                }));
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a loader thread: {e}");
        }
    }

    /// A version is ready (or was rejected): hand it over, report, and start
    /// a change that was waiting for it.
    pub fn finished(&mut self, f: Finished, control: &mut Control, settler: &mut Settler) {
        let Finished {
            name,
            path,
            first,
            result,
        } = f;
        self.in_flight.remove(&name);
        match result.and_then(|p| control.hand_over(&name, p, Some(&path))) {
            Ok(r) => {
                settler.loaded(&path);
                control.mark_requested(&name, first);
                tracing::info!(
                    "{name}: new version from {}, {}",
                    path.display(),
                    super::describe_load(&r)
                );
            }
            Err(e) => failed(control, settler, &name, &path, e),
        }
        if let Some((path, first)) = self.waiting.remove(&name) {
            self.request(control, settler, name, path, first);
        }
    }
}

/// A load failed: retry it if a file still being written could explain it,
/// otherwise (or once the retries are used up) report it.
fn failed(
    control: &Control,
    settler: &mut Settler,
    name: &str,
    path: &std::path::Path,
    e: LoadError,
) {
    let report = if e.may_be_partial_write() {
        settler.failed(path, Instant::now())
    } else {
        settler.loaded(path);
        true
    };
    if report {
        let playing = if control.signals().iter().any(|s| s == name) {
            "; the playing version keeps playing"
        } else {
            ""
        };
        tracing::error!("{name}: rejected: {}: {e}{playing}", path.display());
    }
}
