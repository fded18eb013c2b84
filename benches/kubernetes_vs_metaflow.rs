//! `cargo bench --bench kubernetes_vs_metaflow`: kubestep's `run --with kubernetes` and
//! Metaflow's `run --with kubernetes` on the same test cluster, the same flows, in one run.
//!
//! The flows, every step on Kubernetes in both systems (`benches/metaflow/kubernetes/*.py` for
//! Metaflow): five steps in a line; a foreach over 50 and over 200 items with its join and end;
//! 256 MiB of random f64 handed from one step to the next. Both run at the same concurrency
//! (`--max-workers 16`, Metaflow's default; Metaflow's `--max-num-splits` raised above 200),
//! with the same requests per pod (0.05 CPU, 256 MiB; 2 GiB for the array), each as its own API
//! user: kubestep as the restricted user under the Role `kubernetes rbac` prints, Metaflow as
//! the peer user under the built-in `edit` ClusterRole in the namespace.
//!
//! Per flow and system it prints the wall time; API requests per task, watches and lists, from
//! the API server's audit log (one line per request of each user); the orchestrator's CPU time
//! and peak memory summed over its process tree (Metaflow runs a Python process per task); and
//! how soon the orchestrator acts once a task's container ends: from the moment the container's
//! terminated status (its `finishedAt`) reached a watch of this benchmark to the orchestrator's
//! next request about that task (its Job or pod) or its next Job create, whichever comes first.
//!
//! Metaflow gets 8 minutes a flow (its foreach over 200 takes about 50 minutes here): past that
//! it is stopped and how many of its Jobs it had created is printed. Each flow's rows are
//! printed as soon as they are measured.
//!
//! This binary is also kubestep's flow binary: a task's pod runs `step NAME`, and the step's
//! name says which flow it belongs to; the orchestrator gets the flow from `KUBESTEP_BENCH_FLOW`.

mod cluster;
mod metaflow;

use cluster::{AuditEvent, Measured, audit_events, audit_mark, percentile, run_measured};
use kubestep::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

#[kubernetes(cpu = 0.05, memory = 256)]
fn start() -> u64 {
    0
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn one(x: u64) -> u64 {
    x + 1
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn two(x: u64) -> u64 {
    x + 1
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn three(x: u64) -> u64 {
    x + 1
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn end(x: u64) {
    assert_eq!(x, 3);
}

/// The foreach's width, a parameter so every pod sees it.
#[derive(clap::Args, serde::Serialize, serde::Deserialize)]
struct Items {
    #[arg(long, default_value_t = 50)]
    items: u64,
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn numbers(p: Items) -> Vec<u64> {
    (0..p.items).collect()
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn work(i: u64) -> u64 {
    i * 2
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn join(all: Vec<u64>) -> (u64, u64) {
    (all.len() as u64, all.iter().sum())
}
#[kubernetes(cpu = 0.05, memory = 256)]
fn check(counted: (u64, u64)) {
    let (n, total) = counted;
    assert_eq!(total, (0..n).map(|i| 2 * i).sum::<u64>());
}

const ARRAY_LEN: usize = 256 * 1024 * 1024 / 8;
/// 256 MiB of random doubles (incompressible, like real measurements).
#[kubernetes(cpu = 0.05, memory = 2048)]
fn produce() -> Vec<f64> {
    metaflow::random_values(ARRAY_LEN)
}
#[kubernetes(cpu = 0.05, memory = 2048)]
fn consume(data: Vec<f64>) {
    let mean = data.iter().sum::<f64>() / data.len() as f64;
    assert!(data.len() == ARRAY_LEN && (0.49..0.51).contains(&mean));
}

/// A flow as both systems run it.
struct Case {
    /// What the table calls it.
    label: &'static str,
    /// kubestep's flow (`KUBESTEP_BENCH_FLOW`), and the name of Metaflow's file.
    flow: &'static str,
    /// The foreach's width, if it has one.
    items: Option<u64>,
    /// How many tasks a run has.
    tasks: u64,
}

const CASES: [Case; 4] = [
    Case {
        label: "linear, 5 steps",
        flow: "linear",
        items: None,
        tasks: 5,
    },
    Case {
        label: "foreach over 50",
        flow: "foreach",
        items: Some(50),
        tasks: 53,
    },
    Case {
        label: "foreach over 200",
        flow: "foreach",
        items: Some(200),
        tasks: 203,
    },
    Case {
        label: "256 MiB array hand-off",
        flow: "hand_off",
        items: None,
        tasks: 2,
    },
];

/// How long Metaflow gets for one flow: its foreach over 200 takes over an hour on this
/// machine; past this it is stopped and its progress reported.
const METAFLOW_LIMIT: std::time::Duration = std::time::Duration::from_secs(480);

/// Concurrency of both orchestrators.
const WORKERS: &str = "16";
/// Metaflow's image, built with the test cluster's other images.
const METAFLOW_IMAGE: &str = "ghcr.io/kubestep/metaflow:2.19.39";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let command = args.get(1).map_or("", String::as_str);
    if cluster::FLOW_COMMANDS.contains(&command) {
        let flow = match (command, args.get(2).map(String::as_str)) {
            ("step", Some("start" | "one" | "two" | "three" | "end")) => "linear".into(),
            ("step", Some("numbers" | "work" | "join" | "check")) => "foreach".into(),
            ("step", Some(_)) => "hand_off".into(),
            _ => std::env::var("KUBESTEP_BENCH_FLOW").unwrap_or_default(),
        };
        match flow.as_str() {
            "linear" => Flow::new("bench-linear")
                .start(start)
                .then(one)
                .then(two)
                .then(three)
                .then(end)
                .main(),
            "foreach" => Flow::new("bench-foreach")
                .start_with_params(numbers)
                .foreach(work)
                .join(join)
                .then(check)
                .main(),
            _ => Flow::new("bench-hand-off")
                .start(produce)
                .then(consume)
                .main(),
        }
    }
    drive();
}

/// A run's figures, or how it failed.
type Outcome = Result<Figures, String>;

/// What one run of one system measured.
struct Figures {
    run: Measured,
    requests: usize,
    watches: usize,
    lists: usize,
    /// Milliseconds from each task's end to the orchestrator's next action on it.
    delays: Vec<i64>,
    /// `verb namespace/resource: count` of its watches and lists.
    kinds: String,
}

/// When each pod's containers ended, as a watch saw it: pod name -> (Job name, ms since the
/// epoch when the terminated status first arrived).
type Ends = Arc<Mutex<HashMap<String, (String, i64)>>>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Watches the namespace's pods for good, recording when each one's containers all ended.
async fn watch_ends(client: kube::Client, ends: Ends) {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt as _, watcher};
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()).applied_objects());
    while let Some(next) = stream.next().await {
        let Ok(pod) = next else { continue };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let job = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("job-name").cloned())
            .unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let ended = !statuses.is_empty()
            && statuses.iter().all(|c| {
                c.state
                    .as_ref()
                    .is_some_and(|s| s.terminated.as_ref().is_some())
            });
        if ended {
            ends.lock()
                .expect("not poisoned")
                .entry(name)
                .or_insert((job, now_ms()));
        }
    }
}

/// Reads what the run did from the audit log and the watch.
fn figures(run: Measured, log: &Path, mark: usize, user: &str, ends: &Ends) -> Figures {
    let events = audit_events(log, mark, user);
    // The run's Jobs: every Job the user named (Metaflow creates its Jobs with generateName,
    // so their names first show in its reads).
    let jobs: std::collections::HashSet<String> = events
        .iter()
        .filter_map(|e| e.object.as_ref())
        .filter(|o| o.resource.as_deref() == Some("jobs"))
        .filter_map(|o| o.name.clone())
        .collect();
    let about = |e: &AuditEvent, names: [&str; 2]| {
        e.creates_job()
            || e.object
                .as_ref()
                .and_then(|o| o.name.as_deref())
                .is_some_and(|n| names.contains(&n))
    };
    let mut delays: Vec<i64> = ends
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(_, (job, _))| jobs.contains(job))
        .filter_map(|(pod, (job, ended))| {
            let next = events
                .iter()
                .filter(|e| e.received_ms() >= *ended)
                .find(|e| about(e, [job, pod]))?;
            Some(next.received_ms() - ended)
        })
        .collect();
    delays.sort_unstable();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for e in events
        .iter()
        .filter(|e| e.verb == "watch" || e.verb == "list")
    {
        *kinds
            .entry(format!("{} {}", e.verb, e.resource()))
            .or_default() += 1;
    }
    let kinds = kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Figures {
        kinds,
        requests: events.len(),
        watches: events.iter().filter(|e| e.verb == "watch").count(),
        lists: events.iter().filter(|e| e.verb == "list").count(),
        run,
        delays,
    }
}

fn drive() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let env = kubestep_testenv::shared();
    let exe = std::env::current_exe().expect("this binary");
    let rbac = Command::new(&exe)
        .args(["kubernetes", "rbac", "--user"])
        .arg(kubestep_testenv::RESTRICTED_USER)
        .env("KUBESTEP_BENCH_FLOW", "linear")
        .output()
        .expect("kubernetes rbac");
    assert!(rbac.status.success(), "kubernetes rbac failed");
    rt.block_on(env.apply(&String::from_utf8_lossy(&rbac.stdout)))
        .expect("apply kubestep's Role");
    let peer = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: bench-metaflow, namespace: default}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {}}}\n",
        kubestep_testenv::PEER_USER
    );
    rt.block_on(env.apply(&peer))
        .expect("bind Metaflow's user to edit");
    let venv = metaflow::venv();
    let ends: Ends = Arc::default();
    rt.spawn(watch_ends(rt.block_on(env.client()), ends.clone()));

    let exports = env.restricted_exports();
    let var = |name: &str| {
        exports
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let scratch = std::env::temp_dir().join(format!("kubestep-bench-vs-mf-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/metaflow/kubernetes");
    let log = env.audit_log();
    // `cargo bench --bench kubernetes_vs_metaflow -- foreach` runs the cases whose label has it.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    print_header();
    for case in CASES
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| c.label.contains(o.as_str())))
    {
        // kubestep: the restricted user, the S3 emulator.
        let mark = audit_mark(&log);
        let mut cmd = Command::new(&exe);
        cmd.args([
            "run",
            "--with",
            "kubernetes",
            "--datastore",
            "s3",
            "--quiet",
        ])
        .arg("--datastore-root")
        .arg(format!("s3://kubestep/bench-vs-{}", std::process::id()))
        .args(["--max-workers", WORKERS])
        .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("KUBESTEP_BENCH_FLOW", case.flow);
        if let Some(n) = case.items {
            cmd.args(["--items", &n.to_string()]);
        }
        eprintln!("{}: kubestep", case.label);
        let run = run_measured(&mut cmd, None);
        let ours: Outcome = if run.ok {
            Ok(figures(
                run,
                &log,
                mark,
                kubestep_testenv::RESTRICTED_USER,
                &ends,
            ))
        } else {
            Err(format!("{cmd:?} failed:\n{}", tail(&run.stderr)))
        };

        // Metaflow: the peer user, the same emulator, its own prefix.
        let mark = audit_mark(&log);
        let home = scratch.join(format!("metaflow-{}", case.flow));
        std::fs::create_dir_all(&home).expect("Metaflow's directory");
        let file = flows.join(format!("{}.py", case.flow));
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(&file)
            .args(["--no-pylint", "run", "--with", "kubernetes"])
            .args(["--max-workers", WORKERS, "--max-num-splits", "300"])
            .current_dir(&home)
            .env("METAFLOW_HOME", &home)
            .env("USERNAME", "bench")
            .env("KUBECONFIG", &env.peer_kubeconfig)
            .env("METAFLOW_DEFAULT_DATASTORE", "s3")
            .env(
                "METAFLOW_DATASTORE_SYSROOT_S3",
                format!("s3://kubestep/metaflow-bench-{}", std::process::id()),
            )
            .env("METAFLOW_S3_ENDPOINT_URL", var("AWS_ENDPOINT"))
            .env("METAFLOW_DEFAULT_METADATA", "local")
            .env("METAFLOW_KUBERNETES_NAMESPACE", "default")
            .env("METAFLOW_KUBERNETES_CONTAINER_IMAGE", METAFLOW_IMAGE)
            .env(
                "METAFLOW_KUBERNETES_SECRETS",
                kubestep_testenv::S3_SECRET_NAME,
            );
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        ] {
            cmd.env(k, var(k));
        }
        if let Some(n) = case.items {
            cmd.args(["--items", &n.to_string()]);
        }
        eprintln!("{}: Metaflow", case.label);
        let run = run_measured(&mut cmd, Some(METAFLOW_LIMIT));
        let theirs: Outcome = if run.stopped {
            let launched = audit_events(&log, mark, kubestep_testenv::PEER_USER)
                .iter()
                .filter(|e| e.creates_job())
                .count();
            let ratio = ours
                .as_ref()
                .map(|k| {
                    format!(
                        ", over {:.1}x kubestep's wall time",
                        METAFLOW_LIMIT.as_secs_f64() / k.run.wall.as_secs_f64()
                    )
                })
                .unwrap_or_default();
            Err(format!(
                "not finished after {} s (stopped there): {launched} of its {} tasks' Jobs created{ratio}",
                METAFLOW_LIMIT.as_secs(),
                case.tasks
            ))
        } else if run.ok {
            Ok(figures(run, &log, mark, kubestep_testenv::PEER_USER, &ends))
        } else {
            Err(format!("{cmd:?} failed:\n{}", tail(&run.stderr)))
        };
        // Each flow's figures as soon as they are in.
        print_case(case, &ours, &theirs);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The last 30 lines of a failed run's output.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn print_header() {
    println!(
        "kubestep and Metaflow 2.19.39 on the test cluster (Kubernetes v1.34; real kubelet, containerd and runc nodes), --max-workers {WORKERS}"
    );
    println!(
        "{:<24} {:<9} {:>8} {:>9} {:>7} {:>6} {:>10} {:>8} {:>17}",
        "flow",
        "system",
        "wall s",
        "req/task",
        "watches",
        "lists",
        "tree RSS",
        "CPU s",
        "end->action ms"
    );
}

fn print_case(case: &Case, ours: &Outcome, theirs: &Outcome) {
    let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
    {
        for (system, outcome) in [("kubestep", ours), ("Metaflow", theirs)] {
            match outcome {
                Ok(f) => println!(
                    "{:<24} {system:<9} {:>8.1} {:>9.2} {:>7} {:>6} {:>10} {:>8.1} {:>8} / {:<6}",
                    case.label,
                    f.run.wall.as_secs_f64(),
                    f.requests as f64 / case.tasks as f64,
                    f.watches,
                    f.lists,
                    mb(f.run.peak_tree_rss),
                    f.run.cpu.as_secs_f64(),
                    percentile(&f.delays, 0.5),
                    percentile(&f.delays, 0.95),
                ),
                Err(e) => println!("{:<24} {system:<9} {e}", case.label),
            }
        }
        for (system, outcome) in [("kubestep", ours), ("Metaflow", theirs)] {
            if let Ok(f) = outcome {
                println!(
                    "  {system}: {} requests for {} tasks; {}; largest process {}; {} task ends timed",
                    f.requests,
                    case.tasks,
                    if f.kinds.is_empty() {
                        "no watch or list"
                    } else {
                        &f.kinds
                    },
                    mb(f.run.peak_process_rss),
                    f.delays.len()
                );
            }
        }
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            let ratio = |m: f64, k: f64| if k > 0.0 { m / k } else { f64::INFINITY };
            println!(
                "{:<24} {:<9} {:>7.1}x {:>8.1}x {:>7} {:>6} {:>9.1}x {:>7.1}x {:>8.1}x median",
                "",
                "Metaflow/kubestep",
                ratio(b.run.wall.as_secs_f64(), a.run.wall.as_secs_f64()),
                ratio(b.requests as f64, a.requests as f64),
                "",
                "",
                ratio(b.run.peak_tree_rss as f64, a.run.peak_tree_rss as f64),
                ratio(b.run.cpu.as_secs_f64(), a.run.cpu.as_secs_f64()),
                ratio(
                    percentile(&b.delays, 0.5) as f64,
                    percentile(&a.delays, 0.5) as f64
                ),
            );
        }
    }
}
