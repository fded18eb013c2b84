//! One container as a process: bubblewrap with the host root read-only as its image, its
//! volumes bound in, a memory cgroup (v1) for its limit, and its output in a log file.

use crate::spawn;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

const CGROUP_ROOT: &str = "/sys/fs/cgroup/memory/kubestep-testenv";

/// A bind mount into the sandbox.
#[derive(Clone, Debug)]
pub struct Mount {
    /// Directory or file on the host.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Everything needed to start one container.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: String,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// The pod's hostname.
    pub hostname: String,
    /// File bound over /etc/hosts.
    pub hosts_file: PathBuf,
    /// Where the output goes.
    pub log: PathBuf,
    /// Unique name for the cgroup.
    pub id: String,
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code as Kubernetes reports it (128 + signal for a signal).
    pub code: i32,
    /// The kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
}

/// A started container.
pub struct Running {
    child: tokio::process::Child,
    cgroup: PathBuf,
    outputs: Vec<tokio::task::JoinHandle<()>>,
}

fn timestamp() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Appends each line of `stream` to the log with a timestamp, as the kubelet's log files do.
async fn copy_lines(stream: impl AsyncRead + Unpin, log: Arc<Mutex<tokio::fs::File>>) {
    let mut lines = BufReader::new(stream).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let mut record = format!("{} ", timestamp()).into_bytes();
        record.extend_from_slice(&line);
        record.push(b'\n');
        let mut f = log.lock().await;
        let _ = f.write_all(&record).await;
        let _ = f.flush().await;
    }
}

/// The host's root as a read-only image: every top-level directory bound read-only over an
/// empty tmpfs root (so mount points such as `/data` can be made), top-level symlinks kept.
fn image_args() -> Vec<String> {
    let mut a: Vec<String> = vec!["--tmpfs".into(), "/".into()];
    let mut entries: Vec<_> = std::fs::read_dir("/")
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = format!("/{name}");
        if matches!(name.as_str(), "proc" | "dev" | "tmp" | "run") {
            continue;
        }
        match std::fs::read_link(&path) {
            Ok(target) => a.extend(["--symlink".into(), target.display().to_string(), path]),
            Err(_) if e.path().is_dir() => a.extend(["--ro-bind".into(), path.clone(), path]),
            Err(_) => {}
        }
    }
    a.extend(
        [
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run",
        ]
        .map(String::from),
    );
    a
}

/// `path` with symlinks in its existing part resolved, as the host sees it (`/var/run/x` is
/// `/run/x`), so bubblewrap can create the missing directories on a writable mount.
fn resolve_mount_point(path: &str) -> String {
    let mut existing = PathBuf::from(path);
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_string(),
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.into_iter().rev() {
        resolved.push(part);
    }
    resolved.display().to_string()
}

impl Spec {
    fn bwrap_args(&self) -> Vec<String> {
        let mut a = image_args();
        // The container dies with bubblewrap, which dies with the agent's process.
        a.push("--die-with-parent".into());
        a.extend([
            "--unshare-uts".into(),
            "--hostname".into(),
            self.hostname.clone(),
        ]);
        a.extend([
            "--ro-bind".into(),
            self.hosts_file.display().to_string(),
            "/etc/hosts".into(),
        ]);
        for m in &self.mounts {
            let kind = if m.read_only { "--ro-bind" } else { "--bind" };
            a.extend([
                kind.into(),
                m.host.display().to_string(),
                resolve_mount_point(&m.path),
            ]);
        }
        a.push("--clearenv".into());
        for (k, v) in &self.env {
            a.extend(["--setenv".into(), k.clone(), v.clone()]);
        }
        a.extend(["--chdir".into(), self.workdir.clone(), "--".into()]);
        a.extend(self.argv.iter().cloned());
        a
    }
}

/// Starts a container; its processes live in their own memory cgroup.
pub async fn start(spec: &Spec) -> std::io::Result<Running> {
    let cgroup = cgroup_of(&spec.id);
    tokio::fs::create_dir_all(&cgroup).await?;
    if let Some(limit) = spec.memory_limit {
        tokio::fs::write(cgroup.join("memory.limit_in_bytes"), limit.to_string()).await?;
    }
    // The shell joins the cgroup before exec, so no allocation escapes the limit.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec bwrap \"$@\"")
        .arg(&cgroup)
        .args(spec.bwrap_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    let mut child = spawn::spawn(cmd)?;
    let log = Arc::new(Mutex::new(
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .await?,
    ));
    let mut outputs = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push(tokio::spawn(copy_lines(out, log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push(tokio::spawn(copy_lines(err, log)));
    }
    Ok(Running {
        child,
        cgroup,
        outputs,
    })
}

fn pids(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Sends `signal` to every process of a container's cgroup but `except`.
pub fn signal_cgroup(cgroup: &Path, signal: i32, except: Option<i32>) {
    for pid in pids(cgroup).into_iter().filter(|p| Some(*p) != except) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The cgroup of container `id`.
pub fn cgroup_of(id: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(id)
}

fn oom_kills(cgroup: &Path) -> u64 {
    let text = std::fs::read_to_string(cgroup.join("memory.oom_control")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

impl Running {
    /// The sandbox's own process (bubblewrap), which must not get the container's signals:
    /// it would die at once and take the container down before its grace period.
    pub fn sandbox_pid(&self) -> Option<i32> {
        self.child.id().map(|p| p as i32)
    }

    /// Waits for the container to end, then for its output to be written, and removes its cgroup.
    pub async fn wait(mut self) -> Exit {
        let status = self.child.wait().await;
        // Stragglers (daemons the step left behind) end with the container, as in a pod.
        signal_cgroup(&self.cgroup, libc::SIGKILL, None);
        for task in self.outputs.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let oom_killed = oom_kills(&self.cgroup) > 0;
        // Kill again on every try: a process forked during the previous kill must not survive.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            signal_cgroup(&self.cgroup, libc::SIGKILL, None);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        use std::os::unix::process::ExitStatusExt;
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            Err(_) => 128 + 9,
        };
        Exit {
            code: if oom_killed { 137 } else { code },
            oom_killed,
        }
    }
}
