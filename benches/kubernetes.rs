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
#[allow(
    dead_code,
    reason = "shared with kubernetes_vs_metaflow, which reads every field"
)]
mod cluster;

use cluster::{audit_events, audit_mark, percentile, run_measured};
use kubestep::datastore::{AttemptResult, Datastore, Key, Kind, Prefix, TaskRecord};
use kubestep::prelude::*;
use std::process::Command;

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

fn main() {
    let first = std::env::args().nth(1).unwrap_or_default();
    if cluster::FLOW_COMMANDS.contains(&first.as_str()) {
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
    let exports = env.restricted_exports();
    let root = format!("s3://kubestep/bench-{}", std::process::id());
    let log = env.audit_log();
    println!(
        "kubestep on the test cluster (Kubernetes v1.34 control plane; real kubelet, containerd and runc nodes)"
    );
    for n in [20u32, 200] {
        let before = audit_mark(&log);
        let id_file =
            std::env::temp_dir().join(format!("kubestep-bench-k8s-{}", std::process::id()));
        let run = run_measured(
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
            None,
        );
        let wall = run.wall.as_secs_f64();
        assert!(run.ok, "the {n}-task run failed: {}", run.stderr);
        let run_id = std::fs::read_to_string(&id_file).expect("run id");
        let _ = std::fs::remove_file(&id_file);
        let events = audit_events(&log, before, kubestep_testenv::RESTRICTED_USER);
        let watches: std::collections::BTreeSet<String> = events
            .iter()
            .filter(|e| e.verb == "watch")
            .map(cluster::AuditEvent::resource)
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
                    delays.push(seen.saturating_sub(done) as i64);
                }
            }
            delays.sort_unstable();
            delays
        });
        println!(
            "{n:>4}-task foreach: {wall:6.1} s; {} API requests = {:.2} per successful task (target <= 8), {watch_requests} watch request(s), over {}; finish -> noticed delay median {} ms, p95 {} ms, max {} ms (target <= 200); orchestrator peak RSS {:.1} MB (target <= 64), CPU time {:.2} s",
            events.len(),
            events.len() as f64 / successful as f64,
            watches.iter().cloned().collect::<Vec<_>>().join(", "),
            percentile(&delays, 0.5),
            percentile(&delays, 0.95),
            delays.last().copied().unwrap_or(0),
            run.peak_process_rss as f64 / 1e6,
            run.cpu.as_secs_f64(),
        );
    }
}
