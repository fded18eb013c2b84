//! The reliability suite: faults injected while `examples/reliability.rs` runs (Kubernetes steps
//! around a foreach of 20), each trial checking that the run ends as it should with every output
//! correct and present once, made by the attempt its record names, that no task's attempts
//! overlapped (a lost node aside), that no Job was created twice (the API server's audit log),
//! and that nothing of the run is left running. The faults: API errors, slow answers, lost
//! replies and cut watches from a proxy in front of the API server; the S3 emulator frozen for
//! 20 s; a task's container killed; a node lost; Ctrl-C at 20 random moments. It prints a table
//! per fault and fails on any miss.
//!
//! Its own test binary, so its own cluster: two plain nodes, so that losing one leaves room for
//! the retries, and no other test's pods are disturbed.

mod common;

use kubestep::client::Client;
use kubestep::core::labels::{BATCH_JOB_NAME, FLOW, ORCHESTRATOR, RUN_ID, STEP, TASK_ID};
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

impl Tally {
    fn new(fault: &'static str) -> Tally {
        Tally {
            fault,
            ..Tally::default()
        }
    }

    /// A trial that passed `check` missed what this fault must show.
    fn missed(&mut self, note: String) {
        self.passes = self.passes.saturating_sub(1);
        self.notes.push(note);
    }
}

const ITEMS: u32 = 20;

/// What an item's task returns (the example's `Done`).
#[derive(Debug, serde::Deserialize)]
struct Done {
    index: u32,
    square: u64,
    attempt: u32,
    pod: String,
}

/// The environment of a user's shell after `testenv up`, as the RBAC-restricted user bound to
/// the Role `kubernetes rbac` prints, so the audit log holds every request the run makes.
async fn shell() -> Vec<(String, String)> {
    let env = kubestep_testenv::shared_with(two_nodes);
    // The user's Role (who also deploys schedules), and the ServiceAccount of detached runs'
    // orchestrators with its own: exactly what `kubernetes rbac` prints, applied as an admin
    // would.
    for who in [
        &["--deployer", "--user", kubestep_testenv::RESTRICTED_USER][..],
        &["--orchestrator"][..],
    ] {
        let printed = common::run(
            "reliability",
            &[&["kubernetes", "rbac"][..], who].concat(),
            &[],
        );
        assert!(printed.status.success(), "{}", text(&printed));
        env.apply(&String::from_utf8(printed.stdout).unwrap())
            .await
            .expect("the printed RBAC applies");
    }
    env.restricted_exports()
}

/// `shell` with KUBECONFIG naming `kubeconfig`.
fn with_kubeconfig(
    shell: &[(String, String)],
    kubeconfig: &std::path::Path,
) -> Vec<(String, String)> {
    let mut shell = shell.to_vec();
    for (k, v) in &mut shell {
        if k == "KUBECONFIG" {
            *v = kubeconfig.display().to_string();
        }
    }
    shell
}

/// Starts a run of `reliability` in the background, every item at once, each item's first
/// attempt taking `seconds`; its process and run-id file.
fn start_run(
    shell: &[(String, String)],
    trial: &str,
    seconds: u64,
) -> (std::process::Child, std::path::PathBuf) {
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-reliability-{}-{trial}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&id_file);
    let child = std::process::Command::new(common::example("reliability"))
        .args(["run", "--datastore", "s3", "--datastore-root", &root()])
        .args([
            "--items",
            &ITEMS.to_string(),
            "--seconds",
            &seconds.to_string(),
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

/// Runs a command of `reliability` in `shell`, on the suite's datastore.
fn reliability(shell: &[(String, String)], args: &[&str]) -> std::process::Output {
    let vars: Vec<(&str, &str)> = shell
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let store = ["--datastore", "s3", "--datastore-root", &root()];
    common::run("reliability", &[args, &store[..]].concat(), &vars)
}

fn root() -> String {
    format!("s3://kubestep/reliability-{}", std::process::id())
}

async fn wait(child: std::process::Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

/// The tasks whose record has other than one attempt.
fn not_once(tasks: &[kubestep::datastore::TaskRecord]) -> Vec<String> {
    tasks
        .iter()
        .filter(|t| t.attempts.len() != 1)
        .map(|t| format!("{}/{}: {} attempts", t.step, t.task_id, t.attempts.len()))
        .collect()
}

/// How a run's orchestrator process ended: its last line if it failed.
fn ended(out: &std::process::Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(text(out).lines().last().unwrap_or_default().to_string())
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run's running `work` pods: (pod, node).
async fn running_work(run_id: &str) -> Vec<(String, String)> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id},{STEP}=work"));
    let mut running = Vec::new();
    for p in pods.list(&lp).await.unwrap().items {
        let is_running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if let (true, Some(name), Some(node)) = (
            is_running,
            p.metadata.name,
            p.spec.and_then(|s| s.node_name),
        ) {
            running.push((name, node));
        }
    }
    running
}

/// Waits (up to 3 minutes) until at least `n` items run; the run id and their pods.
async fn items_running(id_file: &std::path::Path, n: usize) -> (String, Vec<(String, String)>) {
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(180) {
        let run_id = std::fs::read_to_string(id_file).unwrap_or_default();
        if !run_id.is_empty() {
            let pods = running_work(&run_id).await;
            if pods.len() >= n {
                return (run_id, pods);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{n} items not running within 3 minutes");
}

/// Where the audit log ends now: a trial reads only what follows.
fn audit_mark() -> usize {
    std::fs::read_to_string(kubestep_testenv::shared().audit_log()).map_or(0, |t| t.lines().count())
}

/// Names of Jobs created (not dry runs) more than once since `audit_from`.
fn jobs_created_twice(audit_from: usize) -> Vec<(String, u32)> {
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
    created.into_iter().filter(|(_, n)| *n > 1).collect()
}

/// The pods and Jobs of runs of the flow, other than `earlier` runs, that still run (pods not
/// ended or being deleted, Jobs with active pods), or, with `all`, that exist at all.
async fn left_behind(earlier: &[String], all: bool) -> Vec<String> {
    let admin = kubestep_testenv::shared().client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(admin.clone(), "default");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(admin, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{FLOW}=reliability"));
    let ours = |m: &kube::api::ObjectMeta| !run_of(m).is_some_and(|r| earlier.contains(&r));
    let mut left: Vec<String> = pods
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| ours(&p.metadata))
        .filter(|p| {
            all || p.metadata.deletion_timestamp.is_some()
                || !matches!(
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
        .collect();
    left.extend(
        jobs.list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|j| ours(&j.metadata))
            .filter(|j| all || j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
            .map(|j| format!("Job {}", j.metadata.name.unwrap_or_default())),
    );
    left
}

/// The run an object of the flow belongs to: its run-id label, or for a scheduled run's
/// orchestrator Job and pod (made from the CronJob's template, without the label) the Job's
/// name, which is the run id.
fn run_of(m: &kube::api::ObjectMeta) -> Option<String> {
    let labels = m.labels.as_ref()?;
    labels.get(RUN_ID).cloned().or_else(|| {
        labels.contains_key(ORCHESTRATOR).then(|| {
            labels
                .get(BATCH_JOB_NAME)
                .cloned()
                .or_else(|| m.name.clone())
        })?
    })
}

/// The run ids of the flow's runs whose Jobs or pods the cluster holds now.
async fn runs_on_cluster() -> Vec<String> {
    let admin = kubestep_testenv::shared().client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(admin.clone(), "default");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(admin, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{FLOW}=reliability"));
    let mut runs: Vec<String> = pods
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata)
        .chain(
            jobs.list(&lp)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|j| j.metadata),
        )
        .filter_map(|m| run_of(&m))
        .collect();
    runs.sort();
    runs.dedup();
    runs
}

/// Checks a finished run: it succeeded, every item's output is there once, right, and made by
/// the attempt its record names; no task's attempts overlapped (unless `node_lost`: an attempt
/// on a lost node may still run there); no Job was created twice; nothing of it still runs.
async fn check(
    tally: &mut Tally,
    shell: &[(String, String)],
    run_id: &str,
    ended: Result<(), String>,
    audit_from: usize,
    node_lost: bool,
) {
    tally.trials += 1;
    let mut failed = Vec::new();
    if let Err(e) = ended {
        failed.push(format!("the run failed: {e}"));
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
        let Some(task) = tasks.iter().find(|t| t.step == "work" && t.task_id == id) else {
            tally.lost += 1;
            continue;
        };
        if task.status != Status::Succeeded || task.output.is_none() {
            tally.lost += 1;
            continue;
        }
        let last = task.attempts.last().expect("a succeeded task has attempts");
        match client.output::<Done>(run_id, "work", &id).await {
            Ok(d)
                if d.index == i
                    && d.square == u64::from(i * i)
                    && d.attempt == last.attempt
                    && Some(&d.pod) == last.pod.as_ref().map(|p| &p.name) => {}
            other => {
                tally.duplicates += 1;
                failed.push(format!(
                    "item {i}'s output {other:?} is not that of its succeeded attempt {last:?}"
                ));
            }
        }
        if !node_lost {
            for pair in task.attempts.windows(2) {
                if pair[0]
                    .finished_ms
                    .is_none_or(|end| pair[1].started_ms < end)
                {
                    tally.duplicates += 1;
                    failed.push(format!("item {i}'s attempts overlap: {pair:?}"));
                }
            }
        }
    }
    let twice = jobs_created_twice(audit_from);
    tally.duplicates += twice.len() as u32;
    if !twice.is_empty() {
        failed.push(format!("Jobs created twice: {twice:?}"));
    }
    // Succeeded Jobs stay for their TTL, as designed; nothing may still run. A lost node's pods
    // go once it is back and its kubelet has stopped them.
    let waited = Instant::now();
    let mut left = Vec::new();
    while waited.elapsed() < Duration::from_secs(180) {
        let others: Vec<String> = runs_on_cluster()
            .await
            .into_iter()
            .filter(|r| r != run_id)
            .collect();
        left = left_behind(&others, false).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.orphans += left.len() as u32;
    if !left.is_empty() {
        failed.push(format!("still running after 180 s: {left:?}"));
    }
    if failed.is_empty() {
        tally.passes += 1;
    } else {
        tally
            .notes
            .push(format!("run {run_id}: {}", failed.join("; ")));
    }
}

/// API faults: the run talks to the API server through the test cluster's fault proxy, which
/// answers one request in five with 429, 500, 503, a slow answer or a lost reply, and cuts
/// every watch stream 1 to 10 s in. Requests are retried with backoff, creates are idempotent
/// (a lost reply's Job is adopted), watches resume.
async fn api_faults(shell: &[(String, String)]) -> Tally {
    let env = kubestep_testenv::shared();
    let mut tally = Tally::new("API 429/500/503/slow/cut");
    let proxy = env.fault_proxy(0.2, 14).await.unwrap();
    let audit_from = audit_mark();
    let (child, id_file) = start_run(&with_kubeconfig(shell, &proxy.kubeconfig), "api", 5);
    let out = wait(child).await;
    let counts = proxy.counts();
    drop(proxy);
    let run_id = std::fs::read_to_string(&id_file).unwrap_or_default();
    check(&mut tally, shell, &run_id, ended(&out), audit_from, false).await;
    tally.notes.push(format!("fault proxy: {counts}"));
    if counts.faults() * 10 < counts.requests || counts.cut_watches == 0 {
        tally.missed("fewer than 1 request in 10 met a fault, or no watch was cut".into());
    }
    tally
}

/// The S3 emulator frozen (SIGSTOP) for 20 s while items run, then let go (SIGCONT): tasks
/// and the orchestrator wait out the outage through their stores' retries and timeouts.
async fn s3_paused(shell: &[(String, String)]) -> Tally {
    let env = kubestep_testenv::shared();
    let mut tally = Tally::new("S3 frozen for 20 s");
    let audit_from = audit_mark();
    let (child, id_file) = start_run(shell, "s3", 8);
    let (run_id, _) = items_running(&id_file, 3).await;
    env.pause_s3(true).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    env.pause_s3(false).await;
    let out = wait(child).await;
    check(&mut tally, shell, &run_id, ended(&out), audit_from, false).await;
    tally
}

/// One item's container killed (SIGKILL through its node's containerd) while it runs: its
/// attempt fails with exit code 137 and its `#[retry]` runs it again.
async fn container_killed(shell: &[(String, String)]) -> Tally {
    let env = kubestep_testenv::shared();
    let mut tally = Tally::new("container killed");
    let audit_from = audit_mark();
    let (child, id_file) = start_run(shell, "kill", 15);
    let (run_id, pods) = items_running(&id_file, 3).await;
    let (victim, _) = &pods[0];
    assert!(env.kill_container("default", victim, "work").await);
    let out = wait(child).await;
    check(&mut tally, shell, &run_id, ended(&out), audit_from, false).await;
    let all = text(&out);
    if !all.contains("exit code 137") {
        tally.missed(format!(
            "no attempt failed with exit code 137 after {victim} was killed: {all}"
        ));
    }
    tally
}

/// A node lost while items run on it: its kubelet and containerd stop, the node goes NotReady
/// and its pods are evicted after kubestep's 30-second toleration; their tasks are retried on
/// the other node without spending `#[retry]`.
async fn node_lost(shell: &[(String, String)]) -> Tally {
    let env = kubestep_testenv::shared();
    let mut tally = Tally::new("node lost mid-foreach");
    let audit_from = audit_mark();
    // Each first attempt long enough to outlast a lost node's eviction.
    let (child, id_file) = start_run(shell, "node-lost", 90);
    // Once several items run, take away the node that runs most of them.
    let (run_id, pods) = items_running(&id_file, 3).await;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, node) in &pods {
        *per_node.entry(node).or_default() += 1;
    }
    let victim = per_node
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(node, _)| node.to_string())
        .unwrap();
    env.lose_node(&victim).await.unwrap();
    let lost_at = Instant::now();
    let out = wait(child).await;
    env.restore_node(&victim).await.unwrap();
    check(&mut tally, shell, &run_id, ended(&out), audit_from, true).await;
    // The lost node's items moved on: they were retried as infrastructure losses.
    let all = text(&out);
    if !all.contains("(infrastructure); retrying without spending a #[retry] attempt") {
        tally.missed(format!(
            "no item was retried after node {victim} was lost: {all}"
        ));
    }
    tally.notes.push(format!(
        "node {victim} lost; the run ended {:.0} s later",
        lost_at.elapsed().as_secs_f64()
    ));
    tally
}

/// The orchestrator SIGKILLed while items run (its Jobs go on without it), then
/// `run --recover`: the same run finishes, every task having run exactly once: the Jobs in
/// flight are taken over, none is created again, finished tasks are kept.
async fn orchestrator_killed(shell: &[(String, String)]) -> Tally {
    let mut tally = Tally::new("orchestrator SIGKILLed");
    let audit_from = audit_mark();
    let (child, id_file) = start_run(shell, "orchestrator", 15);
    let (run_id, _) = items_running(&id_file, 3).await;
    // `status` sees the running tasks where they run, from the cluster.
    let status = reliability(shell, &["status", &run_id, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let placed = status["tasks"].as_array().map_or(0, |tasks| {
        tasks
            .iter()
            .filter(|t| t["state"] == "running" && t["phase"] == "Running" && t["node"].is_string())
            .count()
    });
    if placed < 3 {
        tally.missed(format!(
            "`status` shows {placed} running tasks with their pod and node: {status}"
        ));
    }
    // `logs --follow` streams the running items from their pods, whichever orchestrator runs
    // them: it goes on across the kill and the recovery, to the items' ends.
    let follow = std::process::Command::new(common::example("reliability"))
        .args(["logs", "--follow", &format!("{run_id}/work")])
        .args(["--datastore", "s3", "--datastore-root", &root()])
        .envs(shell.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = wait(child).await;
    let recover = std::process::Command::new(common::example("reliability"))
        .args(["run", "--datastore", "s3", "--datastore-root", &root()])
        .args(["--max-workers", "20", "--recover", &run_id])
        .envs(shell.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait(recover).await;
    let followed = wait(follow).await;
    check(&mut tally, shell, &run_id, ended(&out), audit_from, false).await;
    let streamed = String::from_utf8_lossy(&followed.stdout);
    let items = (0..ITEMS)
        .filter(|i| streamed.contains(&format!("[work/{i}] item {i} attempt 0: 15 s")))
        .count();
    if !followed.status.success() || items < 3 {
        tally.missed(format!(
            "`logs --follow` streamed {items} items: {}",
            text(&followed)
        ));
    }
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    let tasks = client.tasks(&run_id).await.unwrap();
    let twice = not_once(&tasks);
    tally.duplicates += twice.len() as u32;
    if !twice.is_empty() {
        tally.missed(format!("tasks not run exactly once: {twice:?}"));
    }
    let adopted = tasks
        .iter()
        .filter(|t| t.attempts.iter().any(|a| a.adopted_by.is_some()))
        .count();
    if adopted < 3 {
        tally.missed(format!(
            "{adopted} tasks were taken over by the recovering orchestrator; 3 or more ran when it was killed"
        ));
    }
    // The record names both orchestrators: the killed one, which launched the tasks, and the
    // one that took them over.
    let instances: std::collections::BTreeSet<&str> = tasks
        .iter()
        .flat_map(|t| &t.attempts)
        .flat_map(|a| [a.orchestrator.as_deref(), a.adopted_by.as_deref()])
        .flatten()
        .collect();
    if instances.len() != 2 {
        tally.missed(format!(
            "the record names {instances:?}, not the killed orchestrator and its successor"
        ));
    }
    tally.notes.push(format!(
        "{adopted} tasks in flight were taken over by `run --recover`; `logs --follow` streamed {items} items across the kill"
    ));
    tally
}

/// Starts a detached run of `reliability` (as `start_run`), whose launcher must exit at once
/// with the run id and how to follow it; the run id.
fn start_detached(shell: &[(String, String)], trial: &str, seconds: u64) -> Result<String, String> {
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-reliability-{}-{trial}",
        std::process::id()
    ));
    let (items, seconds) = (ITEMS.to_string(), seconds.to_string());
    let out = reliability(
        shell,
        &[
            "run",
            "--detach",
            "--items",
            &items,
            "--seconds",
            &seconds,
            "--max-workers",
            "20",
            "--run-id-file",
            id_file.to_str().unwrap(),
        ],
    );
    let run_id = std::fs::read_to_string(&id_file).unwrap_or_default();
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || run_id.is_empty() || !said.contains(&format!("status {run_id}")) {
        return Err(format!("`run --detach` did not detach: {}", text(&out)));
    }
    Ok(run_id)
}

/// The pods of run `run_id`'s orchestrator Job.
async fn orchestrator_pods(run_id: &str) -> Vec<k8s_openapi::api::core::v1::Pod> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    let lp =
        kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id},{ORCHESTRATOR}=true"));
    pods.list(&lp).await.unwrap().items
}

/// Waits (up to 6 minutes) until the run record of a detached run says it ended: how.
async fn detached_end(shell: &[(String, String)], run_id: &str) -> Result<(), String> {
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(360) {
        match client.run(run_id).await {
            Ok(Some(r)) if r.status == Status::Succeeded => return Ok(()),
            Ok(Some(r)) if r.status != Status::Running => {
                return Err(format!("{:?}: {}", r.status, r.cause.unwrap_or_default()));
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    Err("still running after 6 minutes".into())
}

/// A detached run whose orchestrator pod is deleted while items run: the Job starts another pod
/// only once the first has stopped, which continues the run: each task runs exactly once (one
/// attempt in the record, one pod in the cluster), and the records name both orchestrator pods.
/// The launching process is gone long before the run ends; its outputs are read through the
/// client API.
async fn orchestrator_pod_deleted(shell: &[(String, String)]) -> Tally {
    let mut tally = Tally::new("orchestrator pod deleted");
    let audit_from = audit_mark();
    // Items long enough that the run is still going when `run --recover` gives up waiting.
    let run_id = match start_detached(shell, "detached", 45) {
        Ok(id) => id,
        Err(e) => {
            tally.trials += 1;
            tally.notes.push(e);
            return tally;
        }
    };
    let waited = Instant::now();
    while running_work(&run_id).await.len() < 3 && waited.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first: Vec<String> = orchestrator_pods(&run_id)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    // One orchestrator at a time: `run --recover` waits for the Lease the pod holds, and gives up.
    let recover = reliability(shell, &["run", "--recover", &run_id]);
    let refused = format!(
        "run {run_id} is driven by another orchestrator, {}",
        first.first().map_or("", String::as_str)
    );
    if recover.status.success() || !text(&recover).contains(&refused) {
        tally.missed(format!(
            "`run --recover` beside the orchestrator pod was not refused: {}",
            text(&recover)
        ));
    }
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    for name in &first {
        pods.delete(name, &Default::default()).await.unwrap();
    }
    let ended = detached_end(shell, &run_id).await;
    check(&mut tally, shell, &run_id, ended, audit_from, false).await;
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    let tasks = client.tasks(&run_id).await.unwrap();
    let twice = not_once(&tasks);
    // Each attempt is a Job of one pod: a task that ran twice left two pods.
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id},{STEP}=work"));
    let mut per_task: BTreeMap<String, u32> = BTreeMap::new();
    for p in pods.list(&lp).await.unwrap().items {
        let task = p
            .metadata
            .labels
            .unwrap_or_default()
            .remove(TASK_ID)
            .unwrap_or_default();
        *per_task.entry(task).or_default() += 1;
    }
    let ran_twice: Vec<_> = per_task.iter().filter(|(_, n)| **n != 1).collect();
    tally.duplicates += (twice.len() + ran_twice.len()) as u32;
    if !twice.is_empty() || !ran_twice.is_empty() || per_task.len() != ITEMS as usize {
        tally.missed(format!(
            "tasks not run exactly once: records {twice:?}, pods per item {per_task:?}"
        ));
    }
    let instances: std::collections::BTreeSet<String> = tasks
        .iter()
        .flat_map(|t| &t.attempts)
        .flat_map(|a| [a.orchestrator.clone(), a.adopted_by.clone()])
        .flatten()
        .map(|i| i.split(" pid ").next().unwrap_or_default().to_string())
        .collect();
    let replaced = first.len() == 1 && instances.contains(&first[0]) && instances.len() == 2;
    if !replaced {
        tally.missed(format!(
            "the records name the orchestrator pods {instances:?}: not the deleted one ({first:?}) and one successor"
        ));
    }
    let adopted = tasks
        .iter()
        .filter(|t| t.attempts.iter().any(|a| a.adopted_by.is_some()))
        .count();
    tally.notes.push(format!(
        "{adopted} tasks in flight were taken over by the orchestrator's second pod"
    ));
    tally
}

/// `kubernetes kill --run-id` of a detached run while items run: its orchestrator stops first,
/// then every Job, pod and the Lease of the run go, and the run is recorded killed.
async fn detached_killed(shell: &[(String, String)]) -> Tally {
    let mut tally = Tally::new("detached run killed");
    tally.trials += 1;
    let run_id = match start_detached(shell, "detached-kill", 60) {
        Ok(id) => id,
        Err(e) => {
            tally.notes.push(e);
            return tally;
        }
    };
    let waited = Instant::now();
    while running_work(&run_id).await.len() < 3 && waited.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kill = reliability(shell, &["kubernetes", "kill", "--run-id", &run_id]);
    let mut failed = Vec::new();
    if !kill.status.success() {
        failed.push(format!("kill failed: {}", text(&kill)));
    }
    let others: Vec<String> = runs_on_cluster()
        .await
        .into_iter()
        .filter(|r| r != &run_id)
        .collect();
    let left = left_behind(&others, true).await;
    tally.orphans += left.len() as u32;
    if !left.is_empty() {
        failed.push(format!("left after the kill: {left:?}"));
    }
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id}"));
    let held = leases.list(&lp).await.unwrap().items.len();
    if held != 0 {
        failed.push(format!("{held} Lease of the run left"));
    }
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    match client.run(&run_id).await {
        Ok(Some(r)) if r.status == Status::Killed => {}
        other => failed.push(format!("the run is recorded as {other:?}, not killed")),
    }
    if failed.is_empty() {
        tally.passes += 1;
    } else {
        tally
            .notes
            .push(format!("run {run_id}: {}", failed.join("; ")));
    }
    tally
}

/// A schedule (`deploy`) whose CronJob fires (a Job created from it, as `kubectl create job
/// --from` does): its pod fetches the binary by an S3 request it signs itself (the CronJob holds
/// no presigned URL, which would expire), and the run it starts is complete and ordinary. Then
/// `deploy --list` shows the schedule and `deploy --delete` removes it.
async fn scheduled(shell: &[(String, String)]) -> Tally {
    let mut tally = Tally::new("scheduled run (CronJob)");
    let audit_from = audit_mark();
    let items = ITEMS.to_string();
    let deployed = reliability(
        shell,
        &[
            "deploy",
            "--schedule",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
            "--items",
            &items,
            "--seconds",
            "5",
            "--max-workers",
            "20",
        ],
    );
    if !deployed.status.success() {
        tally.trials += 1;
        tally
            .notes
            .push(format!("deploy failed: {}", text(&deployed)));
        return tally;
    }
    let client = kubestep_testenv::shared().client().await;
    let cron_jobs: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
        kube::Api::namespaced(client, "default");
    let cron_job = cron_jobs.get("reliability").await.unwrap();
    let spec = cron_job.spec.clone().unwrap();
    let text_of = serde_json::to_string(&spec).unwrap();
    if text_of.contains("X-Amz-Signature") || spec.time_zone.as_deref() != Some("Europe/Paris") {
        tally.missed(format!(
            "the CronJob is not the schedule asked for, or holds a presigned URL: {text_of}"
        ));
    }
    // The Job the CronJob controller would make at 3 a.m., made now, by the user.
    let mut job: k8s_openapi::api::batch::v1::Job = Default::default();
    let template = spec.job_template;
    job.metadata = template.metadata.unwrap_or_default();
    job.metadata.name = Some("reliability-manual-1".into());
    job.spec = template.spec;
    let restricted =
        kubestep_testenv::client_for(&kubestep_testenv::shared().restricted_kubeconfig)
            .await
            .unwrap();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(restricted, "default");
    jobs.create(&Default::default(), &job).await.unwrap();
    let run_id = "reliability-manual-1";
    let ended = detached_end(shell, run_id).await;
    check(&mut tally, shell, run_id, ended, audit_from, false).await;
    let listed = reliability(shell, &["deploy", "--list"]);
    let deleted = reliability(shell, &["deploy", "--delete"]);
    let gone = cron_jobs.get_opt("reliability").await.unwrap().is_none();
    if !text(&listed).contains("reliability\t0 3 * * *\tEurope/Paris\tForbid")
        || !deleted.status.success()
        || !gone
    {
        tally.missed(format!(
            "deploy --list said {}; deploy --delete said {} (CronJob gone: {gone})",
            text(&listed),
            text(&deleted)
        ));
    }
    tally
}

/// Ctrl-C at random moments of a run, from its first instant to its last: each time the run
/// exits 130 (or 0 if it had ended) leaving no Job or pod running, and is recorded as ended.
async fn ctrl_c(shell: &[(String, String)]) -> Tally {
    const TRIALS: u32 = 20;
    let mut tally = Tally::new("Ctrl-C at a random moment");
    let mut rng = fastrand::Rng::with_seed(130);
    let client = Client::open_with(Kind::S3, &root(), "reliability", shell.to_vec()).unwrap();
    let mut interrupted = 0;
    for trial in 0..TRIALS {
        tally.trials += 1;
        let earlier = runs_on_cluster().await;
        let audit_from = audit_mark();
        let (child, id_file) = start_run(shell, &format!("ctrl-c-{trial}"), 3);
        let after = Duration::from_millis(rng.u64(0..20_000));
        tokio::time::sleep(after).await;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = wait(child).await;
        let mut failed = Vec::new();
        // Before kubestep's handler is in place (its first instants, before it has contacted
        // the cluster), SIGINT ends the process as it ends any: a shell shows 130 for both.
        use std::os::unix::process::ExitStatusExt;
        let ended = match (out.status.code(), out.status.signal()) {
            (Some(130), _) | (None, Some(libc::SIGINT)) => {
                interrupted += 1;
                false
            }
            (Some(0), _) => true,
            other => {
                failed.push(format!("exit {other:?}: {}", text(&out)));
                false
            }
        };
        // An interrupted run deletes its Jobs and waits for its pods to go before it exits; a
        // run that had ended keeps its finished Jobs for their TTL, as designed.
        let left = left_behind(&earlier, !ended).await;
        tally.orphans += left.len() as u32;
        if !left.is_empty() {
            failed.push(format!("left running: {left:?}"));
        }
        let twice = jobs_created_twice(audit_from);
        tally.duplicates += twice.len() as u32;
        if !twice.is_empty() {
            failed.push(format!("Jobs created twice: {twice:?}"));
        }
        let run_id = std::fs::read_to_string(&id_file).unwrap_or_default();
        if !run_id.is_empty() {
            match client.run(&run_id).await {
                Ok(Some(r)) if r.status != Status::Running => {}
                // Interrupted before the run was recorded.
                Ok(None) => {}
                other => failed.push(format!("run record {other:?}")),
            }
        }
        if failed.is_empty() {
            tally.passes += 1;
        } else {
            tally.notes.push(format!(
                "Ctrl-C {:.1} s in, run {run_id:?}: {}",
                after.as_secs_f64(),
                failed.join("; ")
            ));
        }
    }
    tally.notes.push(format!(
        "{interrupted} of {TRIALS} runs were interrupted; the others had ended"
    ));
    tally
}

#[tokio::test]
async fn faults_lose_nothing_duplicate_nothing_and_leave_nothing_behind() {
    let shell = shell().await;
    let table = vec![
        api_faults(&shell).await,
        s3_paused(&shell).await,
        container_killed(&shell).await,
        node_lost(&shell).await,
        orchestrator_killed(&shell).await,
        orchestrator_pod_deleted(&shell).await,
        detached_killed(&shell).await,
        scheduled(&shell).await,
        ctrl_c(&shell).await,
    ];
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
