//! Watching module files and folders (notify 8), and the settle logic that
//! turns raw file-system events into "load this file now" or "this file is
//! gone", coping with how real tools write files:
//!
//! - cargo replaces its output (remove + hard link, no modify event): a
//!   removal is only acted on if the file is still missing after a grace
//!   period, so a quick re-create is a reload, not an unload;
//! - editors write a temp file and rename it into place: the rename's target
//!   is what counts; temp names are ignored by their extension, and hidden
//!   names (a leading `.`: temp files, Emacs lock files `.#name.wat`) too;
//! - slow writers leave a partial file for a moment: a file is read only once
//!   it has been quiet for a short settle time, and a version that fails to
//!   load is retried a few times before the failure is reported.
//!
//! The notify callback runs on notify's thread and only forwards paths; the
//! [`Settler`] runs on the control thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::files::is_folder_module;

/// Quiet time before a touched file is read.
pub const SETTLE: Duration = Duration::from_millis(15);
/// Quiet time after an event that says the file is complete (closed after
/// writing, hard-linked): only enough to catch a burst.
pub const SETTLE_COMPLETE: Duration = Duration::from_millis(2);
/// Quiet time after a rename into place: none. The rename is atomic, so the
/// name shows the whole new file from that instant; an event right after it
/// (a `chmod`, a second save) reloads, and identical bytes are skipped by
/// their hash. This is 2 ms of every editor save's latency.
pub const SETTLE_RENAMED: Duration = Duration::ZERO;
/// How long a removed file may take to reappear before it is unloaded.
pub const REMOVE_GRACE: Duration = Duration::from_millis(250);
/// Loads of a changed file that may fail before the failure is reported.
pub const ATTEMPTS: u32 = 4;
/// Wait between attempts.
pub const RETRY: Duration = Duration::from_millis(60);

/// What the watcher forwards to the control thread.
#[derive(Debug)]
pub enum Change {
    /// Something happened to this module file; `complete` when the event
    /// says the writer is done (close after write, rename into place, a new
    /// hard link), `renamed` when it was a rename into place.
    Touched {
        path: PathBuf,
        at: Instant,
        complete: bool,
        renamed: bool,
    },
    /// The watcher itself reported a problem (a folder deleted, ...).
    Error(String),
}

/// Which paths matter: every module file in a watched folder, and files
/// given one by one.
#[derive(Clone, Debug, Default)]
pub struct WatchSet {
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl WatchSet {
    /// Build from the command line's paths (folders and files).
    ///
    /// # Errors
    /// A path that does not exist.
    pub fn new(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let mut set = WatchSet::default();
        for p in paths {
            let canon = std::fs::canonicalize(p)
                .with_context(|| format!("{}: no such file or folder", p.display()))?;
            if canon.is_dir() {
                set.folders.push(canon);
            } else {
                set.files.push(canon);
            }
        }
        Ok(set)
    }

    /// Does a change to `p` concern us?
    pub fn wants(&self, p: &Path) -> bool {
        if self.files.iter().any(|f| f == p) {
            return true;
        }
        is_folder_module(p)
            && p.parent()
                .is_some_and(|d| self.folders.iter().any(|f| f == d))
    }

    /// The folders to ask notify about: watched folders and the folders of
    /// single files (so that replace and rename are seen).
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.folders.clone();
        for f in &self.files {
            if let Some(d) = f.parent()
                && !dirs.iter().any(|x| x == d)
            {
                dirs.push(d.to_path_buf());
            }
        }
        dirs
    }
}

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
}

/// Watch `set`, passing changes to `send` (on notify's thread).
///
/// # Errors
/// When the operating system refuses the watch.
pub fn start(set: &WatchSet, send: impl Fn(Change) + Send + 'static) -> anyhow::Result<Watcher> {
    let filter = set.clone();
    let mut inner =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                let relevant = matches!(
                    event.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(_)
                        | EventKind::Remove(_)
                        | EventKind::Any
                ) || matches!(
                    event.kind,
                    EventKind::Access(notify::event::AccessKind::Close(
                        notify::event::AccessMode::Write
                    ))
                );
                if !relevant {
                    return;
                }
                let now = Instant::now();
                // Events after which the file is whole: a close after
                // writing, a rename into place (inotify pairs the two halves
                // of a rename as `Both`), a new hard link.
                let complete = matches!(
                    event.kind,
                    EventKind::Access(_)
                        | EventKind::Create(_)
                        | EventKind::Modify(notify::event::ModifyKind::Name(_))
                );
                let renamed = matches!(
                    event.kind,
                    EventKind::Modify(notify::event::ModifyKind::Name(
                        notify::event::RenameMode::To | notify::event::RenameMode::Both
                    ))
                );
                for p in event.paths {
                    if filter.wants(&p) {
                        send(Change::Touched {
                            path: p,
                            at: now,
                            complete,
                            renamed,
                        });
                    } else if filter.folders.iter().any(|f| f == &p)
                        && matches!(event.kind, EventKind::Remove(_))
                    {
                        send(Change::Error(format!(
                            "{}: the watched folder was removed",
                            p.display()
                        )));
                    }
                }
            }
            Err(e) => {
                send(Change::Error(format!("watching files failed: {e}")));
            }
        })
        .context("cannot start the file watcher")?;
    for d in set.dirs() {
        inner
            .watch(&d, RecursiveMode::NonRecursive)
            .with_context(|| format!("{}: cannot watch this folder", d.display()))?;
    }
    Ok(Watcher { _inner: inner })
}

/// What the control thread should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Read and load this file; `first` is when it was first touched.
    Load { path: PathBuf, first: Instant },
    /// The file is gone: fade its signal out.
    Remove { path: PathBuf },
}

#[derive(Debug)]
struct Pending {
    first: Instant,
    /// Not before this instant.
    after: Instant,
}

/// Decides *when* files are loaded or unloaded: once touched files have
/// settled, once a removed file has stayed away, once a failed load is due
/// for another try. What a load does is the load pipeline's business.
#[derive(Debug, Default)]
pub struct Settler {
    pending: HashMap<PathBuf, Pending>,
    /// Failed attempts of files whose load may have read a partial write.
    attempts: HashMap<PathBuf, u32>,
}

impl Settler {
    /// Note an event on `path`. `complete`: the event says the writer is
    /// done, so a short settle is enough.
    pub fn touch(&mut self, path: PathBuf, at: Instant, complete: bool) {
        self.touch_settled(
            path,
            at,
            if complete { SETTLE_COMPLETE } else { SETTLE },
            complete,
        );
    }

    /// Note a rename into place on `path`: due at once.
    pub fn renamed(&mut self, path: PathBuf, at: Instant) {
        self.touch_settled(path, at, SETTLE_RENAMED, true);
    }

    fn touch_settled(&mut self, path: PathBuf, at: Instant, settle: Duration, complete: bool) {
        self.attempts.remove(&path);
        let p = self.pending.entry(path).or_insert(Pending {
            first: at,
            after: at,
        });
        p.after = if complete {
            at + settle
        } else {
            p.after.max(at + settle)
        };
    }

    /// When the next item may come due (to bound the control loop's wait).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.after).min()
    }

    /// What is due at `now`. Each load is handed out once.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        self.pending.retain(|path, p| {
            if p.after > now {
                return true;
            }
            // The name is there (a link loop or a dangling link too: the
            // load says what is wrong with it).
            if path.symlink_metadata().is_ok() {
                out.push(Due::Load {
                    path: path.clone(),
                    first: p.first,
                });
                false
            } else if now >= p.after + REMOVE_GRACE {
                out.push(Due::Remove { path: path.clone() });
                false
            } else {
                true
            }
        });
        out
    }

    /// The load succeeded (or found nothing new).
    pub fn loaded(&mut self, path: &Path) {
        self.attempts.remove(path);
    }

    /// A load that may have read a partial write failed at `now`. Returns
    /// true when the failure should be reported (attempts used up, or a newer
    /// change will tell); otherwise it is tried again shortly.
    pub fn failed(&mut self, path: &Path, first: Instant, now: Instant) -> bool {
        if self.pending.contains_key(path) {
            return false; // changed again meanwhile: that load will tell
        }
        let n = self.attempts.entry(path.to_path_buf()).or_insert(0);
        *n += 1;
        if *n >= ATTEMPTS {
            self.attempts.remove(path);
            return true;
        }
        self.pending.insert(
            path.to_path_buf(),
            Pending {
                first,
                after: now + RETRY,
            },
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_renamed_into_place_is_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wat");
        std::fs::write(&f, "x").unwrap();
        let mut s = Settler::default();
        let t0 = Instant::now();
        s.touch(f.clone(), t0, true);
        assert!(s.due(t0).is_empty(), "a close after writing settles 2 ms");
        s.renamed(f.clone(), t0);
        assert_eq!(
            s.due(t0),
            vec![Due::Load {
                path: f.clone(),
                first: t0
            }]
        );
        s.renamed(f.clone(), t0);
        s.touch(f.clone(), t0, false);
        assert!(s.due(t0).is_empty(), "a write after the rename settles");
    }

    #[test]
    fn a_touched_file_loads_once_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wat");
        std::fs::write(&f, "x").unwrap();
        let mut s = Settler::default();
        let t0 = Instant::now();
        s.touch(f.clone(), t0, false);
        assert!(s.due(t0).is_empty(), "not before it settles");
        s.touch(f.clone(), t0 + SETTLE / 2, false);
        assert!(
            s.due(t0 + SETTLE).is_empty(),
            "a later touch restarts the wait"
        );
        assert_eq!(
            s.due(t0 + SETTLE * 2),
            vec![Due::Load {
                path: f.clone(),
                first: t0
            }]
        );
        assert!(s.due(t0 + SETTLE * 3).is_empty(), "handed out once");
        assert!(s.next_deadline().is_none());
    }

    #[test]
    fn a_replaced_file_is_not_unloaded_and_a_removed_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wasm");
        let mut s = Settler::default();
        let t0 = Instant::now();
        s.touch(f.clone(), t0, false); // removed ...
        assert!(
            s.due(t0 + SETTLE + REMOVE_GRACE / 2).is_empty(),
            "within the grace period"
        );
        std::fs::write(&f, "x").unwrap(); // ... and created again (cargo's hard link)
        s.touch(f.clone(), t0 + REMOVE_GRACE / 2, false);
        assert!(matches!(
            s.due(t0 + REMOVE_GRACE).as_slice(),
            [Due::Load { .. }]
        ));
        s.loaded(&f);
        std::fs::remove_file(&f).unwrap();
        s.touch(f.clone(), t0, false);
        assert_eq!(
            s.due(t0 + SETTLE + REMOVE_GRACE),
            vec![Due::Remove { path: f }]
        );
    }

    #[test]
    fn failures_are_retried_before_being_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wasm");
        std::fs::write(&f, "x").unwrap();
        let mut s = Settler::default();
        let mut now = Instant::now();
        let first = now;
        s.touch(f.clone(), now, false);
        for attempt in 1..=ATTEMPTS {
            now += SETTLE + RETRY;
            assert_eq!(s.due(now).len(), 1, "attempt {attempt}");
            let report = s.failed(&f, first, now);
            assert_eq!(report, attempt == ATTEMPTS);
        }
        assert!(s.next_deadline().is_none());
    }
}
