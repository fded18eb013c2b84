//! What each `#[kubernetes]` parameter does inside the pod: every step reports what its process
//! sees (its cgroup limits, mounts, capabilities, user, variables, image), and the end-to-end
//! tests compare that with the parameters and with the live Pod.
//!
//! ```text
//! cargo run --example pod_effects -- run --with kubernetes --datastore s3
//! cargo run --example pod_effects -- logs RUN_ID/sized
//! ```
use kubestep::prelude::*;
use std::collections::BTreeMap;

/// What a step's process sees of its pod, one entry per fact: `env.NAME` (the variables
/// kubestep and the parameters set), `status.Uid` and the other privilege lines of
/// `/proc/self/status`, `mount.PATH` (filesystem type and options), `cgroup.cpu.max` and
/// `cgroup.memory.max` (the container's cgroup limits, in cgroup v2's form), `image` (the test cluster's images
/// name themselves in `/etc/kubestep-image`; the default has none), `temp_dir`
/// (`kubestep::temp_dir()`), and `file`/`read` for the claim shared by two steps.
pub type Seen = BTreeMap<String, String>;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn look() -> Seen {
    let mut seen = Seen::new();
    for (k, v) in std::env::vars() {
        if k.starts_with("KUBESTEP_")
            || ["TMPDIR", "EXAMPLE_TOKEN", "NVIDIA_VISIBLE_DEVICES"].contains(&k.as_str())
        {
            seen.insert(format!("env.{k}"), v);
        }
    }
    for line in read("/proc/self/status").unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once(':')
            && (["Uid", "Gid", "NoNewPrivs", "Seccomp"].contains(&k) || k.starts_with("Cap"))
        {
            seen.insert(format!("status.{k}"), v.trim().to_string());
        }
    }
    // /proc/self/mounts: "source point type options 0 0".
    for line in read("/proc/self/mounts").unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if let [_, point, kind, options, ..] = f[..] {
            seen.insert(format!("mount.{point}"), format!("{kind} {options}"));
        }
    }
    // cgroup v2's files, or v1's (each hierarchy mounted with the container's own group at its
    // root) in v2's form.
    let v1 = |f: &str| read(&format!("/sys/fs/cgroup/{f}"));
    let cpu = v1("cpu.max").or_else(|| {
        let quota = v1("cpu/cpu.cfs_quota_us")?;
        let period = v1("cpu/cpu.cfs_period_us")?;
        Some(format!(
            "{} {period}",
            if quota == "-1" { "max" } else { &quota }
        ))
    });
    let memory = v1("memory.max").or_else(|| v1("memory/memory.limit_in_bytes"));
    for (k, v) in [("cgroup.cpu.max", cpu), ("cgroup.memory.max", memory)] {
        if let Some(v) = v {
            seen.insert(k.into(), v);
        }
    }
    if let Some(image) = read("/etc/kubestep-image") {
        seen.insert("image".into(), image);
    }
    seen.insert(
        "temp_dir".into(),
        kubestep::temp_dir().display().to_string(),
    );
    seen
}

/// No parameters: kubestep's defaults (seccomp, no capabilities, 64 MiB of /dev/shm).
#[step]
fn start() -> Seen {
    look()
}

/// Sizes, a Secret, metadata and a port, in a Guaranteed pod.
#[kubernetes(
    cpu = 2, memory = 1024, disk = 2048, shared_memory = 128, qos = "Guaranteed",
    secrets = ["aws-creds"], port = 8080,
    labels = { "team": "ml" }, annotations = { "owner": "ana@example.com" },
)]
fn sized(_: Seen) -> Seen {
    look()
}

/// kubestep's default QoS class.
#[kubernetes(cpu = 1, memory = 512)]
fn burstable(_: Seen) -> Seen {
    look()
}

/// No requests at all.
#[kubernetes(qos = "BestEffort")]
fn best_effort(_: Seen) -> Seen {
    look()
}

/// One GPU: the device plugin's allocation arrives as NVIDIA_VISIBLE_DEVICES.
#[kubernetes(gpu = 1)]
fn on_gpu(_: Seen) -> Seen {
    look()
}

/// Kept off GPU nodes, the untainted one included.
#[kubernetes(gpu = 0)]
fn off_gpu(_: Seen) -> Seen {
    look()
}

/// Another image, pulled again on the node `by_string` ran it on.
#[kubernetes(
    image = "ghcr.io/acme/train:1.4", image_pull_policy = "Always",
    node_selector = { "kubernetes.io/hostname": "node-a" },
)]
fn own_image(_: Seen) -> Seen {
    look()
}

/// A private registry's image, in another namespace and ServiceAccount.
#[kubernetes(
    image = "registry.example.com/acme/sorter:1.4", image_pull_secrets = ["regcred"],
    namespace = "data", service_account = "sorter",
)]
fn elsewhere(_: Seen) -> Seen {
    look()
}

/// A node selector as a string: only `node-a` has the label. (The image is pulled there.)
#[kubernetes(node_selector = "disktype=ssd", image = "ghcr.io/acme/train:1.4")]
fn by_string(_: Seen) -> Seen {
    look()
}

/// A node selector as a map.
#[kubernetes(node_selector = { "kubernetes.io/hostname": "gpu-open" })]
fn by_map(_: Seen) -> Seen {
    look()
}

/// A compute pool: only the (tainted) `gpu-node` is in `a100`.
#[kubernetes(
    compute_pool = "a100",
    tolerations = [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
)]
fn in_pool(_: Seen) -> Seen {
    look()
}

/// The spot node's taint, which only this toleration permits.
#[kubernetes(
    tolerations = [{ key: "spot", operator: "Equal", value: "true", effect: "NoExecute" }],
    node_selector = { "kubernetes.io/hostname": "spot-node" },
)]
fn tolerant(_: Seen) -> Seen {
    look()
}

/// Writes a file on a claim, for the next step's pod to read.
#[kubernetes(persistent_volume_claims = { "datasets": "/data" })]
fn writer(_: Seen) -> Seen {
    let pod = kubestep::pod().expect("a pod");
    let path = format!("/data/pod-effects-{}.txt", pod.uid);
    std::fs::write(&path, &pod.name).expect("the claim is writable");
    let mut seen = look();
    seen.insert("file".into(), path);
    seen
}

/// Reads what the previous step's pod wrote on the same claim.
#[kubernetes(persistent_volume_claims = { "datasets": "/data" })]
fn reader(written: Seen) -> Seen {
    let path = &written["file"];
    let mut seen = look();
    seen.insert("read".into(), read(path).unwrap_or_default());
    let _ = std::fs::remove_file(path);
    seen
}

/// A tmpfs of 64 MiB at /scratch, which TMPDIR points at.
#[kubernetes(
    use_tmpfs = true,
    tmpfs_size = 64,
    tmpfs_path = "/scratch",
    tmpfs_tempdir = true
)]
fn scratch(_: Seen) -> Seen {
    look()
}

/// Every capability, no seccomp filter.
#[kubernetes(security_context = { privileged: true })]
fn privileged(_: Seen) -> Seen {
    look()
}

/// A user and group of its own, in a namespace that enforces the `restricted` Pod Security level.
#[kubernetes(
    security_context = { run_as_non_root: true, run_as_user: 1000, run_as_group: 1000 },
    namespace = "psa-restricted",
)]
fn non_root(_: Seen) -> Seen {
    look()
}

fn main() {
    Flow::new("pod-effects")
        .start(start)
        .then(sized)
        .then(burstable)
        .then(best_effort)
        .then(on_gpu)
        .then(off_gpu)
        .then(by_string)
        .then(own_image)
        .then(elsewhere)
        .then(by_map)
        .then(in_pool)
        .then(tolerant)
        .then(writer)
        .then(reader)
        .then(scratch)
        .then(privileged)
        .then(non_root)
        .main()
}
