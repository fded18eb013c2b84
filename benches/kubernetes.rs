//! `cargo bench --bench kubernetes`: `run --with kubernetes` on the test cluster, measured.
//!
//! This binary is both the benchmark and the flow it runs: started with a flow command (`run`,
//! `step`, ...) it is the flow, a foreach of `BENCH_TASKS` tiny tasks; started by `cargo bench`
//! it starts the test cluster, grants the restricted user the Role `kubernetes rbac` prints, runs
//! itself as that user, and reports:
//! - Kubernetes API requests per successful task, counted at the API server (its audit log
//!   holds one line per request of that user), and how many of them were watches;
//! - the delay from a task's process finishing (the time it recorded) to the orchestrator
//!   acting on it (the end of the attempt in the task record);
//! - the orchestrator's peak RSS (from `wait4`).
use kubestep::datastore::{AttemptResult, Datastore, Key, Kind, Prefix, TaskRecord};
use kubestep::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The flow's parameter: how many tasks the foreach has (a parameter, not an environment
/// variable, so the start step's pod sees it too).
#[derive(clap::Args, serde::Serialize, serde::Deserialize)]
struct Params {
    #[arg(long, default_value_t = 20)]
    tasks: u32,
}

#[step]
fn start(p: Params) -> Vec<u32> {
    (0..p.tasks).collect()
}

#[kubernetes(cpu = 0.05, memory = 256)]
fn work(i: u32) -> u32 {
    i * 2
}

#[step]
fn end(all: Vec<u32>) -> u64 {
    all.iter().map(|x| u64::from(*x)).sum()
}

const FLOW: &str = "bench-k8s";

/// One line of the audit log, as far as the count needs.
#[derive(serde::Deserialize)]
struct AuditEvent {
    verb: String,
    user: AuditUser,
    #[serde(rename = "objectRef", default)]
    object: Option<AuditObject>,
}

#[derive(serde::Deserialize)]
struct AuditUser {
    username: String,
}

#[derive(serde::Deserialize)]
struct AuditObject {
    resource: Option<String>,
    namespace: Option<String>,
}

fn audit_events(log: &Path, skip: usize) -> Vec<AuditEvent> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(skip)
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.user.username == kubestep_testenv::RESTRICTED_USER)
        .collect()
}

fn line_count(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// Runs `cmd`, returning whether it succeeded, its peak RSS in KiB and its stderr.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports the peak RSS"
)]
fn run_measured(cmd: &mut Command) -> (bool, i64, String) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the flow");
    let pid = child.id() as i32;
    let stderr = child.stderr;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writes.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss, reader.join().unwrap_or_default())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let first = std::env::args().nth(1).unwrap_or_default();
    if [
        "run",
        "resume",
        "step",
        "show",
        "render",
        "logs",
        "kubernetes",
    ]
    .contains(&first.as_str())
    {
        Flow::new(FLOW)
            .start_with_params(start)
            .foreach(work)
            .join(end)
            .main();
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let env = kubestep_testenv::shared();
    let exe = std::env::current_exe().expect("this binary");
    let rbac = Command::new(&exe)
        .args([
            "kubernetes",
            "rbac",
            "--user",
            kubestep_testenv::RESTRICTED_USER,
        ])
        .output()
        .expect("kubernetes rbac");
    assert!(rbac.status.success());
    rt.block_on(env.apply(&String::from_utf8_lossy(&rbac.stdout)))
        .expect("apply the Role");
    let exports: Vec<(String, String)> = env
        .exports()
        .iter()
        .map(|(k, v)| match k.as_str() {
            "KUBECONFIG" => (k.clone(), env.restricted_kubeconfig.display().to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let root = format!("s3://kubestep/bench-{}", std::process::id());
    let log = env.audit_log();
    println!(
        "kubestep on the test cluster (Kubernetes v1.34 control plane; real kubelet, containerd and runc nodes)"
    );
    for n in [20u32, 200] {
        let before = line_count(&log);
        let id_file =
            std::env::temp_dir().join(format!("kubestep-bench-k8s-{}", std::process::id()));
        let started = Instant::now();
        let (ok, rss_kib, stderr) = run_measured(
            Command::new(&exe)
                .args([
                    "run",
                    "--with",
                    "kubernetes",
                    "--datastore",
                    "s3",
                    "--quiet",
                ])
                .args(["--datastore-root", &root, "--max-workers", "32"])
                .arg("--run-id-file")
                .arg(&id_file)
                .args(["--tasks", &n.to_string()])
                .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        let wall = started.elapsed().as_secs_f64();
        assert!(ok, "the {n}-task run failed: {stderr}");
        let run_id = std::fs::read_to_string(&id_file).expect("run id");
        let _ = std::fs::remove_file(&id_file);
        let events = audit_events(&log, before);
        let watches: std::collections::BTreeSet<String> = events
            .iter()
            .filter(|e| e.verb == "watch")
            .map(|e| {
                let o = e.object.as_ref();
                format!(
                    "{}/{}",
                    o.and_then(|o| o.namespace.clone()).unwrap_or_default(),
                    o.and_then(|o| o.resource.clone()).unwrap_or_default()
                )
            })
            .collect();
        let watch_requests = events.iter().filter(|e| e.verb == "watch").count();
        let successful = u64::from(n) + 2;
        // Delays: each attempt's end in the task record minus the time its process finished.
        let delays = rt.block_on(async {
            let ds = Datastore::open_with(Kind::S3, &root, FLOW, exports.clone()).expect("store");
            let mut delays = Vec::new();
            let keys = ds.list(&Prefix::Run(run_id.clone())).await.expect("list");
            for key in keys {
                let Key::Task(path) = &key else { continue };
                let task: TaskRecord = ds.get_record(&key).await.unwrap().unwrap();
                let last = task.attempts.last().expect("an attempt");
                let result_key = Key::AttemptResult(path.clone(), last.attempt);
                let result: AttemptResult = ds.get_record(&result_key).await.unwrap().unwrap();
                if let (Some(seen), Some(done)) = (last.finished_ms, result.finished_ms) {
                    delays.push(seen.saturating_sub(done));
                }
            }
            delays.sort_unstable();
            delays
        });
        println!(
            "{n:>4}-task foreach: {wall:6.1} s; {} API requests = {:.2} per successful task (target <= 8), {watch_requests} watch request(s), over {}; finish -> noticed delay median {} ms, p95 {} ms, max {} ms (target <= 200); orchestrator peak RSS {:.1} MB (target <= 64)",
            events.len(),
            events.len() as f64 / successful as f64,
            watches.iter().cloned().collect::<Vec<_>>().join(", "),
            percentile(&delays, 0.5),
            percentile(&delays, 0.95),
            delays.last().copied().unwrap_or(0),
            rss_kib as f64 / 1024.0,
        );
    }
}
