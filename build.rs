//! Which code this binary is built from, for every run's record
//! (`train::record::Engine::current`): the last commit that changed the
//! code, with `+modified` when the code differed from it at build time.
//!
//! At build time, not when a run is recorded: the checkout then may have
//! moved on from the binary (the queue runs a copy of it), or not be a
//! checkout of actlab at all (another directory, the GPU machine).
//!
//! The last commit of the code rather than HEAD: committing runs or prose
//! then neither changes the identity nor rebuilds the binary. (A change
//! committed after the build keeps `+modified` until the next build.)

use std::process::Command;

/// What the binary is built from.
const CODE: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).arg("--").args(CODE).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["log", "-1", "--format=%H"]).filter(|c| !c.is_empty());
    let modified = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let identity = match commit {
        Some(c) if modified => format!("{c}+modified"),
        Some(c) => c,
        None => String::new(), // not built from a git checkout
    };
    println!("cargo:rustc-env=ACTLAB_CODE_COMMIT={identity}");
    // The paths themselves, for the test that checks the identity against git.
    println!("cargo:rustc-env=ACTLAB_CODE_PATHS={}", CODE.join(" "));
    for path in CODE {
        println!("cargo:rerun-if-changed={path}");
    }
    // Another branch checked out. (Only a path that exists: cargo would take
    // a missing one as changed, and rebuild every time.)
    if std::path::Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
    }
}
