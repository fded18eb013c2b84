//! Real nodes: each a kubelet with a containerd of its own (own root, state, socket and runc
//! root: a kubelet removes sandboxes it does not own), pods networked by the CNI `bridge` and
//! `host-local` plugins, images pulled from the test cluster's registries, and on GPU nodes a
//! device plugin that the kubelet itself schedules and allocates through.
//!
//! A node reports the capacity its [`NodeSpec`] asks for, not this machine's 2 cores: the
//! kubelet runs in a mount namespace of its own where `/proc/meminfo` and
//! `/sys/devices/system/node` are files we write. Only what it reports changes; the container
//! runtime enforces each pod's limits on the real machine.

use crate::registry::Registries;
use crate::{Error, Parts, cgroups, network, process};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::process::Child;

/// A node to start.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Cores it reports.
    pub cpus: u32,
    /// Memory it reports, in MiB.
    pub memory_mib: u64,
    /// `nvidia.com/gpu` devices its device plugin advertises (0: no plugin).
    pub gpus: u32,
    /// Labels it registers with.
    pub labels: BTreeMap<String, String>,
    /// Taints it registers with, as `key=value:Effect`.
    pub taints: Vec<String>,
}

impl NodeSpec {
    /// A node with 8 cores and 64 GiB, no GPU, no labels or taints.
    pub fn new(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            cpus: 8,
            memory_mib: 64 * 1024,
            gpus: 0,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> NodeSpec {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint (`key=value:Effect`).
    pub fn taint(mut self, taint: &str) -> NodeSpec {
        self.taints.push(taint.into());
        self
    }
}

/// A running node.
pub struct Node {
    /// Its spec.
    pub spec: NodeSpec,
    /// Its containerd's socket.
    pub containerd_socket: PathBuf,
    index: usize,
    dir: PathBuf,
    children: Vec<Child>,
}

/// Where every kubelet opens its device plugin socket, whatever its root directory: each
/// node's kubelet gets a directory of its own bound there in its mount namespace.
const DEVICE_PLUGINS: &str = "/var/lib/kubelet/device-plugins";

/// Every kubelet's port, on its node's own address.
const KUBELET_PORT: u16 = 10250;

/// The static token a node's kubelet authenticates with (user `system:node:<name>`).
pub fn token(name: &str) -> String {
    format!("kubestep-testenv-node-{name}")
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn mkdir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

/// `/sys/devices/system/node` as cadvisor reads it, for `cpus` cores made of this machine's
/// online cpus: fake NUMA nodes that each list the real cpus again. cadvisor counts every
/// listed cpu as a core, while every cpuset the kubelet writes still names real cpus only
/// (one node of 8 cpus would make it write `0-7` into a cgroup of a 2-cpu machine).
fn fake_numa(dir: &Path, cpus: u32, mib: u64) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(dir);
    let real = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let nodes = cpus.div_ceil(real);
    for n in 0..nodes {
        let node = dir.join(format!("node{n}"));
        mkdir(&node.join("hugepages"))?;
        for i in 0..real.min(cpus - n * real) {
            let topology = node.join(format!("cpu{i}/topology"));
            write(&topology.join("core_id"), &format!("{}\n", n * real + i))?;
            write(&topology.join("physical_package_id"), &format!("{n}\n"))?;
        }
        let distances: Vec<&str> = (0..nodes)
            .map(|m| if m == n { "10" } else { "20" })
            .collect();
        write(
            &node.join("distance"),
            &format!("{}\n", distances.join(" ")),
        )?;
        write(
            &node.join("meminfo"),
            &format!(
                "Node {n} MemTotal:       {} kB\n",
                mib * 1024 / nodes as u64
            ),
        )?;
    }
    Ok(())
}

/// This machine's `/proc/meminfo` with `MemTotal` replaced.
fn fake_meminfo(path: &Path, mib: u64) -> Result<(), Error> {
    let real = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| Error::io("/proc/meminfo".as_ref(), e))?;
    let text: String = real
        .lines()
        .map(|l| {
            if l.starts_with("MemTotal:") {
                format!("MemTotal:       {} kB\n", mib * 1024)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    write(path, &text)
}

impl Node {
    /// Writes the node's configuration and starts its containerd, kubelet and device plugin.
    pub async fn start(
        spec: NodeSpec,
        index: usize,
        state: &Path,
        parts: &Parts,
        registries: &Registries,
        server: &str,
        ca: &Path,
    ) -> Result<Node, Error> {
        let dir = state.join("nodes").join(&spec.name);
        mkdir(&dir)?;
        let mut node = Node {
            containerd_socket: dir.join("containerd.sock"),
            spec,
            index,
            dir,
            children: Vec::new(),
        };
        node.configure(registries, server, ca)?;
        node.start_processes(parts).await?;
        Ok(node)
    }

    fn configure(&self, registries: &Registries, server: &str, ca: &Path) -> Result<(), Error> {
        let d = &self.dir;
        let name = &self.spec.name;
        // containerd: everything under the node's directory, registries from hosts.toml files.
        let certs = d.join("certs.d");
        for (registry, endpoint) in registries.mirrors() {
            write(
                &certs.join(registry).join("hosts.toml"),
                &format!(
                    "# {registry} is served by the test cluster's registry, with no fallback.\nserver = \"{endpoint}\"\n\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                ),
            )?;
        }
        let (first, last) = network::pod_range(self.index);
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("kubestep-{name}"),
            "plugins": [
                {"type": "bridge", "bridge": network::BRIDGE, "isGateway": true, "ipMasq": false,
                 "hairpinMode": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": network::CLUSTER_CIDR,
                          "rangeStart": first.to_string(), "rangeEnd": last.to_string(),
                          "gateway": network::HOST_IP.to_string()}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": d.join("cni-ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        write(&d.join("cni/10-kubestep.conflist"), &cni.to_string())?;
        let p = |s: &str| d.join(s).display().to_string();
        let containerd = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # This machine withholds CAP_SYS_RESOURCE: runc cannot lower oom_score_adj otherwise.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"#,
            root = p("containerd/root"),
            state = p("containerd/state"),
            socket = self.containerd_socket.display(),
            opt = p("containerd/opt"),
            pause = crate::registry::PAUSE_IMAGE,
            runc = p("containerd/runc"),
            cni = p("cni"),
            certs = certs.display(),
        );
        write(&d.join("containerd.toml"), &containerd)?;

        // kubelet: its own root, cgroup root, logs and port; the cluster DNS Service; a
        // resolv.conf of its own so this machine's search domains stay out of pods.
        fake_numa(&d.join("fake/node"), self.spec.cpus, self.spec.memory_mib)?;
        fake_meminfo(&d.join("fake/meminfo"), self.spec.memory_mib)?;
        write(&d.join("resolv.conf"), "")?;
        let kubelet = serde_json::json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": network::node_ip(self.index).to_string(),
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {"anonymous": {"enabled": true}, "webhook": {"enabled": false}},
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": format!("/{}/{name}", cgroups::ROOT),
            "cgroupsPerQOS": true,
            "failSwapOn": false,
            "enforceNodeAllocatable": [],
            // Absolute floors: the nodes share the machine's disk with the build, and 1% of a large disk
            // is gigabytes a busy machine may not have free; pressure evictions are not under test.
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "64Mi", "nodefs.inodesFree": "1%", "imagefs.available": "64Mi"},
            // Images cannot be pulled from outside again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": false,
            "clusterDNS": [network::DNS_SERVICE_IP.to_string()],
            "clusterDomain": "cluster.local",
            "resolvConf": p("resolv.conf"),
            "containerRuntimeEndpoint": format!("unix://{}", self.containerd_socket.display()),
            "podLogsDir": p("pod-logs"),
            "nodeStatusUpdateFrequency": "4s",
            "nodeStatusReportFrequency": "10s",
            "registerWithTaints": self.spec.taints.iter().map(|t| {
                let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
                let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
                serde_json::json!({"key": key, "value": value, "effect": effect})
            }).collect::<Vec<_>>(),
        });
        write(&d.join("kubelet.json"), &kubelet.to_string())?;
        crate::control_plane::kubeconfig(&d.join("kubeconfig"), server, ca, &token(name))?;
        Ok(())
    }

    async fn start_processes(&mut self, parts: &Parts) -> Result<(), Error> {
        let d = self.dir.clone();
        let name = self.spec.name.clone();
        let cg = cgroups::create(&format!("{name}-runtime"))?;
        let log = d.join("containerd.log");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(d.join("containerd.toml"));
        let child = process::start(&d, "containerd", cmd)?;
        if let Some(pid) = child.id() {
            cgroups::enter(&cg, pid)?;
        }
        self.children.push(child);
        wait_for_socket(&self.containerd_socket, &log).await?;
        wait_for_cri(&log).await?;

        cgroups::create(&name)?;
        let mut labels = String::new();
        for (k, v) in &self.spec.labels {
            let _ = write!(
                labels,
                "{}{k}={v}",
                if labels.is_empty() { "" } else { "," }
            );
        }
        // The kubelet sees the node's own cores and memory, and a device plugin directory of the
        // node's own; its volume mounts under the node's directory still reach containerd,
        // because that directory is a shared mount.
        let script = format!(
            "set -e; mount --bind {meminfo} /proc/meminfo; mount --bind {numa} /sys/devices/system/node; \
             mkdir -p {DEVICE_PLUGINS} {plugins}; mount --bind {plugins} {DEVICE_PLUGINS}; exec \"$0\" \"$@\"",
            meminfo = d.join("fake/meminfo").display(),
            numa = d.join("fake/node").display(),
            plugins = d.join("device-plugins").display(),
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "unchanged",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .arg(&parts.kube)
        .arg("kubelet")
        .arg(format!("--config={}", d.join("kubelet.json").display()))
        .arg(format!("--kubeconfig={}", d.join("kubeconfig").display()))
        .arg(format!("--root-dir={}", d.join("kubelet").display()))
        .arg(format!("--cert-dir={}", d.join("kubelet-pki").display()))
        .arg(format!("--hostname-override={name}"))
        .arg(format!("--node-ip={}", network::node_ip(self.index)))
        .arg(format!("--node-labels={labels}"));
        self.children.push(process::start(&d, "kubelet", cmd)?);
        if self.spec.gpus > 0 {
            let mut cmd = Command::new(&parts.kube);
            cmd.arg("gpu-device-plugin")
                .arg(format!(
                    "--device-plugin-path={}",
                    d.join("device-plugins").display()
                ))
                .arg(format!("--count={}", self.spec.gpus))
                .arg(format!("--id-prefix=GPU-{name}"));
            self.children
                .push(process::start(&d, "gpu-device-plugin", cmd)?);
        }
        Ok(())
    }

    /// Fault: the node is lost. Its kubelet, containerd and device plugin stop; its
    /// containers keep running, as on a machine cut off from the cluster.
    pub async fn lose(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill().await;
        }
    }

    /// Brings a lost node back: containerd and the kubelet start again on the same state.
    pub async fn restore(&mut self, parts: &Parts) -> Result<(), Error> {
        self.lose().await;
        self.start_processes(parts).await
    }
}

/// The line containerd's CRI plugin logs as the last step before it serves: the kubelet
/// refuses to start ("server is not initialized yet") before it, which a containerd that
/// restarts with containers to recover (a restored node) reaches only after a while.
const CRI_READY: &str = "Start streaming server";

/// Waits until containerd's log (started afresh with the process) shows its CRI plugin ready.
async fn wait_for_cri(log: &Path) -> Result<(), Error> {
    for _ in 0..600 {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(CRI_READY)) {
            // It marks itself initialized right after the line.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Setup(format!(
        "containerd's CRI plugin was not ready within 30 s; see {}",
        log.display()
    )))
}

async fn wait_for_socket(socket: &Path, log: &Path) -> Result<(), Error> {
    for _ in 0..300 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Setup(format!(
        "containerd did not listen on {} within 15 s; see {}",
        socket.display(),
        log.display()
    )))
}
