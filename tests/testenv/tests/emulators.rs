//! What object_store (kubestep's datastore client) sends, answered by each emulator: plain and
//! multipart puts, create-if-absent, reads, ranges, listings, deletes, and a presigned S3 GET.

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;

fn export(name: &str) -> String {
    let env = kubestep_testenv::shared();
    env.exports()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no export {name}"))
}

fn s3() -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(export("AWS_ENDPOINT"))
        .with_allow_http(true)
        .with_access_key_id(export("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(export("AWS_SECRET_ACCESS_KEY"))
        .with_region(export("AWS_REGION"))
        .with_bucket_name("kubestep")
        .build()
        .unwrap()
}

fn azure() -> Arc<dyn ObjectStore> {
    Arc::new(
        MicrosoftAzureBuilder::new()
            .with_endpoint(export("AZURE_STORAGE_ENDPOINT"))
            .with_allow_http(true)
            .with_account(export("AZURE_STORAGE_ACCOUNT_NAME"))
            .with_access_key(export("AZURE_STORAGE_ACCOUNT_KEY"))
            .with_container_name("kubestep")
            .build()
            .unwrap(),
    )
}

fn gcs() -> Arc<dyn ObjectStore> {
    Arc::new(
        GoogleCloudStorageBuilder::new()
            .with_service_account_path(export("GOOGLE_SERVICE_ACCOUNT"))
            .with_bucket_name("kubestep")
            .build()
            .unwrap(),
    )
}

/// The operations kubestep's datastore relies on.
async fn round_trip(store: Arc<dyn ObjectStore>, prefix: &str) {
    let small = Path::from(format!("{prefix}/small"));
    store
        .put(&small, PutPayload::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&small)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"hello"
    );
    assert_eq!(store.head(&small).await.unwrap().size, 5);
    assert_eq!(
        store.get_range(&small, 1..4).await.unwrap().as_ref(),
        b"ell"
    );

    // Content-addressed writes: create-if-absent, and a second create says AlreadyExists.
    let addressed = Path::from(format!("{prefix}/data/abc"));
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&addressed, PutPayload::from_static(b"v1"), create.clone())
        .await
        .unwrap();
    let again = store
        .put_opts(&addressed, PutPayload::from_static(b"v2"), create)
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(
        store
            .get(&addressed)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"v1"
    );

    // Large artifacts go up in parts.
    let big = Path::from(format!("{prefix}/big"));
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut upload = object_store::WriteMultipart::new(store.put_multipart(&big).await.unwrap());
    upload.write(&data);
    upload.finish().await.unwrap();
    assert_eq!(
        store
            .get(&big)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        data.as_slice()
    );

    use futures::TryStreamExt;
    let listed: Vec<_> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    store.delete(&small).await.unwrap();
    assert!(matches!(
        store.get(&small).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn s3_emulator_answers_object_store() {
    round_trip(Arc::new(s3()), "s3-test").await;
}

#[tokio::test]
async fn s3_presigned_get_works_for_a_plain_http_client() {
    use object_store::signer::Signer;
    let store = s3();
    let path = Path::from("presign/binary");
    store
        .put(&path, PutPayload::from_static(b"#!/bin/sh\n"))
        .await
        .unwrap();
    let url = store
        .signed_url(
            http::Method::GET,
            &path,
            std::time::Duration::from_secs(600),
        )
        .await
        .unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sf", url.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"#!/bin/sh\n");
}

/// The pause fault: a frozen S3 emulator answers nothing, and after it resumes it answers the
/// request that waited, with its data whole (moto keeps objects in memory).
#[tokio::test]
async fn a_paused_s3_emulator_stalls_then_answers_with_its_data() {
    let env = kubestep_testenv::shared();
    let store: Arc<dyn ObjectStore> = Arc::new(s3());
    let key = Path::from("pause-test/kept");
    store
        .put(&key, PutPayload::from_static(b"before the pause"))
        .await
        .unwrap();
    env.pause_s3(true).await;
    let read = {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.get(&key).await.unwrap().bytes().await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!read.is_finished(), "a frozen emulator answered");
    env.pause_s3(false).await;
    assert_eq!(&read.await.unwrap()[..], b"before the pause");
}

#[tokio::test]
async fn azurite_answers_object_store() {
    round_trip(azure(), "azure-test").await;
}

/// No GCS emulator to be had here answers object_store's XML-API upload: this pins the gap so
/// it is noticed the day the emulator closes it. fake-gcs-server v1.56.1 (built from its Go
/// module) routes `PUT /{bucket}/{object}` addressed to its public host to its JSON upload
/// handler, which accepts it only with `uploadType` or a signed URL's `X-Goog-Algorithm` and
/// otherwise answers 400 "invalid uploadType". (gcp-storage-emulator 2026.7.19 from PyPI
/// answers the same PUT without the ETag header object_store requires.)
#[tokio::test]
async fn gcs_emulator_refuses_object_stores_xml_upload() {
    let store = gcs();
    let result = store
        .put(
            &Path::from("gcs-test/small"),
            PutPayload::from_static(b"hello"),
        )
        .await;
    let error = result.expect_err("the GCS emulator now answers object_store's upload: make the datastore round trip run against it");
    assert!(
        format!("{error:?}").contains("invalid uploadType"),
        "{error:?}"
    );
}
