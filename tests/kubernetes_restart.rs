//! A run on Kubernetes survives its API server restarting mid-task: the pod watch resumes (or
//! relists) without missing the pod's end, the log stream is reopened without losing lines,
//! and no attempt is spent. Its own test binary, so its own cluster: a restart would disturb
//! the other tests' runs.

mod common;

use kubestep::client::Client;
use kubestep::datastore::{Kind, Status};

#[tokio::test]
async fn a_run_survives_an_api_server_restart() {
    let env = kubestep_testenv::shared();
    let exports = env.exports().to_vec();
    let root = format!("s3://kubestep/restart-{}", std::process::id());
    let id_file = std::env::temp_dir().join(format!("kubestep-restart-{}", std::process::id()));
    let child = std::process::Command::new(common::example("kubernetes_failures"))
        .args(["run", "--with", "kubernetes", "--datastore", "s3"])
        .args([
            "--datastore-root",
            &root,
            "--fail",
            "sleep",
            "--run-id-file",
        ])
        .arg(&id_file)
        .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the step runs, take the API server away for a moment.
    common::running_pod(&id_file, "work").await;
    env.restart_apiserver().await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    let client = Client::open_with(Kind::S3, &root, "k8s-failures", exports).unwrap();
    let task = client.task(&run_id, "work", "0").await.unwrap().unwrap();
    assert_eq!(task.status, Status::Succeeded);
    assert_eq!(task.attempts.len(), 1, "no attempt spent: {task:?}");
    let log = client.log(&run_id, "work", "0", 0).await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log)
            .matches("work starts in mode sleep")
            .count(),
        1,
        "the log, whole and without repeats"
    );
    assert_eq!(
        client.output::<String>(&run_id, "end", "0").await.unwrap(),
        "slept"
    );
}
