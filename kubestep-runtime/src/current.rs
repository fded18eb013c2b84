//! Inside a running step: the task and attempt it is, the pod it runs in (read from the
//! `KUBESTEP_KUBERNETES_*` variables the Job gives its container through the downward API), its
//! place in a multi-node step's gang, and the temp dir it should use.

use std::path::PathBuf;
use std::sync::OnceLock;

pub use kubestep_core::parallel::{BadVar, Member};

/// The task a step process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The step.
    pub step: String,
    /// The run.
    pub run_id: String,
    /// The task id within the step (a multi-node step's member: its rank).
    pub task_id: String,
    /// The attempt, from 0: 1 is the first retry.
    pub attempt: u32,
}

static TASK: OnceLock<Task> = OnceLock::new();

/// The task this process runs, or `None` outside a step (the orchestrator, a test).
pub fn task() -> Option<&'static Task> {
    TASK.get()
}

/// Called once by the `step` command before the step's code runs.
pub(crate) fn set_task(task: Task) {
    let _ = TASK.set(task);
}

/// This step's place in a multi-node (`.parallel`) step: its rank, the member count and the
/// control member's address and port. The same values are in the variables PyTorch's `env://`
/// rendezvous and torchrun read (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`,
/// `NODE_RANK`, `NNODES`). `None` for any other step.
///
/// On Kubernetes `main_addr` is the control member's DNS name under its gang's headless Service;
/// locally every member runs on this machine and it is `127.0.0.1`. Before a worker's code runs,
/// kubestep has already waited (at most `hostname_resolution_timeout`) for that name to resolve
/// and, when the step sets `port`, for the port to accept a connection: that probe connects and
/// closes at once, so a control member's server sees one empty connection first.
///
/// # Errors
/// A variable that is set but holds no valid value (one the user overrode by hand).
pub fn parallel() -> Result<Option<Member>, BadVar> {
    Member::from_env(|k| std::env::var(k).ok())
}

/// The pod a step runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The node's IP (`status.hostIP`).
    pub node_ip: String,
    /// The pod's service account, when the step set one.
    pub service_account: Option<String>,
}

/// The pod this step runs in, or `None` when it does not run on Kubernetes.
pub fn pod() -> Option<Pod> {
    pod_from(|k| std::env::var(k).ok())
}

fn pod_from(var: impl Fn(&str) -> Option<String>) -> Option<Pod> {
    if var("KUBESTEP_KUBERNETES_WORKLOAD").as_deref() != Some("1") {
        return None;
    }
    let get = |k: &str| var(&format!("KUBESTEP_KUBERNETES_{k}")).unwrap_or_default();
    Some(Pod {
        name: get("POD_NAME"),
        namespace: get("POD_NAMESPACE"),
        uid: get("POD_ID"),
        node_ip: get("NODE_IP"),
        service_account: var("KUBESTEP_KUBERNETES_SERVICE_ACCOUNT_NAME").filter(|s| !s.is_empty()),
    })
}

/// Where the step should put temporary files: the pod's tmpfs when the step asked for one with
/// `use_tmpfs`/`tmpfs_tempdir`, else the system's temp dir.
pub fn temp_dir() -> PathBuf {
    std::env::var_os("KUBESTEP_TEMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_comes_from_the_downward_api_variables() {
        let env = |k: &str| {
            match k {
                "KUBESTEP_KUBERNETES_WORKLOAD" => Some("1"),
                "KUBESTEP_KUBERNETES_POD_NAME" => Some("job-abc"),
                "KUBESTEP_KUBERNETES_POD_NAMESPACE" => Some("ml"),
                "KUBESTEP_KUBERNETES_POD_ID" => Some("uid-1"),
                "KUBESTEP_KUBERNETES_NODE_IP" => Some("10.0.0.1"),
                _ => None,
            }
            .map(str::to_string)
        };
        let pod = pod_from(env).unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str()),
            ("job-abc", "ml")
        );
        assert_eq!(pod.service_account, None);
        assert_eq!(pod_from(|_| None), None);
    }
}
