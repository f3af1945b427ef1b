//! `run.lock`: one process per run folder.
//!
//! The lock is the operating system's (`flock` on the file), so it ends
//! with its process however that ends — `kill -9`, a crash, a machine gone
//! from a shared folder's view — and never depends on reading a PID that may
//! belong to a zombie or to another host. The file holds `host pid`, only to
//! say who holds it.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const FILE: &str = "run.lock";

/// Held while a process trains a run.
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn whoami() -> String {
    format!("{} {}", host(), std::process::id())
}

/// How long a held lock is watched before it counts as held: a process
/// killed a moment ago (a zombie whose threads are still being torn down)
/// lets go of its locks within milliseconds.
const GRACE: Duration = Duration::from_millis(1500);

/// `f.try_lock()`, retried for [`GRACE`] while another process holds it.
fn try_lock_patiently(f: &File) -> Result<(), TryLockError> {
    let t0 = Instant::now();
    loop {
        match f.try_lock() {
            Err(TryLockError::WouldBlock) if t0.elapsed() < GRACE => std::thread::sleep(Duration::from_millis(25)),
            r => return r,
        }
    }
}

/// Who holds `dir`'s lock (`host pid`), if another process does.
pub fn holder(dir: &Path) -> Option<String> {
    let mut f = File::open(dir.join(FILE)).ok()?;
    if read_holder(&mut f) == whoami() {
        // This process's own lock (another handle on the file) is not "another process".
        return None;
    }
    match try_lock_patiently(&f) {
        Ok(()) => {
            let _ = f.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => {
            let who = read_holder(&mut f);
            Some(if who.is_empty() { "another process".into() } else { who })
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// The `host pid` written in an open lock file.
fn read_holder(f: &mut File) -> String {
    let mut who = String::new();
    let _ = f.rewind().and_then(|_| f.read_to_string(&mut who));
    who.trim().to_string()
}

/// What trying to lock a run found.
pub enum Acquired {
    Held(RunLock),
    /// Another process holds it (`host pid`).
    Busy(String),
}

impl RunLock {
    /// Lock `dir`'s run for this process, unless another holds it.
    pub fn acquire(dir: &Path) -> Result<Acquired> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(FILE);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        match try_lock_patiently(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = read_holder(&mut file);
                return Ok(Acquired::Busy(if who.is_empty() { "another process".into() } else { who }));
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", whoami())?;
        Ok(Acquired::Held(RunLock { _file: file, path }))
    }

    /// Block until no other process holds `dir`'s run (returns at once if
    /// none does); the lock is not kept.
    pub fn wait(dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        let Ok(file) = File::open(&path) else { return Ok(()) };
        file.lock().with_context(|| format!("cannot wait for {}", path.display()))?;
        let _ = file.unlock();
        Ok(())
    }

    /// Release the lock of a run that has finished, removing the file: a
    /// process that takes it afterwards finds the run finished and leaves it.
    pub fn release_finished(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_and_freed_by_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let held = |a: Acquired| match a {
            Acquired::Held(l) => l,
            Acquired::Busy(who) => panic!("busy: {who}"),
        };
        let lock = held(RunLock::acquire(tmp.path()).unwrap());
        match RunLock::acquire(tmp.path()).unwrap() {
            Acquired::Busy(who) => assert!(who.contains(&std::process::id().to_string()), "{who}"),
            Acquired::Held(_) => panic!("a second holder"),
        }
        drop(lock);
        RunLock::wait(tmp.path()).unwrap();
        let again = held(RunLock::acquire(tmp.path()).unwrap());
        again.release_finished();
        assert!(!tmp.path().join(FILE).exists());
        assert_eq!(holder(tmp.path()), None);
    }
}
