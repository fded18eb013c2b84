//! kubestep-testenv: a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler v1.20.2, built from Debian's source package) on
//! loopback, and a node agent of our own that runs the pods bound to its Nodes as sandboxed
//! local processes. Only the kubelet is ours; the API server, scheduler and Job controller are
//! the real ones.
//!
//! Where it sits: kubestep's end-to-end tests and benchmarks talk to it exactly as to a
//! cluster, through `KUBECONFIG`. `cargo run -p kubestep-testenv -- up` starts one for a shell;
//! [`shared`] starts one per test binary, which dies with the test process.

#![warn(missing_docs)]

pub mod agent;
mod control_plane;
pub mod emulators;
mod pki;
mod spawn;

pub use agent::{NodeSpec, Stop};
pub use control_plane::{ADMIN_TOKEN, RESTRICTED_TOKEN, RESTRICTED_USER};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why the environment cannot start or act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Installing or starting a component failed.
    #[error("{0}")]
    Setup(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(String),
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The nodes the agent registers.
    pub nodes: Vec<NodeSpec>,
    /// Images the agent can "pull".
    pub images: Vec<String>,
    /// Where state, logs and volumes go (a fresh temporary directory by default).
    pub dir: Option<PathBuf>,
}

impl Default for Options {
    /// Two nodes: `node-a` (4 cpus, 16 GiB) and `gpu-node` (8 cpus, 64 GiB, 2 NVIDIA GPUs,
    /// tainted `nvidia.com/gpu=present:NoSchedule`, labelled `nvidia.com/gpu.present=true`).
    /// Both carry the labels the examples select on (disk type, zone, compute pool, spot).
    fn default() -> Options {
        let mut node = NodeSpec::new("node-a");
        for (k, v) in [
            ("disktype", "ssd"),
            ("topology.kubernetes.io/zone", "eu-west-1a"),
            ("kubestep.io/compute-pool", "batch"),
            ("node.kubernetes.io/lifecycle", "spot"),
        ] {
            node.labels.insert(k.into(), v.into());
        }
        let mut gpu = NodeSpec::new("gpu-node");
        gpu.labels
            .insert("kubestep.io/compute-pool".into(), "a100".into());
        gpu.capacity.insert("cpu".into(), "8".into());
        gpu.capacity.insert("memory".into(), "64Gi".into());
        gpu.capacity.insert("nvidia.com/gpu".into(), "2".into());
        gpu.labels
            .insert("nvidia.com/gpu.present".into(), "true".into());
        gpu.taints.push((
            "nvidia.com/gpu".into(),
            "present".into(),
            "NoSchedule".into(),
        ));
        Options {
            nodes: vec![node, gpu],
            images: agent::DEFAULT_IMAGES.map(String::from).to_vec(),
            dir: None,
        }
    }
}

/// The control plane's binaries: `KUBESTEP_TESTENV_BIN`, or built once by `install.sh` and
/// cached outside the repository.
pub fn control_plane_bin() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("KUBESTEP_TESTENV_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Setup(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "{} failed ({})",
            script.display(),
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("").trim();
    Ok(PathBuf::from(last))
}

struct Inner {
    control_plane: tokio::sync::Mutex<control_plane::ControlPlane>,
    emulators: tokio::sync::Mutex<emulators::Emulators>,
    agent: Arc<agent::Agent>,
}

/// The Secret, in namespace `default`, that carries the S3 credentials for pods; exported as
/// `KUBESTEP_KUBERNETES_SECRETS`.
pub const S3_SECRET_NAME: &str = "kubestep-testenv-s3";

/// The Secret, in namespace `default`, that carries the Azure Blob credentials for pods
/// (`KUBESTEP_KUBERNETES_SECRETS=kubestep-testenv-azure` for a run on the Azure emulator).
pub const AZURE_SECRET_NAME: &str = "kubestep-testenv-azure";

/// A running environment. Its processes end when [`TestEnv::stop`] runs or the process exits.
pub struct TestEnv {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of a user with no rights but those RBAC grants ([`RESTRICTED_USER`]).
    pub restricted_kubeconfig: PathBuf,
    /// State directory: logs of every component, pod logs and volumes.
    pub dir: PathBuf,
    exports: Vec<(String, String)>,
    inner: Arc<Inner>,
    runtime: tokio::runtime::Handle,
}

/// A kube client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, Error> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Setup(format!("{}: {e}", kubeconfig.display())))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Setup(format!("{}: {e}", kubeconfig.display())))?;
    kube::Client::try_from(config).map_err(|e| Error::Setup(e.to_string()))
}

impl TestEnv {
    /// Starts an environment on `runtime`, which must outlive it.
    pub async fn start(options: Options) -> Result<TestEnv, Error> {
        let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
        let bin = control_plane_bin()?;
        let dir = match options.dir {
            Some(d) => d,
            None => std::env::temp_dir().join(format!("kubestep-testenv-{}", std::process::id())),
        };
        clean_stale();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let pki = pki::create(&dir.join("pki"))?;
        let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
        let cp = control_plane::ControlPlane::start(&dir, &bin, pki).await?;
        let client = client_for(&cp.kubeconfig).await?;
        let emulators = emulators::Emulators::start(&dir, &emulators::root(&bin)).await?;
        let agent = agent::Agent::start(
            client.clone(),
            options.nodes,
            dir.clone(),
            options.images,
            cert,
            key,
        )
        .await?;
        let mut exports = vec![(
            "KUBECONFIG".to_string(),
            cp.kubeconfig.display().to_string(),
        )];
        exports.extend(emulators.exports());
        // Pods get the store credentials only through Secrets, as kubestep's `secrets` asks.
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, "default");
        for (name, prefix) in [(S3_SECRET_NAME, "AWS_"), (AZURE_SECRET_NAME, "AZURE_")] {
            let data: std::collections::BTreeMap<String, String> = exports
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .cloned()
                .collect();
            let secret = serde_json::json!({"metadata": {"name": name}, "stringData": data});
            let secret = serde_json::from_value(secret).map_err(|e| Error::Setup(e.to_string()))?;
            secrets
                .create(&kube::api::PostParams::default(), &secret)
                .await
                .map_err(|e| Error::Kube(format!("create Secret {name}: {e}")))?;
        }
        exports.push(("KUBESTEP_KUBERNETES_SECRETS".into(), S3_SECRET_NAME.into()));
        Ok(TestEnv {
            kubeconfig: cp.kubeconfig.clone(),
            restricted_kubeconfig: cp.restricted_kubeconfig.clone(),
            dir,
            exports,
            inner: Arc::new(Inner {
                control_plane: tokio::sync::Mutex::new(cp),
                emulators: tokio::sync::Mutex::new(emulators),
                agent,
            }),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// An admin client, for the calling runtime.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig)
            .await
            .expect("testenv kubeconfig is valid")
    }

    /// The API server's audit log: one JSON line per request of [`RESTRICTED_USER`].
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join(control_plane::AUDIT_LOG)
    }

    /// Creates every object of a multi-document YAML text as the admin (objects that exist are
    /// left as they are): what `kubectl create -f` does, for the manifests kubestep prints.
    pub async fn apply(&self, yaml: &str) -> Result<(), Error> {
        use kube::api::{DynamicObject, PostParams};
        use kube::discovery::pinned_kind;
        let client = self.client().await;
        for doc in yaml.split("\n---").map(|d| d.trim_start_matches("---")) {
            if doc.trim().is_empty() {
                continue;
            }
            let obj: DynamicObject =
                serde_saphyr::from_str(doc).map_err(|e| Error::Setup(format!("{e}: {doc}")))?;
            let types = obj
                .types
                .clone()
                .ok_or_else(|| Error::Setup(format!("no apiVersion/kind in {doc}")))?;
            let gvk = kube::api::GroupVersionKind::try_from(&types)
                .map_err(|e| Error::Setup(e.to_string()))?;
            let (resource, caps) = pinned_kind(&client, &gvk)
                .await
                .map_err(|e| Error::Kube(format!("discover {}: {e}", types.kind)))?;
            let api: kube::Api<DynamicObject> = match (&caps.scope, &obj.metadata.namespace) {
                (kube::discovery::Scope::Namespaced, Some(ns)) => {
                    kube::Api::namespaced_with(client.clone(), ns, &resource)
                }
                (kube::discovery::Scope::Namespaced, None) => {
                    kube::Api::default_namespaced_with(client.clone(), &resource)
                }
                _ => kube::Api::all_with(client.clone(), &resource),
            };
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::Kube(format!("create {}: {e}", types.kind))),
            }
        }
        Ok(())
    }

    /// `export NAME=value` pairs a shell or a child process needs: KUBECONFIG, the emulators'
    /// endpoints, credentials and roots, and KUBESTEP_KUBERNETES_SECRETS.
    pub fn exports(&self) -> &[(String, String)] {
        &self.exports
    }

    async fn on_env<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.runtime.spawn(f).await.expect("testenv task")
    }

    /// Fault: evicts a pod (DisruptionTarget condition, reason Evicted).
    pub async fn evict(&self, ns: &str, pod: &str) -> bool {
        self.inner.agent.stop(ns, pod, Stop::Evict)
    }

    /// Fault: kills one container of a pod.
    pub async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> bool {
        self.inner.agent.stop(ns, pod, Stop::Kill(container.into()))
    }

    /// Fault: keeps pods whose name starts with `prefix` Pending until [`TestEnv::release`].
    pub fn hold_pending(&self, ns: &str, prefix: &str) {
        self.inner.agent.hold(ns, prefix);
    }

    /// Lets held pods start.
    pub fn release(&self, ns: &str, prefix: &str) {
        self.inner.agent.release(ns, prefix);
    }

    /// Fault: reports a node NotReady (and taints it), or Ready again.
    pub async fn set_node_ready(&self, node: &str, ready: bool) -> Result<(), Error> {
        let (agent, node) = (self.inner.agent.clone(), node.to_string());
        self.on_env(async move { agent.set_ready(&node, ready).await })
            .await
    }

    /// Fault: restarts the API server (watches break and must resume).
    pub async fn restart_apiserver(&self) -> Result<(), Error> {
        let inner = self.inner.clone();
        self.on_env(async move { inner.control_plane.lock().await.restart_apiserver().await })
            .await
    }

    /// Stops every process of the environment.
    pub async fn stop(&self) {
        let inner = self.inner.clone();
        self.on_env(async move {
            inner.emulators.lock().await.stop().await;
            inner.control_plane.lock().await.stop().await;
        })
        .await;
    }
}

/// Removes what environments of dead processes left: tmpfs mounts, state directories, empty
/// cgroups. (Their processes died with them.)
fn clean_stale() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("kubestep-testenv-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } == 0 {
            continue;
        }
        let dir = entry.path().display().to_string();
        for m in mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&dir))
        {
            let _ = std::process::Command::new("umount").arg(m).output();
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
    for entry in std::fs::read_dir("/sys/fs/cgroup/memory/kubestep-testenv")
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.path().is_dir()
            && std::fs::read_to_string(entry.path().join("cgroup.procs"))
                .is_ok_and(|p| p.trim().is_empty())
        {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// One environment per process, started on first use on a runtime of its own (test runtimes
/// come and go), with the default [`Options`]. Its processes die with the process.
///
/// # Panics
/// If the environment cannot start: the tests that need it cannot run, and say why.
pub fn shared() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("testenv".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("testenv runtime");
                let env = rt.block_on(TestEnv::start(Options::default()));
                let _ = tx.send(env);
                // Keep the runtime (and with it the agent) alive for the life of the process.
                rt.block_on(std::future::pending::<()>());
            })
            .expect("testenv thread");
        match rx.recv() {
            Ok(Ok(env)) => env,
            Ok(Err(e)) => panic!("the test environment did not start: {e}"),
            Err(_) => panic!("the test environment thread died while starting"),
        }
    })
}
