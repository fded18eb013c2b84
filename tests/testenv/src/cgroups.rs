//! The cgroup v1 subtree every node's processes live in: containerd (and so its shims) and the
//! kubelet's pods, under `/kubestep-testenv/<node>` in each hierarchy. One subtree lets a stop,
//! or the start after a killed run, end every process of the cluster and leave nothing behind.

use crate::Error;
use std::path::{Path, PathBuf};

/// The subtree's name in every hierarchy.
pub const ROOT: &str = "kubestep-testenv";
const MOUNT: &str = "/sys/fs/cgroup";

/// The mounted v1 hierarchies (cpu, memory, pids, name=systemd, ...), not the unified one.
fn hierarchies() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(MOUNT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != "unified" && e.path().join("cgroup.procs").exists())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// Creates `/kubestep-testenv/<name>` in every hierarchy (a cpuset child starts with no cpus or
/// memory nodes, so it inherits its parent's) and returns the cgroup path.
pub fn create(name: &str) -> Result<String, Error> {
    let rel = format!("{ROOT}/{name}");
    for h in hierarchies() {
        let mut dir = h.clone();
        for part in rel.split('/') {
            let parent = dir.clone();
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = std::fs::read_to_string(parent.join(file)) {
                        let _ = std::fs::write(dir.join(file), v.trim());
                    }
                }
            }
        }
    }
    Ok(format!("/{rel}"))
}

/// Moves process `pid` into the cgroup `path` (as [`create`] returned it) of every hierarchy;
/// its children then start there.
pub fn enter(path: &str, pid: u32) -> Result<(), Error> {
    for h in hierarchies() {
        let procs = h.join(path.trim_start_matches('/')).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|e| Error::io(&procs, e))?;
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}

/// Kills every process in the subtree and removes its cgroups, deepest first.
pub fn kill_all() {
    for _round in 0..50 {
        let mut alive = false;
        for h in hierarchies() {
            let mut dirs = Vec::new();
            walk(&h.join(ROOT), &mut dirs);
            for d in &dirs {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    alive = true;
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if !alive {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for h in hierarchies() {
        let mut dirs = Vec::new();
        walk(&h.join(ROOT), &mut dirs);
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}
