//! kubestep-testenv: a Kubernetes cluster on this machine with real nodes. etcd, the API
//! server, controller manager, scheduler, kube-proxy and kubelets of a current release, built
//! from their Go modules; each node a kubelet with its own containerd and runc, pods networked
//! by the CNI bridge plugin, images built locally from Debian packages and served by a real
//! registry; CoreDNS for cluster DNS; datastore emulators beside it. See the README for what
//! each part is and how it was built.
//!
//! Where it sits: kubestep's end-to-end tests and benchmarks talk to it exactly as to a
//! cluster, through `KUBECONFIG`. `cargo run -p kubestep-testenv -- up` starts one for a shell;
//! [`shared`] starts one per test binary, which dies with the test process. One cluster runs
//! on a machine at a time (it owns a bridge, a cgroup subtree and iptables rules).

#![warn(missing_docs)]

mod addons;
mod cgroups;
mod control_plane;
pub mod emulators;
mod fault_proxy;
mod network;
mod node;
mod pki;
mod process;
mod registry;

pub use control_plane::{
    ADMIN_TOKEN, ORCHESTRATOR_USER, PEER_USER, RESTRICTED_TOKEN, RESTRICTED_USER,
};
pub use fault_proxy::{FaultCounts, FaultProxy};
pub use network::{BRIDGE, BRIDGE_MAC, HOST_IP, node_ip};
pub use node::NodeSpec;
pub use registry::{PRIVATE_REGISTRY, REGISTRY_PASSWORD, REGISTRY_USER};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why the environment cannot start or act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Installing or starting a component failed.
    #[error("{0}")]
    Setup(String),
    /// A file operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (said in the message; this crate prints errors on one line, never their chain).
        error: std::io::Error,
    },
    /// An API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(String),
}

impl Error {
    fn io(path: &Path, error: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// Where state, logs and volumes go (a fresh temporary directory by default).
    pub dir: Option<PathBuf>,
}

impl Default for Options {
    /// Four nodes of 8 cores each, as the examples and the tests of every seed parameter need:
    /// - `node-a` (32 GiB) carries the labels the examples select on (disk type, zone, compute
    ///   pool `batch`, lifecycle spot);
    /// - `gpu-node` (64 GiB, 2 `nvidia.com/gpu`) is tainted `nvidia.com/gpu=present:NoSchedule`
    ///   and labelled `nvidia.com/gpu.present=true` and compute pool `a100`, as GPU node pools are;
    /// - `gpu-open` (64 GiB, 2 `nvidia.com/gpu`) is labelled like it but untainted, so only an
    ///   affinity keeps `gpu = 0` steps off it;
    /// - `spot-node` (16 GiB) is tainted `spot=true:NoExecute`, for tolerations.
    fn default() -> Options {
        let mut node = NodeSpec::new("node-a")
            .label("disktype", "ssd")
            .label("topology.kubernetes.io/zone", "eu-west-1a")
            .label("kubestep.io/compute-pool", "batch")
            .label("node.kubernetes.io/lifecycle", "spot");
        node.memory_mib = 32 * 1024;
        let mut gpu = NodeSpec::new("gpu-node")
            .label("kubestep.io/compute-pool", "a100")
            .label("nvidia.com/gpu.present", "true")
            .taint("nvidia.com/gpu=present:NoSchedule");
        gpu.gpus = 2;
        let mut open = NodeSpec::new("gpu-open").label("nvidia.com/gpu.present", "true");
        open.gpus = 2;
        let mut spot = NodeSpec::new("spot-node").taint("spot=true:NoExecute");
        spot.memory_mib = 16 * 1024;
        Options {
            nodes: vec![node, gpu, open, spot],
            dir: None,
        }
    }
}

/// The built and installed parts `install.sh` reports: where each is, and its version.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The multi-call Kubernetes binary (`kube kube-apiserver|...|kubelet|gpu-device-plugin`).
    pub kube: PathBuf,
    /// The multi-call services binary (`services etcd|coredns|fake-gcs-server`).
    pub services: PathBuf,
    /// The registries' storage (`public/`, `private/`).
    pub images: PathBuf,
    /// The datastore emulators' installs (`py/`, `npm/`).
    pub emulators: PathBuf,
    /// Mermaid's browser bundle (`mermaid.min.js`), to render `show --graph` in a test.
    pub mermaid: PathBuf,
    /// (part, version) of everything built or installed, for `status`.
    pub versions: Vec<(String, String)>,
}

/// Installs (once) and finds every part: runs `install.sh`, which builds what its cache lacks.
pub fn install() -> Result<Parts, Error> {
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
    let mut versions = Vec::new();
    let path = |key: &str| -> Result<PathBuf, Error> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .ok_or_else(|| Error::Setup(format!("{} printed no {key}=", script.display())))
    };
    let parts = Parts {
        kube: path("kube")?,
        services: path("services")?,
        images: path("images")?,
        emulators: path("emulators")?,
        mermaid: path("mermaid")?,
        versions: Vec::new(),
    };
    for l in text.lines() {
        if let Some((part, version)) = l.strip_prefix("version ").and_then(|v| v.split_once(' ')) {
            versions.push((part.to_string(), version.to_string()));
        }
    }
    Ok(Parts { versions, ..parts })
}

struct Inner {
    control_plane: tokio::sync::Mutex<control_plane::ControlPlane>,
    addons: tokio::sync::Mutex<addons::Addons>,
    registries: tokio::sync::Mutex<registry::Registries>,
    emulators: tokio::sync::Mutex<emulators::Emulators>,
    nodes: tokio::sync::Mutex<Vec<node::Node>>,
    parts: Parts,
    dir: PathBuf,
    /// Held for the environment's life: one cluster per machine.
    _lock: std::fs::File,
}

/// The Secret, in namespace `default`, that carries the S3 credentials for pods; exported as
/// `KUBESTEP_KUBERNETES_SECRETS`.
pub const S3_SECRET_NAME: &str = "kubestep-testenv-s3";

/// The Secret, in namespace `default`, that carries the Azure Blob credentials for pods
/// (`KUBESTEP_KUBERNETES_SECRETS=kubestep-testenv-azure` for a run on the Azure emulator).
pub const AZURE_SECRET_NAME: &str = "kubestep-testenv-azure";

/// A `kubernetes.io/dockerconfigjson` document that lets pods pull from [`PRIVATE_REGISTRY`].
pub fn pull_secret_json() -> String {
    registry::Registries::pull_secret_json()
}

/// A running environment. Its processes end when [`TestEnv::stop`] runs or the process exits.
pub struct TestEnv {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of a user with no rights but those RBAC grants ([`RESTRICTED_USER`]).
    pub restricted_kubeconfig: PathBuf,
    /// Kubeconfig of a second user with no rights but those RBAC grants ([`PEER_USER`]): the
    /// peer a benchmark runs beside kubestep.
    pub peer_kubeconfig: PathBuf,
    /// State directory: logs of every component, the nodes' containerd and kubelet state.
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

/// Takes the machine-wide lock, waiting up to two minutes for another environment to end.
fn lock() -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("kubestep-testenv.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    for _ in 0..1200 {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Setup(format!(
        "another test cluster runs on this machine (it holds {}); stop it with `cargo run -p kubestep-testenv -- down`",
        path.display()
    )))
}

fn mount(args: &[&str]) -> Result<(), Error> {
    process::run(std::process::Command::new("mount").args(args)).map(drop)
}

/// Unmounts everything under `dir`, deepest first, and `dir` itself if it is a mount.
fn unmount_under(dir: &Path) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        let _ = std::process::Command::new("umount")
            .args(["-l", m])
            .output();
    }
}

/// Ends what outlives an environment's own child processes: every process in the cgroup
/// subtree (containerd's shims, the pods), kube-proxy's rules, the bridge and the guard, the
/// mounts under `dir`.
fn teardown(parts: &Parts, dir: &Path) {
    cgroups::kill_all();
    addons::clean_proxy_rules(parts);
    network::down();
    unmount_under(dir);
}

/// Removes what a killed environment left: its processes (every one lives in the cgroup
/// subtree), mounts and state directories, the bridge, iptables rules.
fn clean_stale(parts: &Parts) {
    cgroups::kill_all();
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
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
        unmount_under(&entry.path());
        let _ = std::fs::remove_dir_all(entry.path());
    }
    addons::clean_proxy_rules(parts);
    network::down();
}

impl TestEnv {
    /// Starts an environment on `runtime`, which must outlive it.
    pub async fn start(options: Options) -> Result<TestEnv, Error> {
        let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
        let lock = lock()?;
        let parts = install()?;
        let dir = match &options.dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("kubestep-testenv-{}", std::process::id())),
        };
        clean_stale(&parts);
        unmount_under(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        match TestEnv::start_in(options, dir.clone(), parts.clone(), lock).await {
            Ok(env) => Ok(env),
            Err(e) => {
                // What started is dropped (and killed) already; the rest lives in the cgroups,
                // the bridge and the mounts.
                teardown(&parts, &dir);
                Err(e)
            }
        }
    }

    async fn start_in(
        options: Options,
        dir: PathBuf,
        parts: Parts,
        lock: std::fs::File,
    ) -> Result<TestEnv, Error> {
        // The kubelets run in mount namespaces of their own; what they mount under the state
        // directory (volumes) must still reach containerd here.
        let d = dir.display().to_string();
        mount(&["--bind", &d, &d])?;
        mount(&["--make-shared", &d])?;
        network::up(options.nodes.len())?;
        let pki = pki::create(&dir.join("pki"))?;
        let names: Vec<String> = options.nodes.iter().map(|n| n.name.clone()).collect();
        let cp = control_plane::ControlPlane::start(&dir, &parts, pki.clone(), &names).await?;
        let client = client_for(&cp.kubeconfig).await?;
        let addons = addons::Addons::start(&dir, &parts, &cp.server, &pki.ca_cert, &client).await?;
        let registries = registry::Registries::start(&dir, &parts.images).await?;
        let emulators = emulators::Emulators::start(&dir, &parts, &pki).await?;
        let mut nodes = Vec::new();
        for (i, spec) in options.nodes.into_iter().enumerate() {
            nodes.push(
                node::Node::start(spec, i, &dir, &parts, &registries, &cp.server, &pki.ca_cert)
                    .await?,
            );
        }
        wait_nodes_ready(&client, &names, &dir).await?;
        volumes(&client, &dir).await?;
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
        // `run` in a shell after `up` sends #[kubernetes] steps to this cluster through S3.
        exports.push(("KUBESTEP_DATASTORE".into(), "s3".into()));
        Ok(TestEnv {
            kubeconfig: cp.kubeconfig.clone(),
            restricted_kubeconfig: cp.restricted_kubeconfig.clone(),
            peer_kubeconfig: cp.peer_kubeconfig.clone(),
            dir: dir.clone(),
            exports,
            inner: Arc::new(Inner {
                control_plane: tokio::sync::Mutex::new(cp),
                addons: tokio::sync::Mutex::new(addons),
                registries: tokio::sync::Mutex::new(registries),
                emulators: tokio::sync::Mutex::new(emulators),
                nodes: tokio::sync::Mutex::new(nodes),
                parts,
                dir,
                _lock: lock,
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

    /// The API server's audit log: one JSON line per request of [`RESTRICTED_USER`],
    /// [`PEER_USER`] or [`ORCHESTRATOR_USER`].
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join(control_plane::AUDIT_LOG)
    }

    /// (part, version) of every built or installed part.
    pub fn versions(&self) -> &[(String, String)] {
        &self.inner.parts.versions
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

    /// [`TestEnv::exports`] with KUBECONFIG naming the restricted user, whose requests the
    /// audit log keeps: a user's shell, once an admin has bound it to a Role.
    pub fn restricted_exports(&self) -> Vec<(String, String)> {
        self.exports
            .iter()
            .map(|(k, v)| match k.as_str() {
                "KUBECONFIG" => (k.clone(), self.restricted_kubeconfig.display().to_string()),
                _ => (k.clone(), v.clone()),
            })
            .collect()
    }

    async fn on_env<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.runtime.spawn(f).await.expect("testenv task")
    }

    /// Fault: evicts a pod through the Eviction API, as a node drain does, with the pod's own
    /// grace period or `grace_seconds` (`kubectl drain --grace-period`). False if the API
    /// refused (no such pod, or a disruption budget forbids it).
    pub async fn evict(&self, ns: &str, pod: &str, grace_seconds: Option<u32>) -> bool {
        // Posted by hand: kube 5.0.0's `Api::evict` writes `delete_options` where the API
        // expects `deleteOptions`, so a grace period given there is silently dropped.
        let mut eviction = serde_json::json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": ns},
        });
        if let Some(g) = grace_seconds {
            eviction["deleteOptions"] = serde_json::json!({"gracePeriodSeconds": g});
        }
        let Ok(request) =
            http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(eviction.to_string().into_bytes())
        else {
            return false;
        };
        self.client()
            .await
            .request::<serde_json::Value>(request)
            .await
            .is_ok()
    }

    /// Fault: kills one container of a pod through its node's containerd (SIGKILL to the
    /// container's processes). False if the pod, container or node is not found.
    pub async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> bool {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client().await, ns);
        let Ok(p) = pods.get(pod).await else {
            return false;
        };
        let node_name = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let id = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == container))
            .and_then(|c| c.container_id.clone());
        let (Some(node_name), Some(id)) = (node_name, id) else {
            return false;
        };
        let id = id.trim_start_matches("containerd://").to_string();
        let nodes = self.inner.nodes.lock().await;
        let Some(node) = nodes.iter().find(|n| n.spec.name == node_name) else {
            return false;
        };
        std::process::Command::new("ctr")
            .arg("--address")
            .arg(&node.containerd_socket)
            .args(["-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", &id])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Fault: every node gets the taint `kubestep.io/hold=true:NoSchedule`, so new pods stay
    /// Pending (the scheduler says why) until [`TestEnv::release_pending`].
    pub async fn hold_pending(&self) -> Result<(), Error> {
        self.set_hold_taint(true).await
    }

    /// Lifts the taint of [`TestEnv::hold_pending`].
    pub async fn release_pending(&self) -> Result<(), Error> {
        self.set_hold_taint(false).await
    }

    async fn set_hold_taint(&self, on: bool) -> Result<(), Error> {
        use k8s_openapi::api::core::v1::Node;
        let nodes: kube::Api<Node> = kube::Api::all(self.client().await);
        let names: Vec<String> = self
            .inner
            .nodes
            .lock()
            .await
            .iter()
            .map(|n| n.spec.name.clone())
            .collect();
        for name in names {
            let node = nodes
                .get(&name)
                .await
                .map_err(|e| Error::Kube(format!("get Node {name}: {e}")))?;
            let mut taints: Vec<serde_json::Value> = node
                .spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.key != HOLD_TAINT)
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .collect();
            if on {
                taints.push(
                    serde_json::json!({"key": HOLD_TAINT, "value": "true", "effect": "NoSchedule"}),
                );
            }
            let patch = serde_json::json!({"spec": {"taints": taints}});
            nodes
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .map_err(|e| Error::Kube(format!("taint Node {name}: {e}")))?;
        }
        Ok(())
    }

    /// Fault: node `name` is lost: its kubelet and containerd stop (its containers go on
    /// running, unreachable). The node lifecycle controller marks it NotReady within the
    /// 20-second grace period and taints it `node.kubernetes.io/unreachable`.
    pub async fn lose_node(&self, name: &str) -> Result<(), Error> {
        self.set_node_up(name, false).await
    }

    /// Brings a lost node back: containerd and the kubelet start again on its state.
    pub async fn restore_node(&self, name: &str) -> Result<(), Error> {
        self.set_node_up(name, true).await
    }

    async fn set_node_up(&self, name: &str, up: bool) -> Result<(), Error> {
        let (inner, name) = (self.inner.clone(), name.to_string());
        self.on_env(async move {
            let mut nodes = inner.nodes.lock().await;
            let node = nodes
                .iter_mut()
                .find(|n| n.spec.name == name)
                .ok_or_else(|| Error::Setup(format!("no node {name} in this environment")))?;
            if up {
                node.restore(&inner.parts).await
            } else {
                node.lose().await;
                Ok(())
            }
        })
        .await
    }

    /// Fault: a proxy in front of the API server that answers `rate` of the requests of its
    /// kubeconfig's user (the restricted one) with 429, 500, 503, a slow answer or a lost reply,
    /// and cuts every watch stream at a random moment; `seed` fixes its random choices. It
    /// stops when dropped.
    pub async fn fault_proxy(&self, rate: f64, seed: u64) -> Result<FaultProxy, Error> {
        let inner = self.inner.clone();
        self.on_env(async move {
            let cp = inner.control_plane.lock().await;
            fault_proxy::start(
                &cp.server,
                &cp.pki.ca_cert,
                &cp.pki.server_cert,
                &cp.pki.server_key,
                &inner.dir,
                RESTRICTED_TOKEN,
                rate,
                seed,
            )
            .await
        })
        .await
    }

    /// Fault: restarts the API server (watches break and must resume).
    pub async fn restart_apiserver(&self) -> Result<(), Error> {
        let inner = self.inner.clone();
        self.on_env(async move { inner.control_plane.lock().await.restart_apiserver().await })
            .await
    }

    /// Fault: freezes the S3 emulator (SIGSTOP) or lets it go on (SIGCONT). moto keeps its
    /// objects in memory, so a pause, unlike a restart, loses nothing.
    pub async fn pause_s3(&self, paused: bool) {
        self.inner.emulators.lock().await.pause_s3(paused);
    }

    /// Stops every process of the environment and removes its bridge, rules and mounts.
    pub async fn stop(&self) {
        let inner = self.inner.clone();
        self.on_env(async move {
            // The nodes' own processes; their containers and shims go with the cgroups below.
            for node in inner.nodes.lock().await.iter_mut() {
                node.lose().await;
            }
            inner.emulators.lock().await.stop().await;
            inner.registries.lock().await.stop().await;
            inner.addons.lock().await.stop().await;
            inner.control_plane.lock().await.stop().await;
            teardown(&inner.parts, &inner.dir);
        })
        .await;
    }
}

/// How many persistent volumes the environment offers to claims.
pub const VOLUMES: usize = 32;

/// [`VOLUMES`] hostPath PersistentVolumes of 100 GiB under the state directory, with no
/// storage class: the real PV controller binds claims to them, as an admin's static volumes.
async fn volumes(client: &kube::Client, dir: &Path) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::PersistentVolume;
    let api: kube::Api<PersistentVolume> = kube::Api::all(client.clone());
    for i in 0..VOLUMES {
        let pv = serde_json::json!({
            "metadata": {"name": format!("testenv-pv-{i}")},
            "spec": {"capacity": {"storage": "100Gi"},
                     "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "hostPath": {"path": dir.join(format!("volumes/pv-{i}")), "type": "DirectoryOrCreate"}}
        });
        let pv = serde_json::from_value(pv).map_err(|e| Error::Setup(e.to_string()))?;
        api.create(&kube::api::PostParams::default(), &pv)
            .await
            .map_err(|e| Error::Kube(format!("create PersistentVolume {i}: {e}")))?;
    }
    Ok(())
}

/// The taint of [`TestEnv::hold_pending`].
const HOLD_TAINT: &str = "kubestep.io/hold";

/// Waits until every node is Ready, for at most 90 seconds.
async fn wait_nodes_ready(
    client: &kube::Client,
    names: &[String],
    dir: &Path,
) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Node;
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    let mut waiting: Vec<&String> = names.iter().collect();
    for _ in 0..900 {
        let mut still = Vec::new();
        for name in waiting {
            let ready = api.get_opt(name).await.ok().flatten().is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if !ready {
                still.push(name);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Setup(format!(
        "nodes {waiting:?} not Ready after 90 s; see {}/nodes/<node>/kubelet.log",
        dir.display()
    )))
}

/// One environment per process, started on first use on a runtime of its own (test runtimes
/// come and go), with the default [`Options`]. Its processes die with the process.
///
/// # Panics
/// If the environment cannot start: the tests that need it cannot run, and say why.
pub fn shared() -> &'static TestEnv {
    shared_with(Options::default)
}

/// [`shared`], started with the nodes `options` gives when this is the process's first call
/// (a test binary that needs another cluster shape calls this before anything else does).
///
/// # Panics
/// As [`shared`].
pub fn shared_with(options: fn() -> Options) -> &'static TestEnv {
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
                let env = rt.block_on(TestEnv::start(options()));
                let _ = tx.send(env);
                // Keep the runtime alive for the life of the process.
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
