//! What the benchmarks on the test cluster measure, shared by `kubernetes` and
//! `kubernetes_vs_metaflow`: the API server's audit log read per user, and an orchestrator
//! process run to its end with its wall time, CPU time and peak memory over its whole process
//! tree.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The commands that make a bench binary the flow it measures (the orchestrator's, and `step`,
/// which its pods run); started otherwise, it is the benchmark.
pub const FLOW_COMMANDS: [&str; 8] = [
    "run",
    "resume",
    "step",
    "show",
    "render",
    "logs",
    "status",
    "kubernetes",
];

/// One line of the audit log, as far as the benchmarks need.
#[derive(serde::Deserialize)]
pub struct AuditEvent {
    /// `create`, `get`, `list`, `watch`, `delete`, ...
    pub verb: String,
    /// Who sent it.
    pub user: AuditUser,
    /// What it was about.
    #[serde(rename = "objectRef", default)]
    pub object: Option<AuditObject>,
    /// The request's path and query (`dryRun=All` marks a dry run).
    #[serde(rename = "requestURI", default)]
    pub uri: String,
    /// When the API server received it.
    #[serde(rename = "requestReceivedTimestamp")]
    pub received: MicroTime,
}

/// The user of an [`AuditEvent`].
#[derive(serde::Deserialize)]
pub struct AuditUser {
    /// The name a RoleBinding names.
    pub username: String,
}

/// The object of an [`AuditEvent`].
#[derive(serde::Deserialize)]
pub struct AuditObject {
    /// `jobs`, `pods`, ...
    pub resource: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name (absent for a list or a watch).
    pub name: Option<String>,
}

impl AuditEvent {
    /// Milliseconds since the epoch when the API server received it.
    pub fn received_ms(&self) -> i64 {
        self.received.0.as_millisecond()
    }

    /// The `namespace/resource` it was about.
    pub fn resource(&self) -> String {
        let o = self.object.as_ref();
        format!(
            "{}/{}",
            o.and_then(|o| o.namespace.clone()).unwrap_or_default(),
            o.and_then(|o| o.resource.clone()).unwrap_or_default()
        )
    }

    /// Whether it is a real (not dry-run) create of a Job.
    pub fn creates_job(&self) -> bool {
        self.verb == "create"
            && !self.uri.contains("dryRun")
            && self.object.as_ref().and_then(|o| o.resource.as_deref()) == Some("jobs")
    }
}

/// Where the audit log ends now: [`audit_events`] from here reads only what follows.
pub fn audit_mark(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// The requests `user` made after line `skip` of the audit log.
pub fn audit_events(log: &Path, skip: usize, user: &str) -> Vec<AuditEvent> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(skip)
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.user.username == user)
        .collect()
}

/// How an orchestrator process ran.
pub struct Measured {
    /// Whether it exited 0.
    pub ok: bool,
    /// Whether it was stopped at its time limit.
    pub stopped: bool,
    /// From start to exit.
    pub wall: Duration,
    /// User and system CPU time of the process and every descendant it waited for.
    pub cpu: Duration,
    /// The largest sum of the resident memory of the process and its descendants, sampled
    /// every 50 ms (Metaflow runs a process per task; kubestep one in all).
    pub peak_tree_rss: u64,
    /// The largest resident memory of a single process of the tree (from `wait4`).
    pub peak_process_rss: u64,
    /// What it wrote to standard error.
    pub stderr: String,
}

/// Resident bytes of `pid` and every descendant, from /proc.
fn tree_rss(pid: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // (pid, parent, resident bytes) of every process; the tree is those reached from `pid`.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let procs: Vec<(i32, i32, u64)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // The fields after the command name, which may hold spaces, closed by the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            let parent = fields.get(1)?.parse().ok()?;
            let rss_pages: u64 = fields.get(21)?.parse().ok()?;
            Some((p, parent, rss_pages * page))
        })
        .collect();
    let mut tree = vec![pid];
    let mut total = 0;
    while let Some(p) = tree.pop() {
        for (child, parent, rss) in &procs {
            if *parent == p {
                tree.push(*child);
            }
            if *child == p {
                total += rss;
            }
        }
    }
    total
}

/// Runs `cmd` to its end (standard output discarded, standard error kept), measured; after
/// `limit`, if given, its whole process group is stopped (`Measured::stopped`).
pub fn run_measured(cmd: &mut Command, limit: Option<Duration>) -> Measured {
    // Into a file, not a pipe: nothing would read a pipe while wait4 waits.
    let log = std::env::temp_dir().join(format!(
        "kubestep-bench-{}-{}.log",
        std::process::id(),
        fastrand::u64(..)
    ));
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4, which also reports the CPU time and peak RSS"
    )]
    // Its own process group, so whatever of its tree outlives it is stopped with it.
    let child = std::os::unix::process::CommandExt::process_group(cmd, 0)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("bench log"))
        .spawn()
        .expect("start the orchestrator");
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, stopped) = (done.clone(), stopped.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(tree_rss(pid));
                if limit.is_some_and(|l| started.elapsed() > l) {
                    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    // SAFETY: kill has no memory-safety preconditions; the group is the child's.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writes.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_tree_rss = sampler.join().unwrap_or(0);
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    Measured {
        stopped: stopped.load(std::sync::atomic::Ordering::Relaxed),
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_tree_rss,
        peak_process_rss: usage.ru_maxrss as u64 * 1024,
        stderr,
    }
}

/// The `p` quantile (0 to 1) of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
