//! Local runs end to end: every flow shape, outputs read back from the datastore, failures with
//! their causes and exit codes, retries and timeouts.

mod common;

use kubestep::datastore::{Datastore, Key, Prefix, RunRecord, Status, TaskPath, TaskRecord};
use kubestep::runtime::codec;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubestep-flows-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs an example in `dir`; returns (exit code, stdout, stderr, run id).
fn run(example: &str, dir: &Path, env: &[(&str, &str)]) -> (i32, String, String, String) {
    run_with(example, dir, &[], env)
}

/// [`run`] with the flow's own options `extra` (its parameters).
fn run_with(
    example: &str,
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String, String) {
    let root = dir.join("store");
    let id_file = dir.join("run-id");
    let mut args = vec![
        "run",
        "--local",
        "--datastore-root",
        root.to_str().unwrap(),
        "--run-id-file",
        id_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = common::run(example, &args, env);
    let id = std::fs::read_to_string(&id_file).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        id,
    )
}

async fn output<T: serde::de::DeserializeOwned>(
    dir: &Path,
    flow: &str,
    run: &str,
    step: &str,
    task: &str,
) -> T {
    let ds = Datastore::local(&dir.join("store"), flow).unwrap();
    let task: TaskRecord = ds
        .get_record(&Key::Task(TaskPath::new(run, step, task)))
        .await
        .unwrap()
        .expect("task record");
    let bytes = ds
        .get_artifact(task.output.as_deref().expect("an output"))
        .await
        .unwrap();
    codec::decode(&bytes).unwrap()
}

/// Where the local datastore under `dir` keeps artifact `id` of `flow`.
fn artifact_file(dir: &Path, flow: &str, id: &str) -> PathBuf {
    dir.join("store")
        .join(flow)
        .join("data")
        .join(&id[..2])
        .join(id)
}

/// Damages a file as a flipped bit on disk would.
fn flip_last_byte(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// Runs `failures` in `dir` so that `fragile` fails (after `start` and `flaky` succeeded), calls
/// `between` with the failed run's id, then resumes it with the fault gone; the failed run's id
/// and the resume's output.
async fn failed_then_resumed<F: std::future::Future<Output = ()>>(
    dir: &Path,
    between: impl FnOnce(String) -> F,
) -> (String, std::process::Output) {
    let flaky = format!("{}-{}", std::process::id(), dir.display()).replace('/', "-");
    let marker = std::env::temp_dir().join(format!("kubestep-flaky-{flaky}"));
    std::fs::write(&marker, b"").unwrap();
    let (code, _, _, failed_run) = run("failures", dir, &[("FAIL", "error"), ("FLAKY_ID", &flaky)]);
    assert_eq!(code, 1);
    between(failed_run.clone()).await;
    let root = dir.join("store");
    let out = common::run(
        "failures",
        &[
            "resume",
            "--local",
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[("FLAKY_ID", &flaky)],
    );
    let _ = std::fs::remove_file(&marker);
    (failed_run, out)
}

#[tokio::test]
async fn foreach_and_join() {
    let dir = scratch("basic");
    let (code, stdout, stderr, run_id) = run("basic", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("run {run_id} of flow `squares` succeeded")),
        "{stdout}"
    );
    assert_eq!(
        output::<u64>(&dir, "squares", &run_id, "end", "0").await,
        1 + 4 + 9 + 16
    );
    assert_eq!(
        output::<u64>(&dir, "squares", &run_id, "square", "2").await,
        9
    );
}

/// The arrays example's model as the client reads it: the same fields, declared here.
#[derive(serde::Deserialize)]
struct Model {
    name: String,
    weights: ndarray::Array2<f64>,
    bias: Vec<f32>,
    #[serde(with = "kubestep::arrow")]
    history: arrow_array::RecordBatch,
}

#[tokio::test]
async fn arrays_and_tables_are_handed_off_and_read_back_through_the_client() {
    let dir = scratch("arrays");
    // 2 MiB of weights: large enough for the codec's own chunk.
    let (code, _, stderr, run_id) = run("arrays", &dir, &[("ROWS", "2621")]);
    assert_eq!(code, 0, "{stderr}");
    let client = kubestep::client::Client::local(dir.join("store"), "arrays").unwrap();
    let model: Model = client.output(&run_id, "train", "0").await.unwrap();
    assert_eq!(model.name, "linear");
    assert_eq!(model.weights.dim(), (2621, 100));
    assert_eq!(model.weights[[2620, 99]], 262_099.0);
    assert_eq!(model.bias[99], 49.5);
    let scores: ndarray::Array2<f64> = client.output(&run_id, "score", "0").await.unwrap();
    assert_eq!(scores.dim(), (100, 2621), "the transposed matrix");
    assert_eq!(scores[[99, 2620]], 262_099.0 + 49.5);
    assert_eq!(scores[[3, 1]], 103.0 + 1.5);
    assert_eq!(model.history.num_rows(), 10);
    assert_eq!(model.history.schema().field(1).name(), "loss");
    let summary: kubestep::arrow::Table = client.output(&run_id, "summary", "0").await.unwrap();
    assert_eq!(summary.num_rows(), 100);
    let totals = common::f64_column(&summary, "total");
    let expected: f64 = (0..2621).map(|i| (i * 100 + 7) as f64).sum::<f64>() + 2621.0 * 3.5;
    assert_eq!(
        totals.value(7),
        expected,
        "row 7 of the scores is column 7 of the weights"
    );
}

#[tokio::test]
async fn branch_join_and_parallel() {
    let dir = scratch("shapes");
    let (code, _, stderr, run_id) = run("flow_shapes", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    // combine((\"10\", 10/3)) = 2 + 3 = 5; four parallel nodes each pass 5 on; gather sums them.
    assert_eq!(
        output::<u64>(&dir, "shapes", &run_id, "combine", "0").await,
        5
    );
    assert_eq!(
        output::<u64>(&dir, "shapes", &run_id, "gather", "0").await,
        20
    );
}

#[tokio::test]
async fn a_gang_runs_as_processes_that_reach_the_control_member_and_retries_whole() {
    let dir = scratch("allreduce");
    let (code, _, stderr, run_id) = run_with("allreduce", &dir, &["--fail-rank", "2"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("[reduce/0-2] attempt 0 failed: member 2 of 3: exit code 1: rank 2 fails its first attempt on purpose; retrying (1 left)"),
        "{stderr}"
    );
    for rank in 0..3u32 {
        let m: common::Reduced =
            output(&dir, "allreduce", &run_id, "reduce", &rank.to_string()).await;
        assert_eq!((m.rank, m.world_size), (rank, 3), "{m:?}");
        assert_eq!(
            (m.master_addr.as_str(), m.master_port),
            ("127.0.0.1", 29500)
        );
        assert_eq!(m.sum, common::ALLREDUCE_SUM, "{m:?}");
    }
    assert_eq!(
        output::<u64>(&dir, "allreduce", &run_id, "gather", "0").await,
        common::ALLREDUCE_SUM
    );
    // Every member ran twice: the failure of one relaunched the whole gang.
    let root = dir.join("store");
    let ds = Datastore::local(&root, "allreduce").unwrap();
    for (rank, cause) in [
        (0, "stopped: member 2 of its gang failed first"),
        (1, "stopped: member 2 of its gang failed first"),
        (2, "exit code 1: rank 2 fails its first attempt on purpose"),
    ] {
        let t: TaskRecord = ds
            .get_record(&Key::Task(TaskPath::new(
                &run_id,
                "reduce",
                &rank.to_string(),
            )))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.status, Status::Succeeded);
        let causes: Vec<_> = t.attempts.iter().map(|a| a.cause.as_deref()).collect();
        assert_eq!(causes, [Some(cause), None], "member {rank}");
    }
    // `logs RUN/STEP` shows every member's attempts.
    let logs = common::run(
        "allreduce",
        &[
            "logs",
            &format!("{run_id}/reduce"),
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    let logs = String::from_utf8_lossy(&logs.stdout);
    for rank in 0..3 {
        assert!(
            logs.contains(&format!("== reduce/{rank} attempt 1\n")),
            "{logs}"
        );
        assert!(logs.contains(&format!("rank {rank} of 3 on ")), "{logs}");
    }
    assert!(
        logs.contains("member 1 of 3: waiting up to 120 s for the control member 127.0.0.1:29500"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_retry_rescues_a_flaky_step_and_the_attempts_are_recorded() {
    let dir = scratch("retry");
    let flaky = format!("{}", std::process::id());
    // The first attempt must find no marker: one left by an earlier process that had this pid
    // would let it succeed (seen once in a CI run).
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")));
    let (code, _, stderr, run_id) = run("failures", &dir, &[("FLAKY_ID", &flaky)]);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("[flaky/0] attempt 0 failed: exit code 1"),
        "{stderr}"
    );
    assert_eq!(
        output::<u32>(&dir, "failures", &run_id, "fragile", "0").await,
        40
    );
    let ds = Datastore::local(&dir.join("store"), "failures").unwrap();
    let task: TaskRecord = ds
        .get_record(&Key::Task(TaskPath::new(&run_id, "flaky", "0")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.attempts.len(), 2);
    assert!(
        task.attempts[0]
            .cause
            .as_deref()
            .unwrap()
            .contains("a transient failure")
    );
    let log = ds
        .get_bytes(&Key::AttemptLog(TaskPath::new(&run_id, "flaky", "0"), 0))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&log).contains("a transient failure"));
}

async fn failing(mode: &str, cause: &str) {
    let dir = scratch(mode);
    let flaky = format!("{}-{mode}", std::process::id());
    std::fs::write(
        std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")),
        b"",
    )
    .unwrap();
    let (code, stdout, stderr, run_id) =
        run("failures", &dir, &[("FAIL", mode), ("FLAKY_ID", &flaky)]);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")));
    assert_eq!(code, 1, "{stdout}{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: run {run_id} failed: step `fragile` task 0 failed after 1 attempt(s): "
        )),
        "{last}"
    );
    assert!(last.contains(cause), "expected {cause:?} in {last:?}");
    assert_eq!(
        last.matches(cause).count(),
        1,
        "the cause is said once: {last}"
    );
    assert!(
        stdout.contains("[fragile/0] fragile got 4"),
        "live output is prefixed: {stdout}"
    );
    let ds = Datastore::local(&dir.join("store"), "failures").unwrap();
    let record: RunRecord = ds
        .get_record(&Key::Run(run_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Failed);
}

#[tokio::test]
async fn a_panic_fails_the_task_not_the_orchestrator() {
    failing("panic", "exit code 101: panicked at examples/failures.rs").await;
    failing("panic", "fragile panicked on 4").await;
}

#[tokio::test]
async fn an_exit_code_is_reported() {
    failing("exit", "exit code 3").await;
}

#[tokio::test]
async fn a_step_error_is_reported_with_its_message() {
    failing("error", "no good: 4").await;
}

#[tokio::test]
async fn a_timeout_kills_the_task() {
    failing("hang", "timed out after 2 s (#[timeout] of step").await;
}

#[tokio::test]
async fn a_corrupted_artifact_is_detected_on_read() {
    let dir = scratch("corrupt");
    let (code, _, stderr, run_id) = run("basic", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let ds = Datastore::local(&dir.join("store"), "squares").unwrap();
    let task: TaskRecord = ds
        .get_record(&Key::Task(TaskPath::new(&run_id, "end", "0")))
        .await
        .unwrap()
        .unwrap();
    let id = task.output.unwrap();
    flip_last_byte(&artifact_file(&dir, "squares", &id));
    let err = kubestep::report(&ds.get_artifact(&id).await.unwrap_err());
    assert!(
        err.contains("is corrupt: ") && err.contains("does not match its hash"),
        "{err}"
    );
}

/// An artifact cut short, replaced by foreign bytes, or read as another type is refused with
/// the run, step, task and wanted type named, on one line; a task whose input was damaged
/// fails naming it, and nothing is written as its output.
#[tokio::test]
async fn damaged_foreign_and_mistyped_artifacts_are_named() {
    let dir = scratch("damaged");
    let (code, _, stderr, run_id) = run("basic", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let root = dir.join("store");
    let client = kubestep::client::Client::local(&root, "squares").unwrap();
    let end = client.task(&run_id, "end", "0").await.unwrap().unwrap();
    let end_file = artifact_file(&dir, "squares", end.output.as_deref().unwrap());
    let intact = std::fs::read(&end_file).unwrap();
    // Read as another type.
    let err = kubestep::report(
        &client
            .output::<String>(&run_id, "end", "0")
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains(&format!(
            "the output of end/0 in run {run_id} is not a `alloc::string::String`"
        )),
        "{err}"
    );
    // Cut short, and replaced by something else's bytes.
    for (bytes, says) in [
        (
            intact[..intact.len() / 2].to_vec(),
            "not a kubestep artifact",
        ),
        (
            intact[..intact.len() - 1].to_vec(),
            "does not match its hash",
        ),
        (
            b"{\"a\": \"json document\"}".to_vec(),
            "not a kubestep artifact",
        ),
    ] {
        std::fs::write(&end_file, &bytes).unwrap();
        let err = kubestep::report(&client.output::<u64>(&run_id, "end", "0").await.unwrap_err());
        assert!(err.contains(says) && !err.contains('\n'), "{err}");
    }
    // A task's damaged input: resumed, the run fails at the task that reads it, naming why.
    let dir = scratch("damaged-input");
    let client = kubestep::client::Client::local(dir.join("store"), "failures").unwrap();
    let (client, data) = (&client, dir.clone());
    let (_, out) = failed_then_resumed(&dir, |failed_run| async move {
        let flaky = client
            .task(&failed_run, "flaky", "0")
            .await
            .unwrap()
            .unwrap();
        flip_last_byte(&artifact_file(&data, "failures", &flaky.output.unwrap()));
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fragile")
            && stderr.contains("is corrupt")
            && stderr.contains("does not match its hash"),
        "{stderr}"
    );
    let resumed = client.latest_run().await.unwrap().unwrap();
    let fragile = client
        .task(&resumed.run_id, "fragile", "0")
        .await
        .unwrap()
        .unwrap();
    assert!(fragile.output.is_none(), "{fragile:?}");
}

#[test]
fn ctrl_c_stops_the_run_with_130_and_leaves_no_task_behind() {
    let dir = scratch("interrupt");
    let root = dir.join("store");
    let flaky = format!("{}-int", std::process::id());
    let marker = std::env::temp_dir().join(format!("kubestep-flaky-{flaky}"));
    std::fs::write(&marker, b"").unwrap();
    let mut child = std::process::Command::new(common::example("failures"))
        .args([
            "run",
            "--local",
            "--quiet",
            "--datastore-root",
            root.to_str().unwrap(),
        ])
        .env("FAIL", "hang")
        .env("FLAKY_ID", &flaky)
        .spawn()
        .unwrap();
    // Wait until the hanging task runs, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_dir(root.join("failures/runs"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|r| r.path().join("fragile").exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the fragile task never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc_kill(child.id() as i32, 2);
    }
    let status = child.wait().unwrap();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(root.to_str().unwrap()))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "task processes left: {left:?}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test]
async fn resume_reuses_every_finished_task_and_reruns_from_the_failure() {
    let dir = scratch("resume");
    let root = dir.join("store");
    // Resume with the fault gone: start and flaky are reused, fragile runs again.
    let (failed_run, out) = failed_then_resumed(&dir, |_| async {}).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("resuming run {failed_run} as run ")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("[start/0] reused from run {failed_run}"))
            && stderr.contains(&format!("[flaky/0] reused from run {failed_run}")),
        "{stderr}"
    );
    let client = kubestep::client::Client::local(&root, "failures").unwrap();
    let resumed = client.latest_run().await.unwrap().unwrap();
    assert_ne!(resumed.run_id, failed_run);
    assert_eq!(resumed.status, Status::Succeeded);
    let flaky_task = client
        .task(&resumed.run_id, "flaky", "0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(flaky_task.reused_from.as_deref(), Some(failed_run.as_str()));
    assert_eq!(
        client
            .output::<u32>(&resumed.run_id, "fragile", "0")
            .await
            .unwrap(),
        40
    );
    let fragile = client
        .task(&resumed.run_id, "fragile", "0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fragile.reused_from, None);
}

#[tokio::test]
async fn resume_reuses_foreach_items() {
    let dir = scratch("resume-foreach");
    let (code, _, stderr, first) = run("basic", &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let root = dir.join("store");
    let out = common::run(
        "basic",
        &[
            "resume",
            "--local",
            &first,
            "--quiet",
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = kubestep::client::Client::local(&root, "squares").unwrap();
    let second = client.latest_run().await.unwrap().unwrap();
    let tasks = client.tasks(&second.run_id).await.unwrap();
    assert_eq!(tasks.len(), 6, "start, four squares, end");
    assert!(
        tasks
            .iter()
            .all(|t| t.reused_from.as_deref() == Some(first.as_str())),
        "{tasks:#?}"
    );
    assert_eq!(
        client
            .output::<u64>(&second.run_id, "end", "0")
            .await
            .unwrap(),
        30
    );
}

#[tokio::test]
async fn client_lists_runs_and_logs_prints_attempts() {
    let dir = scratch("client");
    let flaky = format!("{}-client", std::process::id());
    let (code, _, stderr, run_id) = run("failures", &dir, &[("FLAKY_ID", &flaky)]);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")));
    assert_eq!(code, 0, "{stderr}");
    let root = dir.join("store");
    let client = kubestep::client::Client::local(&root, "failures").unwrap();
    let runs = client.runs().await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        [run_id.as_str()]
    );
    let err = client
        .output::<String>(&run_id, "fragile", "0")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a `alloc::string::String`"), "{err}");
    let out = common::run(
        "failures",
        &[
            "logs",
            &format!("{run_id}/flaky"),
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("== flaky/0 attempt 0 (failed: exit code 1"),
        "{text}"
    );
    assert!(text.contains("== flaky/0 attempt 1\n"), "{text}");
    assert!(text.contains("a transient failure"), "{text}");
    let out = common::run(
        "failures",
        &[
            "logs",
            &format!("{run_id}/fragle"),
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `fragile`?"));
    // `status --json` of the latest run: its state and each task's, for scripts.
    let root = root.to_str().unwrap();
    let out = common::run(
        "failures",
        &["status", "--json", "--datastore-root", root],
        &[],
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(status["run_id"], run_id.as_str());
    assert_eq!(status["state"], "succeeded");
    let flaky = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "flaky")
        .unwrap_or_else(|| panic!("no flaky task in {status}"));
    assert_eq!(
        (&flaky["state"], &flaky["attempt"]),
        (&"succeeded".into(), &1.into())
    );
    let by = flaky["orchestrator"].as_str().unwrap_or_default();
    assert!(by.contains(" pid "), "{flaky}");
    let out = common::run(
        "failures",
        &["status", &run_id, "--datastore-root", root],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("run {run_id} of flow `failures`: succeeded")),
        "{text}"
    );
    assert!(text.contains("flaky\t0\tsucceeded\t1\t"), "{text}");
    let out = common::run("failures", &["status", "17", "--datastore-root", root], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flow `failures` has no run 17 in"), "{err}");
}

/// A task killed at any moment of writing its output leaves nothing half-written: every stored
/// artifact opens and matches its address.
#[tokio::test]
async fn a_task_killed_while_writing_leaves_no_partial_output() {
    let dir = scratch("killed");
    let root = dir.join("store");
    for delay_ms in [5u64, 20, 50, 100, 200, 400] {
        let mut child = std::process::Command::new(common::example("large_output"))
            .args([
                "run",
                "--local",
                "--quiet",
                "--datastore-root",
                root.to_str().unwrap(),
            ])
            .env("BIG_MIB", "96")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // Kill the orchestrator and its task processes mid-flight.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", root.to_str().unwrap()])
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
    let ds = Datastore::local(&root, "large").unwrap();
    let mut checked = 0;
    for key in ds.list(&Prefix::Artifacts).await.unwrap() {
        let Key::Artifact(id) = key else {
            panic!("{key} is not an artifact")
        };
        ds.get_artifact(&id)
            .await
            .unwrap_or_else(|e| panic!("partial or corrupt artifact visible: {e}"));
        checked += 1;
    }
    assert!(checked >= 1, "at least the unit input was written");
}

#[tokio::test]
async fn parameters_come_from_run_options_and_show_lists_them() {
    let dir = scratch("params");
    let root = dir.join("store");
    let id_file = dir.join("run-id");
    let args = [
        "run",
        "--local",
        "--alpha",
        "0.5",
        "--n",
        "4",
        "--datastore-root",
        root.to_str().unwrap(),
        "--run-id-file",
        id_file.to_str().unwrap(),
    ];
    let out = common::run("parameters", &args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    assert_eq!(
        output::<f64>(&dir, "parameters", &run_id, "end", "0").await,
        0.5 * (0.0 + 1.0 + 2.0 + 3.0)
    );
    // Defaults apply when an option is left out.
    let args = [
        "run",
        "--local",
        "--datastore-root",
        root.to_str().unwrap(),
        "--run-id-file",
        id_file.to_str().unwrap(),
    ];
    assert!(common::run("parameters", &args, &[]).status.success());
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    assert!((output::<f64>(&dir, "parameters", &run_id, "end", "0").await - 0.3).abs() < 1e-9);
    let bad = common::run("parameters", &["run", "--local", "--alpha", "lots"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid value 'lots' for '--alpha <ALPHA>'")
    );
    let show =
        String::from_utf8_lossy(&common::run("parameters", &["show"], &[]).stdout).into_owned();
    assert!(
        show.contains("--alpha  Scale of each item [default: 0.1]"),
        "{show}"
    );
}

#[tokio::test]
async fn a_failed_task_cancels_its_siblings_and_records_them() {
    let dir = scratch("cancel");
    let started = std::time::Instant::now();
    let (code, _, stderr, run_id) = run("failing_foreach", &dir, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "siblings were not stopped"
    );
    assert!(
        stderr.lines().last().unwrap().contains(
            "step `work` task 2 failed after 1 attempt(s): exit code 1: item 2 is broken"
        ),
        "{stderr}"
    );
    let ds = Datastore::local(&dir.join("store"), "failing-foreach").unwrap();
    for task in ["0", "1", "3"] {
        let record: TaskRecord = ds
            .get_record(&Key::Task(TaskPath::new(&run_id, "work", task)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Status::Failed, "task {task}");
        assert_eq!(
            record.attempts[0].cause.as_deref(),
            Some("cancelled: another task of its stage failed")
        );
    }
}

/// The `step` process ends at once on SIGTERM, saying why, with 143: what makes a deleted pod
/// go in seconds (as PID 1 of its container, a process without a handler ignores SIGTERM).
#[tokio::test]
async fn a_task_process_stops_on_sigterm() {
    use kubestep::core::invocation::{StoreKind, TaskInvocation};
    use std::io::BufRead;
    let dir = scratch("sigterm");
    let root = dir.join("store");
    let ds = Datastore::local(&root, "failures").unwrap();
    let input = ds
        .put_artifact(codec::encode(&3u32).unwrap())
        .await
        .unwrap();
    let inv = TaskInvocation {
        step: "fragile".into(),
        run_id: "r".into(),
        task_id: "0".into(),
        attempt: 0,
        input,
        store: StoreKind::Local,
        store_root: root.to_str().unwrap().into(),
    };
    let mut child = std::process::Command::new(common::example("failures"))
        .args(inv.to_args())
        .env("FAIL", "hang")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the step runs (it hangs after its first line), ask it to stop.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "fragile got 3");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(kubestep::runtime::task::SIGTERM_EXIT),
        "{:?}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim_end()
            .ends_with("stopped by SIGTERM (its pod was deleted or its node drained)"),
        "{stderr}"
    );
    assert!(
        ds.get_record::<kubestep::datastore::AttemptResult>(&Key::AttemptResult(
            TaskPath::new("r", "fragile", "0"),
            0
        ))
        .await
        .unwrap()
        .is_none(),
        "a stopped task records no output"
    );
}
