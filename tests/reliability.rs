//! The reliability suite: faults injected while `examples/reliability.rs` runs (Kubernetes steps
//! around a foreach of 20), each trial checking that the run ends as it should with every output
//! correct and present once, that no Job was created twice (the API server's audit log), and
//! that nothing of the run is left running. It prints a table per fault and fails on any miss.
//!
//! Its own test binary, so its own cluster: two plain nodes, so that losing one leaves room for
//! the retries, and no other test's pods are disturbed.

mod common;

use kubestep::client::Client;
use kubestep::core::labels::{RUN_ID, STEP};
use kubestep::datastore::{Kind, Status};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Two nodes of 8 cores and 16 GiB, no labels or taints.
fn two_nodes() -> kubestep_testenv::Options {
    let node = |name: &str| {
        let mut n = kubestep_testenv::NodeSpec::new(name);
        n.memory_mib = 16 * 1024;
        n
    };
    kubestep_testenv::Options {
        nodes: vec![node("node-a"), node("node-b")],
        dir: None,
    }
}

/// How one fault fared over its trials.
#[derive(Debug, Default)]
struct Tally {
    fault: &'static str,
    trials: u32,
    passes: u32,
    /// Tasks without their output.
    lost: u32,
    /// Jobs created more than once, and tasks with more than one output recorded.
    duplicates: u32,
    /// Pods or Jobs of the run still running after it ended.
    orphans: u32,
    /// What failed, per trial.
    notes: Vec<String>,
}

const ITEMS: u32 = 20;

/// The environment of a user's shell after `testenv up`, as the RBAC-restricted user bound to
/// the Role `kubernetes rbac` prints, so the audit log holds every request the run makes.
async fn shell() -> Vec<(String, String)> {
    let env = kubestep_testenv::shared_with(two_nodes);
    let printed = common::run(
        "reliability",
        &[
            "kubernetes",
            "rbac",
            "--user",
            kubestep_testenv::RESTRICTED_USER,
        ],
        &[],
    );
    env.apply(&String::from_utf8(printed.stdout).unwrap())
        .await
        .expect("the printed RBAC applies");
    env.restricted_exports()
}

/// Starts a run of `reliability` in the background; its process and run-id file.
fn start_run(shell: &[(String, String)], trial: &str) -> (std::process::Child, std::path::PathBuf) {
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-reliability-{}-{trial}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&id_file);
    let child = std::process::Command::new(common::example("reliability"))
        .args(["run", "--datastore", "s3", "--datastore-root", &root()])
        // Every item at once, each first attempt long enough to outlast a lost node's eviction.
        .args([
            "--items",
            &ITEMS.to_string(),
            "--seconds",
            "90",
            "--max-workers",
            "20",
        ])
        .arg("--run-id-file")
        .arg(&id_file)
        .envs(shell.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, id_file)
}

fn root() -> String {
    format!("s3://kubestep/reliability-{}", std::process::id())
}

/// The nodes of the run's running `work` pods, with how many each runs.
async fn running_work(run_id: &str) -> BTreeMap<String, usize> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id},{STEP}=work"));
    let mut nodes = BTreeMap::new();
    for p in pods.list(&lp).await.unwrap().items {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if let (true, Some(node)) = (running, p.spec.and_then(|s| s.node_name)) {
            *nodes.entry(node).or_default() += 1;
        }
    }
    nodes
}

/// Checks a finished run: it succeeded, every item's output is there once and right, no Job was
/// created twice, and nothing of it still runs. Adds what it found to `tally`.
async fn check(
    tally: &mut Tally,
    shell: &[(String, String)],
    run_id: &str,
    out: &std::process::Output,
    audit_from: usize,
) {
    tally.trials += 1;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut failed = Vec::new();
    if !out.status.success() {
        failed.push(format!(
            "the run failed: {}",
            text.lines().last().unwrap_or_default()
        ));
    }
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    let expected: u64 = (0..u64::from(ITEMS)).map(|i| i * i).sum();
    match client.output::<u64>(run_id, "total", "0").await {
        Ok(total) if total == expected => {}
        other => failed.push(format!("total is {other:?}, expected {expected}")),
    }
    let tasks = client.tasks(run_id).await.unwrap();
    for i in 0..ITEMS {
        let id = i.to_string();
        let task = tasks.iter().find(|t| t.step == "work" && t.task_id == id);
        match task {
            Some(t) if t.status == Status::Succeeded && t.output.is_some() => {}
            _ => tally.lost += 1,
        }
    }
    // Jobs created twice under one name (dry runs create nothing).
    let log = std::fs::read_to_string(kubestep_testenv::shared().audit_log()).unwrap_or_default();
    let mut created: BTreeMap<String, u32> = BTreeMap::new();
    for line in log.lines().skip(audit_from) {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let job_create = e["verb"] == "create"
            && e["objectRef"]["resource"] == "jobs"
            && e["responseStatus"]["code"] == 201
            && !e["requestURI"]
                .as_str()
                .unwrap_or_default()
                .contains("dryRun");
        if job_create {
            let name = e["objectRef"]["name"].as_str().unwrap_or_default();
            *created.entry(name.to_string()).or_default() += 1;
        }
    }
    let twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
    tally.duplicates += twice.len() as u32;
    if !twice.is_empty() {
        failed.push(format!("Jobs created twice: {twice:?}"));
    }
    // Nothing of the run still running (succeeded Jobs stay for their TTL, as designed).
    let admin = kubestep_testenv::shared().client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(admin.clone(), "default");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(admin, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id}"));
    let mut left = Vec::new();
    // A lost node's pods go once it is back and its kubelet has stopped them.
    let waited = Instant::now();
    for _ in 0..900 {
        left = pods
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .map(|p| {
                format!(
                    "pod {} ({}, on {}{})",
                    p.metadata.name.unwrap_or_default(),
                    p.status.and_then(|s| s.phase).unwrap_or_default(),
                    p.spec.and_then(|s| s.node_name).unwrap_or_default(),
                    if p.metadata.deletion_timestamp.is_some() {
                        ", being deleted"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>();
        left.extend(
            jobs.list(&lp)
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
                .filter_map(|j| j.metadata.name),
        );
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.orphans += left.len() as u32;
    if !left.is_empty() {
        failed.push(format!("still running after 180 s: {left:?}"));
    }
    tally.notes.push(format!(
        "nothing of the run left running {:.0} s after it ended",
        waited.elapsed().as_secs_f64()
    ));
    if failed.is_empty() && tally.lost == 0 {
        tally.passes += 1;
    } else {
        tally
            .notes
            .push(format!("run {run_id}: {}", failed.join("; ")));
    }
}

/// A node lost while items run on it: its kubelet and containerd stop, the node goes NotReady
/// and its pods are evicted after kubestep's 30-second toleration; their tasks are retried on
/// the other node without spending `#[retry]`.
async fn node_lost(shell: &[(String, String)]) -> Tally {
    let env = kubestep_testenv::shared();
    let mut tally = Tally {
        fault: "node lost mid-foreach",
        ..Tally::default()
    };
    let audit_from = std::fs::read_to_string(env.audit_log()).map_or(0, |t| t.lines().count());
    let (child, id_file) = start_run(shell, "node-lost");
    // Once several items run, take away the node that runs most of them.
    let mut run_id = String::new();
    let mut victim = None;
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(180) {
        run_id = std::fs::read_to_string(&id_file).unwrap_or_default();
        if !run_id.is_empty() {
            let nodes = running_work(&run_id).await;
            if nodes.values().sum::<usize>() >= 3 {
                victim = nodes
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(node, _)| node);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let victim = victim.expect("items running within 3 minutes");
    env.lose_node(&victim).await.unwrap();
    let lost_at = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    env.restore_node(&victim).await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    check(&mut tally, shell, &run_id, &out, audit_from).await;
    // The lost node's items moved on: they were retried as infrastructure losses.
    if !text.contains("(infrastructure); retrying without spending a #[retry] attempt") {
        tally.passes = tally.passes.saturating_sub(1);
        tally.notes.push(format!(
            "no item was retried after node {victim} was lost: {text}"
        ));
    }
    tally.notes.push(format!(
        "node {victim} lost; the run ended {:.0} s later",
        lost_at.elapsed().as_secs_f64()
    ));
    tally
}

#[tokio::test]
async fn faults_lose_nothing_duplicate_nothing_and_leave_nothing_behind() {
    let shell = shell().await;
    let table = vec![node_lost(&shell).await];
    println!(
        "\n{:<28} {:>6} {:>6} {:>10} {:>10} {:>7}",
        "fault", "trials", "passes", "tasks lost", "duplicates", "orphans"
    );
    for t in &table {
        println!(
            "{:<28} {:>6} {:>6} {:>10} {:>10} {:>7}",
            t.fault, t.trials, t.passes, t.lost, t.duplicates, t.orphans
        );
        for n in &t.notes {
            println!("  {n}");
        }
    }
    for t in &table {
        assert!(
            t.passes == t.trials && t.lost == 0 && t.duplicates == 0 && t.orphans == 0,
            "{t:#?}"
        );
    }
}
