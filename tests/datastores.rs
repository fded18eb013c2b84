//! Flows whose outputs live in object storage: the S3 (moto) and Azure Blob (Azurite) emulators
//! of the test environment, through object_store, with settings from the environment as a user
//! would export them. (No GCS emulator here answers object_store's uploads: see
//! tests/testenv/tests/emulators.rs.)

mod common;

use kubestep::runtime::client::Client;
use kubestep::runtime::datastore::{Kind, Status};
/// The emulators' settings, as `testenv up` exports them.
fn exports() -> Vec<(String, String)> {
    kubestep_testenv::shared().exports().to_vec()
}

async fn flow_on(kind: Kind, root: &str) {
    let exports = exports();
    let env: Vec<(&str, &str)> = exports
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-ds-{}-{}",
        std::process::id(),
        kind.name()
    ));
    let out = common::run(
        "basic",
        &[
            "run",
            "--datastore",
            kind.name(),
            "--datastore-root",
            root,
            "--run-id-file",
            id_file.to_str().unwrap(),
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    let _ = std::fs::remove_file(&id_file);
    let client = Client::open_with(kind, root, "squares", exports.clone()).unwrap();
    assert_eq!(
        client.run(&run_id).await.unwrap().unwrap().status,
        Status::Succeeded
    );
    assert_eq!(client.output::<u64>(&run_id, "end", "0").await.unwrap(), 30);
    assert_eq!(client.tasks(&run_id).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_flow_runs_with_outputs_in_s3() {
    flow_on(
        Kind::S3,
        &format!("s3://kubestep/flows-{}", std::process::id()),
    )
    .await;
}

#[tokio::test]
async fn a_flow_runs_with_outputs_in_azure_blob() {
    flow_on(
        Kind::Azure,
        &format!("az://kubestep/flows-{}", std::process::id()),
    )
    .await;
}

#[test]
fn a_wrong_root_is_named() {
    let out = common::run(
        "basic",
        &["run", "--datastore", "s3", "--datastore-root", "/not/a/url"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("datastore root /not/a/url: not a URL such as s3://bucket/prefix"),
        "{err}"
    );
}
