//! The node agent: registers Nodes and does a kubelet's work for every pod bound to them,
//! running containers as sandboxed local processes (see `pod` and `sandbox`).

mod logs;
mod pod;
mod sandbox;

use crate::Error;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A node the agent registers.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Capacity: cpu, memory, ephemeral-storage, pods, nvidia.com/gpu, amd.com/gpu.
    pub capacity: BTreeMap<String, String>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Taints as (key, value, effect).
    pub taints: Vec<(String, String, String)>,
}

impl NodeSpec {
    /// A node with 4 cpus, 16 GiB of memory and 100 GiB of disk, no GPUs.
    pub fn new(name: &str) -> NodeSpec {
        let capacity = [
            ("cpu", "4"),
            ("memory", "16Gi"),
            ("ephemeral-storage", "100Gi"),
            ("pods", "110"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        NodeSpec {
            name: name.into(),
            capacity,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }
}

/// Why a pod's containers must stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    Run,
    /// The pod was deleted: SIGTERM, then SIGKILL after this many seconds.
    Delete(i64),
    /// Evicted by the node (a test fault).
    Evict,
    /// One container is killed (a test fault).
    Kill(String),
}

/// What the agent knows of a pod it runs.
struct PodEntry {
    uid: String,
    ip: String,
    hostname: String,
    subdomain: Option<String>,
    hosts_file: PathBuf,
    logs: HashMap<String, (PathBuf, Arc<AtomicBool>)>,
    stop: watch::Sender<Stop>,
}

/// Pods on this agent's nodes, by (namespace, name).
#[derive(Default)]
pub struct Registry {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

impl Registry {
    fn log_of(&self, ns: &str, pod: &str, container: &str) -> Option<(PathBuf, Arc<AtomicBool>)> {
        let pods = self.pods.lock().expect("registry lock");
        pods.get(&(ns.to_string(), pod.to_string()))
            .and_then(|p| p.logs.get(container).cloned())
    }

    /// Rewrites every pod's /etc/hosts: a pod with hostname and subdomain is known by
    /// `<hostname>.<subdomain>` (and the cluster FQDN) to the pods of its namespace, as cluster
    /// DNS answers for a headless Service.
    fn refresh_hosts(&self) {
        let pods = self.pods.lock().expect("registry lock");
        for ((ns, _), p) in pods.iter() {
            let mut text = String::from("127.0.0.1 localhost\n");
            for ((other_ns, _), o) in pods.iter() {
                if other_ns != ns {
                    continue;
                }
                match &o.subdomain {
                    Some(sub) => {
                        let own = if o.uid == p.uid {
                            format!(" {}", o.hostname)
                        } else {
                            String::new()
                        };
                        text.push_str(&format!(
                            "{} {h}.{sub}.{ns}.svc.cluster.local {h}.{sub}{own}\n",
                            o.ip,
                            h = o.hostname
                        ));
                    }
                    None if o.uid == p.uid => text.push_str(&format!("{} {}\n", o.ip, o.hostname)),
                    None => {}
                }
            }
            // Written in place: the file is bind-mounted by inode.
            let _ = std::fs::write(&p.hosts_file, text);
        }
    }
}

/// The agent: its nodes, its pods and the images it can "pull".
pub struct Agent {
    client: kube::Client,
    nodes: Vec<NodeSpec>,
    dir: PathBuf,
    port: u16,
    images: Vec<String>,
    registry: Arc<Registry>,
    next_ip: AtomicU32,
    held: Mutex<HashSet<(String, String)>>,
    started: Mutex<HashSet<String>>,
}

/// Images every agent can run: the host's root file system stands in for each. The last two
/// are the private images the examples name.
pub const DEFAULT_IMAGES: [&str; 6] = [
    "debian:bookworm-slim",
    "debian:bookworm",
    "busybox",
    "curlimages/curl:8.11.1",
    "ghcr.io/acme/train:1.4",
    "registry.example.com/acme/sorter:1.4",
];

fn normalise_image(image: &str) -> String {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    image.strip_prefix("library/").unwrap_or(image).to_string()
}

impl Agent {
    /// Registers the nodes, starts the log endpoint and the pod watch.
    pub async fn start(
        client: kube::Client,
        nodes: Vec<NodeSpec>,
        dir: PathBuf,
        images: Vec<String>,
        cert: PathBuf,
        key: PathBuf,
    ) -> Result<Arc<Agent>, Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Setup(format!("kubelet port: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Setup(e.to_string()))?
            .port();
        let registry = Arc::new(Registry::default());
        logs::run(listener, &cert, &key, registry.clone()).await?;
        let agent = Arc::new(Agent {
            client,
            nodes,
            dir,
            port,
            images: images.iter().map(|i| normalise_image(i)).collect(),
            registry,
            next_ip: AtomicU32::new(1),
            held: Mutex::new(HashSet::new()),
            started: Mutex::new(HashSet::new()),
        });
        for n in &agent.nodes {
            agent.register(n).await?;
        }
        let watching = agent.clone();
        tokio::spawn(async move { watching.watch_pods().await });
        let provisioning = agent.clone();
        tokio::spawn(async move { provisioning.provision_claims().await });
        Ok(agent)
    }

    async fn register(&self, n: &NodeSpec) -> Result<(), Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut labels = n.labels.clone();
        for (k, v) in [
            ("kubernetes.io/hostname", n.name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": n.name, "labels": labels}}))
                .map_err(|e| Error::Setup(e.to_string()))?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::Kube(format!("register node {}: {e}", n.name))),
        }
        // The node lifecycle controller is off, so the agent reports the node Ready and lifts the
        // `not-ready` taint the API server put on it, keeping the configured taints.
        self.set_ready(&n.name, true).await?;
        Ok(())
    }

    /// Reports a node Ready or NotReady (the NotReady case is a test fault).
    pub async fn set_ready(&self, node: &str, ready: bool) -> Result<(), Error> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| Error::Setup(format!("no node {node}")))?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let (status, reason) = if ready {
            ("True", "KubeletReady")
        } else {
            ("False", "KubeletNotReady")
        };
        let status = json!({"status": {
            "capacity": n.capacity, "allocatable": n.capacity,
            "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": format!("kubestep testenv agent: {reason}"), "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "testenv://bwrap", "osImage": "testenv", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        }});
        let api: Api<Node> = Api::all(self.client.clone());
        api.patch_status(node, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map_err(|e| Error::Kube(format!("status of node {node}: {e}")))?;
        // NotReady adds the `not-ready` taint; Ready puts back the node's own taints.
        let mut taints: Vec<_> = n
            .taints
            .iter()
            .map(|(k, v, e)| json!({"key": k, "value": v, "effect": e}))
            .collect();
        if !ready {
            taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
        }
        api.patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .map_err(|e| Error::Kube(format!("taints of node {node}: {e}")))?;
        Ok(())
    }

    /// Keeps pods whose name starts with `prefix` in `ns` Pending until [`Agent::release`].
    pub fn hold(&self, ns: &str, prefix: &str) {
        self.held
            .lock()
            .expect("held lock")
            .insert((ns.into(), prefix.into()));
    }

    /// Lets held pods start.
    pub fn release(&self, ns: &str, prefix: &str) {
        self.held
            .lock()
            .expect("held lock")
            .remove(&(ns.to_string(), prefix.to_string()));
    }

    fn is_held(&self, ns: &str, name: &str) -> bool {
        self.held
            .lock()
            .expect("held lock")
            .iter()
            .any(|(n, p)| n == ns && name.starts_with(p.as_str()))
    }

    /// Stops a pod's containers for a fault or a deletion.
    pub fn stop(&self, ns: &str, name: &str, why: Stop) -> bool {
        let pods = self.registry.pods.lock().expect("registry lock");
        match pods.get(&(ns.to_string(), name.to_string())) {
            Some(p) => {
                let _ = p.stop.send(why);
                true
            }
            None => false,
        }
    }

    async fn watch_pods(self: Arc<Self>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                _ => continue,
            };
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if !self.nodes.iter().any(|n| n.name == node) {
                continue;
            }
            let (ns, name) = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
                if !self.stop(&ns, &name, Stop::Delete(grace)) {
                    // Never started here: nothing to stop, only the deletion to confirm.
                    self.forget(&ns, &name).await;
                }
                continue;
            }
            if self.started.lock().expect("started lock").insert(uid) {
                let agent = self.clone();
                tokio::spawn(async move { pod::run(agent, pod).await });
            }
        }
    }

    /// The directory behind a claim; its PersistentVolume's hostPath.
    pub fn claim_dir(&self, ns: &str, claim: &str) -> PathBuf {
        self.dir.join("pvcs").join(ns).join(claim)
    }

    /// A dynamic provisioner: every unbound claim gets a hostPath PersistentVolume of its size,
    /// pre-bound to it, which the real PV controller then binds.
    async fn provision_claims(self: Arc<Self>) {
        let claims: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut events = watcher(claims, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(claim)) = events.next().await {
            let spec = claim.spec.clone().unwrap_or_default();
            if spec.volume_name.is_some() || claim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let (ns, name, uid) = (
                claim.metadata.namespace.clone().unwrap_or_default(),
                claim.metadata.name.clone().unwrap_or_default(),
                claim.metadata.uid.clone().unwrap_or_default(),
            );
            let dir = self.claim_dir(&ns, &name);
            let _ = std::fs::create_dir_all(&dir);
            let size = spec
                .resources
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").cloned())
                .map_or("1Gi".to_string(), |q| q.0);
            let pv = json!({"metadata": {"name": format!("pvc-{uid}")}, "spec": {
                "capacity": {"storage": size}, "accessModes": spec.access_modes.unwrap_or_default(),
                "hostPath": {"path": dir.display().to_string()}, "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec.storage_class_name.unwrap_or_default(),
                "claimRef": {"namespace": ns, "name": name, "uid": uid}}});
            if let Ok(pv) = serde_json::from_value::<PersistentVolume>(pv) {
                let _ = volumes.create(&PostParams::default(), &pv).await;
            }
        }
    }

    /// Confirms a pod's deletion, as a kubelet does once its containers are gone (grace period
    /// 0), and drops it from the registry and from the other pods' /etc/hosts.
    async fn forget(&self, ns: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let _ = api
            .delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await;
        self.registry
            .pods
            .lock()
            .expect("registry lock")
            .remove(&(ns.to_string(), name.to_string()));
        self.registry.refresh_hosts();
    }

    fn next_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::SeqCst);
        format!("127.1.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }
}
