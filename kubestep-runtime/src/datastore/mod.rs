//! The datastore: step outputs as content-addressed artifacts, and run, task and log records
//! beside them, on local disk or in object storage (S3, Azure Blob, GCS), all through
//! `object_store`; and the step binary that pods fetch through a presigned URL.
//!
//! Everything of a flow lives under `<root>/<flow>/`, laid out as [`layout`] says.
//! Every write is atomic (object_store stages local files and renames them), so a killed task
//! never leaves a visible partial output.

pub mod artifact;
pub mod layout;

pub use layout::{Key, Prefix, TaskPath};

#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
mod tls;

use backon::Retryable;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A datastore operation failed; every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root cannot be used.
    #[error("datastore root {root}: {message}")]
    Root {
        /// The root.
        root: String,
        /// What is wrong.
        message: String,
    },
    /// Storage failed.
    #[error("datastore {key}")]
    Store {
        /// The key.
        key: String,
        /// Why.
        source: object_store::Error,
    },
    /// An artifact does not match its address.
    #[error("artifact {key} is corrupt")]
    Corrupt {
        /// The key.
        key: String,
        /// How.
        source: artifact::Error,
    },
    /// A record is not valid JSON of its kind.
    #[error("record {key} is unreadable")]
    Record {
        /// The key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The executable changed between being hashed and being uploaded (a rebuild meanwhile).
    #[error(
        "{path} changed while it was uploaded (sha256 {inspected} when inspected, {sent} when sent); run again"
    )]
    BinaryChanged {
        /// The executable.
        path: PathBuf,
        /// Its hash when inspected.
        inspected: String,
        /// The hash of what was read for the upload.
        sent: String,
    },
}

/// How a task or run ended, or that it has not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started, not ended.
    Running,
    /// Ended with an output.
    Succeeded,
    /// Ended without one.
    Failed,
    /// A run stopped by `kubernetes kill`.
    Killed,
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number, from 0.
    pub attempt: u32,
    /// When it began to wait for a worker slot (`--max-workers`), in milliseconds since the
    /// epoch; its start is when it got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<u64>,
    /// Start, in milliseconds since the epoch.
    pub started_ms: u64,
    /// End, in milliseconds since the epoch.
    pub finished_ms: Option<u64>,
    /// Why it failed, when it did.
    pub cause: Option<String>,
    /// The pod it ran in, when it ran on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<AttemptPod>,
    /// The orchestrator instance that launched it (`host pid N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<String>,
    /// The instance that took it over when its launcher had stopped (`run --recover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_by: Option<String>,
}

/// The pod a Kubernetes attempt ran in, as its live object said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptPod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`, once it was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The step container's requests and limits, as `requests cpu=1, memory=4Gi; limits ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
    /// What the pod went through, in order: from the pod's own timestamps and the reasons the
    /// watch brought (no API request is made for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<PodMark>,
}

/// One moment in a pod's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMark {
    /// When, in milliseconds since the epoch (Kubernetes keeps whole seconds).
    pub at_ms: u64,
    /// What began then.
    pub stage: PodStage,
    /// What Kubernetes said, for a pending reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The stages of a pod, each from one mark to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodStage {
    /// The Job controller created it: waiting for a node.
    Created,
    /// Still waiting, for the reason in the note (the scheduler's, an image's, ...).
    Pending,
    /// A node took it: its init container pulls its image and fetches the binary.
    Scheduled,
    /// Init containers done: the step's image is pulled and its container created.
    Initialized,
    /// The step's container runs.
    Started,
    /// The step's container ended.
    Finished,
}

/// The record of one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The step.
    pub step: String,
    /// The task id within the step.
    pub task_id: String,
    /// Its status.
    pub status: Status,
    /// The input artifact.
    pub input: String,
    /// The output artifact, once it succeeded.
    pub output: Option<String>,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// The run whose finished task this one reuses (`resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The flow.
    pub flow: String,
    /// The run id.
    pub run_id: String,
    /// Its status.
    pub status: Status,
    /// Start, in milliseconds since the epoch.
    pub started_ms: u64,
    /// End, in milliseconds since the epoch.
    pub finished_ms: Option<u64>,
    /// Why it failed, when it did.
    pub cause: Option<String>,
    /// For a run with Kubernetes steps, the namespace of its Lease (and, when detached, of its
    /// orchestrator Job): where `run --recover` and `kubernetes kill` find them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_namespace: Option<String>,
}

/// The mark `kubernetes kill` leaves on a run: its orchestrator launches nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillMark {
    /// When, in milliseconds since the epoch.
    pub killed_ms: u64,
}

/// What a successful attempt wrote: the address of its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptResult {
    /// The output artifact.
    pub output: String,
    /// When the task finished writing it, in milliseconds since the epoch: with the attempt's
    /// end in the task record, how long the orchestrator took to notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// The pod that wrote it, as the pod knows itself (no node, no marks): what an orchestrator
    /// that finds the output after its predecessor stopped records of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<AttemptPod>,
}

/// Where a datastore lives.
pub use kubestep_core::invocation::StoreKind as Kind;

/// Makes presigned URLs, so a pod can fetch an object (the step binary) without credentials.
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
type Signer = Option<Arc<dyn object_store::signer::Signer>>;
#[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs")))]
type Signer = Option<std::convert::Infallible>;

/// A flow's datastore.
#[derive(Clone, Debug)]
pub struct Datastore {
    store: Arc<dyn ObjectStore>,
    #[cfg_attr(
        not(any(feature = "s3", feature = "azure", feature = "gcs")),
        expect(dead_code, reason = "only object stores sign URLs")
    )]
    signer: Signer,
    flow: String,
    kind: Kind,
    root: String,
}

/// The object store, under the root's prefix, as a store and as a signer.
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn cloud<T: ObjectStore + object_store::signer::Signer>(
    store: T,
    prefix: &str,
) -> (Arc<dyn ObjectStore>, Signer) {
    let store = Arc::new(object_store::prefix::PrefixStore::new(store, prefix));
    (store.clone(), Some(store))
}

/// The object store of `kind` at `root` (under `prefix`), configured from the environment
/// and `vars` over it: `AWS_*`, `AZURE_*` or `GOOGLE_*`, each `KEY_NAME` being the builder's
/// `key_name` setting (client settings such as timeouts and proxies included).
#[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
fn object_store(
    kind: Kind,
    root: &str,
    prefix: &str,
    vars: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, Signer), String> {
    fn settings<K: std::str::FromStr>(vars: &[(String, String)], env: &str) -> Vec<(K, String)> {
        std::env::vars()
            .chain(vars.iter().cloned())
            .filter(|(k, _)| k.starts_with(env))
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v)))
            .collect()
    }
    // One backend: its builder, its settings' key type, its variables' prefix.
    macro_rules! backend {
        ($module:ident, $builder:ident, $key:ident, $env:literal) => {{
            use object_store::$module::{$builder, $key};
            let (mut b, mut client) = ($builder::from_env(), tls::client_options());
            for (k, v) in settings::<$key>(vars, $env) {
                match k {
                    $key::Client(k) => client = client.with_config(k, v),
                    k => b = b.with_config(k, v),
                }
            }
            let store = b.with_client_options(client).with_url(root).build();
            Ok(cloud(store.map_err(|e| e.to_string())?, prefix))
        }};
    }
    match kind {
        #[cfg(feature = "s3")]
        Kind::S3 => backend!(aws, AmazonS3Builder, AmazonS3ConfigKey, "AWS_"),
        #[cfg(feature = "azure")]
        Kind::Azure => backend!(azure, MicrosoftAzureBuilder, AzureConfigKey, "AZURE_"),
        #[cfg(feature = "gcs")]
        Kind::Gs => backend!(gcp, GoogleCloudStorageBuilder, GoogleConfigKey, "GOOGLE_"),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// A build without any object store.
#[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs")))]
fn object_store(
    kind: Kind,
    _root: &str,
    _prefix: &str,
    _vars: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, Signer), String> {
    Err(not_built(kind))
}

fn not_built(kind: Kind) -> String {
    format!(
        "this build has no {} support; enable kubestep's `{}` feature",
        kind.name(),
        match kind {
            Kind::Gs => "gcs",
            other => other.name(),
        }
    )
}

/// Runs `work` (hashing, compressing) on the blocking pool when `size` bytes make it long
/// enough to stall the async workers, inline otherwise (a hop costs more than a small value).
async fn off_the_runtime<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if size < 1 << 16 {
        return work();
    }
    crate::blocking(work).await
}

/// An artifact file's bytes. A large one is mapped, not read: its pages are the page cache's
/// own, so the reader neither copies 256 MiB into fresh memory nor has the kernel zero it
/// first (on this VM, first-touch faults of fresh memory were the hand-off's largest and least
/// steady cost). Small ones are cheaper to read.
fn read_local_artifact(path: &Path) -> std::io::Result<Bytes> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    if len < 1 << 20 {
        let mut buf = Vec::with_capacity(len);
        file.read_to_end(&mut buf)?;
        return Ok(Bytes::from(buf));
    }
    // SAFETY: an artifact file is written whole under a temporary name and renamed to its
    // content address; nothing writes to or truncates it afterwards (deleting it leaves the
    // mapping intact). The mapping is read-only and prefaulted.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Datastore {
    /// A datastore in a local directory (created if missing).
    pub fn local(root: &Path, flow: &str) -> Result<Datastore, Error> {
        let fail = |message: String| Error::Root {
            root: root.display().to_string(),
            message,
        };
        std::fs::create_dir_all(root).map_err(|e| fail(e.to_string()))?;
        let abs: PathBuf = std::fs::canonicalize(root).map_err(|e| fail(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&abs).map_err(|e| fail(e.to_string()))?;
        Ok(Datastore {
            store: Arc::new(store),
            signer: None,
            flow: flow.to_string(),
            kind: Kind::Local,
            root: abs.display().to_string(),
        })
    }

    /// A datastore of `kind` at `root` (a directory, or a URL such as `s3://bucket/prefix`).
    /// Object stores take their endpoint and credentials from the environment, as their own
    /// tools do (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AZURE_STORAGE_ACCOUNT_NAME`,
    /// `GOOGLE_SERVICE_ACCOUNT`, ...).
    pub fn open(kind: Kind, root: &str, flow: &str) -> Result<Datastore, Error> {
        Datastore::open_with(kind, root, flow, std::iter::empty())
    }

    /// [`Datastore::open`], with `vars` (such as `AWS_ENDPOINT`) taken as if they were in the
    /// environment, over it: for programs that hold a store's settings without exporting them.
    pub fn open_with(
        kind: Kind,
        root: &str,
        flow: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Datastore, Error> {
        let scheme = match kind {
            Kind::Local => return Datastore::local(Path::new(root), flow),
            Kind::S3 => "s3",
            Kind::Azure => "az",
            Kind::Gs => "gs",
        };
        let fail = |message: String| Error::Root {
            root: root.to_string(),
            message,
        };
        let url = url::Url::parse(root)
            .map_err(|e| fail(format!("not a URL such as s3://bucket/prefix: {e}")))?;
        if url.scheme() != scheme {
            return Err(fail(format!(
                "--datastore {} needs a {scheme}:// root",
                kind.name()
            )));
        }
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let (store, signer) =
            object_store(kind, root, url.path().trim_matches('/'), &vars).map_err(fail)?;
        Ok(Datastore {
            store,
            signer,
            flow: flow.to_string(),
            kind,
            root: root.to_string(),
        })
    }

    /// Where it is, for messages and for task processes.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// What kind of store it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn key(&self, key: &Key) -> StorePath {
        self.under_flow(&key.path())
    }

    fn under_flow(&self, rest: &str) -> StorePath {
        StorePath::from(format!("{}/{rest}", self.flow))
    }

    fn store_error(key: &StorePath) -> impl FnOnce(object_store::Error) -> Error + '_ {
        move |source| Error::Store {
            key: key.to_string(),
            source,
        }
    }

    /// Stores a payload once, under its content address, and returns the address.
    pub async fn put_artifact(&self, payload: Vec<u8>) -> Result<String, Error> {
        self.put_chunks(vec![Bytes::from(payload)]).await
    }

    /// [`Datastore::put_artifact`] for a payload given as consecutive chunks, stored without
    /// joining them.
    pub async fn put_chunks(&self, chunks: Vec<Bytes>) -> Result<String, Error> {
        let raw: usize = chunks.iter().map(Bytes::len).sum();
        let compression = match self.kind {
            Kind::Local => artifact::Compression::Never,
            _ => artifact::Compression::WhenItPays,
        };
        let sealed = off_the_runtime(raw, move || artifact::seal(chunks, compression)).await;
        let key = self.key(&Key::Artifact(sealed.id.clone()));
        // The address is the content: a large artifact already there (a resumed or repeated
        // run) is not written again. Small ones are cheaper to write than to ask about.
        let size: usize = sealed.body.iter().map(Bytes::len).sum();
        if size >= 1 << 20 && self.store.head(&key).await.is_ok() {
            return Ok(sealed.id);
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let body: PutPayload = std::iter::once(Bytes::from(sealed.header))
            .chain(sealed.body)
            .collect();
        // object_store retries a create-only PUT on no timeout, a connect timeout included
        // (one lost SYN on a busy node): the address makes it idempotent, so retry it here.
        let put = || self.store.put_opts(&key, body.clone(), opts.clone());
        let written = put
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(200))
                    .with_max_times(4),
            )
            .when(|e| {
                !matches!(
                    e,
                    object_store::Error::AlreadyExists { .. }
                        | object_store::Error::PermissionDenied { .. }
                        | object_store::Error::Unauthenticated { .. }
                        | object_store::Error::NotSupported { .. }
                        | object_store::Error::NotImplemented { .. }
                )
            })
            .await;
        match written {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(sealed.id),
            Err(e) => Err(Self::store_error(&key)(e)),
        }
    }

    /// Reads an artifact and checks it against its address.
    pub async fn get_artifact(&self, id: &str) -> Result<Bytes, Error> {
        let key = self.key(&Key::Artifact(id.into()));
        let stored = if self.kind == Kind::Local {
            let path = Path::new(&self.root).join(key.as_ref());
            let read = tokio::task::spawn_blocking(move || read_local_artifact(&path))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            match read {
                Ok(bytes) => bytes,
                Err(e) => {
                    let source = if e.kind() == std::io::ErrorKind::NotFound {
                        object_store::Error::NotFound {
                            path: key.to_string(),
                            source: Box::new(e),
                        }
                    } else {
                        object_store::Error::Generic {
                            store: "LocalFileSystem",
                            source: Box::new(e),
                        }
                    };
                    return Err(Self::store_error(&key)(source));
                }
            }
        } else {
            self.store
                .get(&key)
                .await
                .map_err(Self::store_error(&key))?
                .bytes()
                .await
                .map_err(Self::store_error(&key))?
        };
        let expected = id.to_string();
        off_the_runtime(stored.len(), move || artifact::open(stored, &expected))
            .await
            .map_err(|source| Error::Corrupt {
                key: key.to_string(),
                source,
            })
    }

    /// Writes a record (replacing the previous one).
    pub async fn put_record<T: Serialize>(&self, key: &Key, value: &T) -> Result<(), Error> {
        let key = self.key(key);
        let json = serde_json::to_vec_pretty(value).map_err(|source| Error::Record {
            key: key.to_string(),
            source,
        })?;
        self.store
            .put(&key, PutPayload::from(json))
            .await
            .map_err(Self::store_error(&key))?;
        Ok(())
    }

    /// Reads a record, if there is one.
    pub async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, Error> {
        let key = self.key(key);
        let bytes = match self.store.get(&key).await {
            Ok(r) => r.bytes().await.map_err(Self::store_error(&key))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Self::store_error(&key)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Record {
                key: key.to_string(),
                source,
            })
    }

    /// Writes raw bytes (logs).
    pub async fn put_bytes(&self, key: &Key, bytes: Vec<u8>) -> Result<(), Error> {
        let key = self.key(key);
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(Self::store_error(&key))?;
        Ok(())
    }

    /// Checks that a run may write under the root (a small object put at
    /// `<flow>/.write-check`), so a missing bucket or a read-only directory is named, with the
    /// fix, before a run starts rather than as its first record's failure.
    pub async fn check_writable(&self) -> Result<(), Error> {
        let key = self.under_flow(".write-check");
        let put = self
            .store
            .put(&key, PutPayload::from_static(b"kubestep"))
            .await;
        let why = match put {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                "its bucket or container does not exist".to_string()
            }
            Err(e) => crate::report::report(&e),
        };
        Err(Error::Root {
            root: self.root.clone(),
            message: format!(
                "cannot be written: {why}; name one this user may write with --datastore-root"
            ),
        })
    }

    /// Reads raw bytes (logs), if present.
    pub async fn get_bytes(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        let key = self.key(key);
        match self.store.get(&key).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(Self::store_error(&key))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::store_error(&key)(e)),
        }
    }
}

impl Datastore {
    /// Uploads the step binary once, under its sha256 (`<flow>/binaries/<sha256>`), so pods can
    /// fetch it; a binary already there is not sent again.
    pub async fn put_binary(&self, path: &Path, sha256: &str) -> Result<Key, Error> {
        let binary = Key::Binary(sha256.into());
        let key = self.key(&binary);
        let unreadable = |e: std::io::Error| Error::Root {
            root: self.root.clone(),
            message: format!("cannot read {} to upload it: {e}", path.display()),
        };
        let size = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
        // Stored already: reused, unless its size says it was cut short or replaced (pods check
        // the sha256 of what they fetch, and would refuse it).
        match self.store.head(&key).await {
            Ok(meta) if meta.size == size => return Ok(binary),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Self::store_error(&key)(e)),
        }
        let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        // Streamed in parts, so uploading a large executable does not hold it in memory.
        const PART: usize = 8 << 20;
        let mut upload = object_store::WriteMultipart::new_with_chunk_size(
            self.store
                .put_multipart(&key)
                .await
                .map_err(Self::store_error(&key))?,
            PART,
        );
        let mut buf = vec![0u8; PART];
        // The file is read a second time here: hashed again, so an executable rebuilt since it
        // was inspected is never stored under the old hash (every pod would refuse it).
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                .await
                .map_err(unreadable)?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            upload
                .wait_for_capacity(2)
                .await
                .map_err(Self::store_error(&key))?;
            upload.write(&buf[..n]);
        }
        let sent: String = sha2::Digest::finalize(hasher)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if sent != sha256 {
            let _ = upload.abort().await;
            return Err(Error::BinaryChanged {
                path: path.to_path_buf(),
                inspected: sha256.into(),
                sent,
            });
        }
        upload.finish().await.map_err(Self::store_error(&key))?;
        Ok(binary)
    }

    /// A URL that lets anyone holding it read `key` for `expires_in`, without credentials.
    pub async fn presigned_get(
        &self,
        key: &Key,
        expires_in: std::time::Duration,
    ) -> Result<String, Error> {
        let key = self.key(key);
        #[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
        if let Some(signer) = &self.signer {
            return signer
                .signed_url(object_store::signer::Method::GET, &key, expires_in)
                .await
                .map(|u| u.to_string())
                .map_err(Self::store_error(&key));
        }
        let _ = expires_in;
        Err(Error::Root {
            root: self.root.clone(),
            message: format!(
                "a {} datastore cannot give pods a URL for {key}; pods need --datastore s3, azure or gs",
                self.kind.name()
            ),
        })
    }

    /// Every key of the layout under `prefix`, recursively, sorted by path.
    pub async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, Error> {
        use futures::TryStreamExt;
        let prefix = self.under_flow(&prefix.path());
        let base = format!("{}/", self.flow);
        let mut keys: Vec<String> =
            match self.store.list(Some(&prefix)).try_collect::<Vec<_>>().await {
                Ok(items) => items
                    .into_iter()
                    .map(|m| {
                        let key = m.location.to_string();
                        key.strip_prefix(&base).map_or(key.clone(), str::to_string)
                    })
                    .collect(),
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(Self::store_error(&prefix)(e)),
            };
        keys.sort();
        Ok(keys.iter().filter_map(|k| Key::parse(k)).collect())
    }
}
