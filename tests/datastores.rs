//! Flows whose outputs live in object storage: the S3 (moto) and Azure Blob (Azurite) emulators
//! of the test environment, through object_store, with settings from the environment as a user
//! would export them; S3 over HTTPS with a test CA. (No GCS emulator here answers object_store's
//! uploads: see tests/testenv/tests/emulators.rs.)

mod common;

use kubestep::client::Client;
use kubestep::datastore::{Kind, Status};
/// The emulators' settings, as `testenv up` exports them.
fn exports() -> Vec<(String, String)> {
    kubestep_testenv::shared().exports().to_vec()
}

async fn flow_on(kind: Kind, root: &str) {
    flow_with(kind, root, exports()).await;
}

/// Runs `basic` with `vars` as its environment; checks its outputs (read back with the plain
/// settings: this process trusts no test CA).
async fn flow_with(kind: Kind, root: &str, vars: Vec<(String, String)>) {
    let exports = exports();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-ds-{}-{}",
        std::process::id(),
        kind.name()
    ));
    let out = common::run(
        "basic",
        &[
            "run",
            "--local",
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

/// The S3 emulator behind HTTPS, its certificate signed by the test cluster's CA, which no
/// system trusts: reached with `SSL_CERT_FILE` naming that CA, refused without.
#[tokio::test]
async fn s3_over_https_trusts_ssl_cert_file() {
    let over_https = |ca: Option<&str>| -> Vec<(String, String)> {
        let exports = exports();
        let get = |k: &str| exports.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let endpoint = get("KUBESTEP_TESTENV_S3_HTTPS_ENDPOINT");
        let mut vars: Vec<(String, String)> = exports
            .iter()
            .filter(|(k, _)| k != "AWS_ENDPOINT" && k != "AWS_ALLOW_HTTP")
            .cloned()
            .collect();
        vars.push(("AWS_ENDPOINT".into(), endpoint));
        if let Some(ca) = ca {
            vars.push(("SSL_CERT_FILE".into(), get(ca)));
        }
        vars
    };
    let root = format!("s3://kubestep/https-{}", std::process::id());
    flow_with(Kind::S3, &root, over_https(Some("KUBESTEP_TESTENV_CA"))).await;

    let vars = over_https(None);
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = common::run(
        "basic",
        &[
            "run",
            "--local",
            "--datastore",
            "s3",
            "--datastore-root",
            &root,
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The cause behind object_store's "error sending request" is named.
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
}

#[test]
fn a_wrong_root_is_named() {
    let out = common::run(
        "basic",
        &[
            "run",
            "--local",
            "--datastore",
            "s3",
            "--datastore-root",
            "/not/a/url",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("datastore root /not/a/url: not a URL such as s3://bucket/prefix"),
        "{err}"
    );
}

/// A root a run cannot write is named before the run starts, with the fix, on one line: an S3
/// bucket or Azure container that does not exist, a read-only directory. Nothing is recorded.
#[tokio::test]
async fn a_root_that_cannot_be_written_is_named_before_the_run() {
    let exports = exports();
    let env: Vec<(&str, &str)> = exports
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let refused = |kind: &str, root: &str| {
        let out = common::run(
            "basic",
            &[
                "run",
                "--local",
                "--datastore",
                kind,
                "--datastore-root",
                root,
            ],
            &env,
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("datastore root {root}: cannot be written: "))
                && err.contains("; name one this user may write with --datastore-root")
                && err.trim_end().lines().count() == 1
                && !err.contains("failed"),
            "{err}"
        );
        err
    };
    for (kind, root) in [
        ("s3", "s3://no-such-bucket/runs"),
        ("azure", "az://no-such-container/runs"),
    ] {
        let err = refused(kind, root);
        assert!(
            err.contains("its bucket or container does not exist"),
            "{err}"
        );
    }
    // A read-only directory (a read-only bind mount: the tests run as root, whom modes do not
    // stop).
    let dir = std::env::temp_dir().join(format!("kubestep-ro-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let mount = |args: &[&str]| {
        assert!(
            std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    };
    mount(&["--bind", d, d]);
    mount(&["-o", "remount,bind,ro", d]);
    let err = refused("local", d);
    let _ = std::process::Command::new("umount").arg(d).status();
    assert!(err.contains("Read-only file system"), "{err}");
}
