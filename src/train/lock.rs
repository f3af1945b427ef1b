//! `run.lock`: one process per run directory. The file holds the owner's pid;
//! a lock whose process is gone (a crash, `kill -9`) is taken over.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct RunLock {
    path: PathBuf,
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid of another live process holding `dir`'s lock, if any.
pub fn holder(dir: &Path) -> Option<u32> {
    let pid = std::fs::read_to_string(dir.join("run.lock")).ok()?.trim().parse::<u32>().ok()?;
    (pid != std::process::id() && alive(pid)).then_some(pid)
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("run.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id())?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match holder(dir) {
                    Some(pid) => bail!("{} is being written by process {pid} (remove {} if that is wrong)", dir.display(), path.display()),
                    // Stale: its owner died (or it is our own). Remove and try again.
                    None => {
                        let _ = std::fs::remove_file(&path);
                    }
                },
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        bail!("could not lock {}", dir.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
