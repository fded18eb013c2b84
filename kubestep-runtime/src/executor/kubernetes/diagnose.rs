//! Reading a pod's status: is it waiting (and why), stuck for good, running, or over (and
//! why). Pure functions of the `Pod` the watch delivered, so every cause is unit-tested.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kubestep_core::render::START_ALLOWANCE_SECONDS;

/// The init container that fetches the binary.
pub use kubestep_core::labels::FETCH_CONTAINER as FETCH;

/// Where a task's pod is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not running yet; the note says why when Kubernetes says (the scheduler's message).
    Waiting(Option<String>),
    /// It will never run without a change: a bad image, a missing secret. Fail now.
    Stuck(String),
    /// The step's container runs.
    Running,
    /// It ended.
    Ended(End),
}

/// How a pod ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The step exited 0.
    Succeeded,
    /// The step failed; `#[retry]` applies.
    Failed(String),
    /// The platform took it away (eviction, preemption, a lost node): retried apart.
    Lost(String),
}

/// What the diagnosis needs beyond the pod: the memory limit and timeout it ran with.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// The step's name, for the advice in messages.
    pub step: String,
    /// The memory limit as rendered (`4096M`), if any.
    pub memory: Option<String>,
    /// `#[timeout]` in seconds, if any.
    pub timeout_seconds: Option<u64>,
}

/// The container that runs the step: a step's pod has exactly one (named after the step).
pub fn step_container(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map_or("", |c| c.name.as_str())
}

/// Whether the step's container has started (it runs or has ended), so it has a log.
pub fn step_started(pod: &Pod) -> bool {
    statuses(pod, false).any(|c| {
        c.name == step_container(pod)
            && c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    })
}

/// Whether the step's container has ended.
pub fn step_ended(pod: &Pod) -> bool {
    statuses(pod, false).any(|c| {
        c.name == step_container(pod) && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
    })
}

fn statuses(pod: &Pod, init: bool) -> impl Iterator<Item = &ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| {
            if init {
                s.init_container_statuses.as_ref()
            } else {
                s.container_statuses.as_ref()
            }
        })
        .into_iter()
        .flatten()
}

fn image_of(pod: &Pod, container: &str) -> String {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container)
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Reasons a waiting container gives that no amount of waiting fixes.
fn stuck(pod: &Pod, c: &ContainerStatus) -> Option<String> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let message = waiting.message.as_deref().unwrap_or("");
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
            Some(format!(
                "cannot pull image `{}` of container {} ({reason}): {message}",
                image_of(pod, &c.name),
                c.name
            ))
        }
        "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => Some(
            format!("container {} cannot start ({reason}): {message}", c.name),
        ),
        _ => None,
    }
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// Where the pod is. `last_line` is the last line the step printed, for failure messages.
pub fn phase(pod: &Pod, limits: &Limits, last_line: Option<&str>) -> Phase {
    let status = pod.status.clone().unwrap_or_default();
    match status.phase.as_deref() {
        Some("Succeeded") => return Phase::Ended(End::Succeeded),
        Some("Failed") => return Phase::Ended(failed(pod, limits, last_line)),
        Some("Unknown") => {
            return Phase::Ended(End::Lost(format!(
                "the node of pod {} stopped reporting (phase Unknown){}",
                name(pod),
                status.message.map(|m| format!(": {m}")).unwrap_or_default()
            )));
        }
        _ => {}
    }
    // kubestep deletes Jobs, never pods of a running attempt: a pod being deleted is being
    // taken away (a drain, an eviction, the node lifecycle controller for a lost node).
    // Who took it says so in a DisruptionTarget condition (EvictionByEvictionAPI,
    // PreemptionByScheduler, DeletionByTaintManager, TerminationByKubelet, ...).
    if pod.metadata.deletion_timestamp.is_some() {
        let who = condition(pod, "DisruptionTarget")
            .filter(|c| c.status == "True")
            .map(|c| match (c.reason.as_deref(), c.message.as_deref()) {
                (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
                (r, _) => r.unwrap_or("DisruptionTarget").to_string(),
            });
        return Phase::Ended(End::Lost(match who {
            Some(who) => format!(
                "pod {} was taken away before it finished ({who})",
                name(pod)
            ),
            None => format!(
                "pod {} is being deleted before it finished (drained, evicted, or its node was lost)",
                name(pod)
            ),
        }));
    }
    for c in statuses(pod, true).chain(statuses(pod, false)) {
        if let Some(cause) = stuck(pod, c) {
            return Phase::Stuck(cause);
        }
    }
    if step_started(pod) {
        return Phase::Running;
    }
    let scheduled = condition(pod, "PodScheduled");
    if let Some(c) = scheduled.filter(|c| c.status == "False") {
        let message = c.message.clone().unwrap_or_default();
        let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
        let hint = architecture_hint(pod, &message).unwrap_or_default();
        return Phase::Waiting(Some(format!("{reason}: {message}{hint}")));
    }
    Phase::Waiting(None)
}

/// When no node matched the pod's selector and the selector is only the executable's
/// architecture (`kubernetes.io/arch`, from its ELF header; with selectors or affinity of the
/// user's own, those may be the cause), the likely fix: a binary built on an arm64 laptop meets
/// amd64 nodes, or the other way round.
fn architecture_hint(pod: &Pod, message: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let selector = spec.node_selector.as_ref()?;
    let arch = selector.get("kubernetes.io/arch")?;
    if selector.len() > 1 || spec.affinity.is_some() {
        return None;
    }
    message.contains("node affinity/selector").then(|| {
        let other = if arch == "amd64" { "aarch64" } else { "x86_64" };
        format!(
            " (this executable is built for {arch}, so its pods ask for kubernetes.io/arch={arch}; if the nodes are of another architecture, run the flow from a machine of theirs, or build for theirs (for example `cargo zigbuild --release --target {other}-unknown-linux-gnu.2.36`) and bake that build into the step image with KUBESTEP_KUBERNETES_BINARY_IN_IMAGE)"
        )
    })
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

/// Why a scheduled pod's containers are not running yet (`ContainerCreating`,
/// `PodInitializing`, ...), for a message when it never starts.
pub fn waiting_reason(pod: &Pod) -> Option<String> {
    statuses(pod, true)
        .chain(statuses(pod, false))
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "container {} is waiting ({})",
                c.name,
                w.reason.as_deref().unwrap_or("no reason given")
            ))
        })
}

/// The init container that failed, if one did: its log holds the cause.
pub fn failed_init_container(pod: &Pod) -> Option<String> {
    statuses(pod, true)
        .find(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0)
        })
        .map(|c| c.name.clone())
}

/// Why a pod in phase Failed failed.
fn failed(pod: &Pod, limits: &Limits, last_line: Option<&str>) -> End {
    let status = pod.status.clone().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    let disruption = condition(pod, "DisruptionTarget").filter(|c| c.status == "True");
    match status.reason.as_deref() {
        Some("DeadlineExceeded") => {
            // The step stops itself at its #[timeout]; the pod's deadline, which also counts
            // the pod's start, passes first only when the step never got going.
            return End::Failed(format!(
                "the pod's activeDeadlineSeconds passed before step `{}` {}: {message}",
                limits.step,
                match limits.timeout_seconds {
                    Some(t) => format!(
                        "could time out itself ({t} s #[timeout], plus {START_ALLOWANCE_SECONDS} s to start)"
                    ),
                    None => "finished".into(),
                }
            ));
        }
        // The kubelet evicts a pod that overruns its own ephemeral-storage limit or an emptyDir's
        // size: the step's doing, not the platform's, so `#[retry]` applies and the limit is said.
        Some("Evicted") if storage_overrun(&message) => {
            return End::Failed(format!(
                "evicted for its disk use: {message} Raise it with #[kubernetes(disk = ...)] (MB) or `--with {}/kubernetes:disk=N` (tmpfs_size or shared_memory for a memory volume)",
                limits.step
            ));
        }
        Some(
            r @ ("Evicted"
            | "Preempting"
            | "NodeLost"
            | "Terminated"
            | "Shutdown"
            | "NodeShutdown"
            | "UnexpectedAdmissionError"
            | "OutOfpods"
            | "OutOfcpu"
            | "OutOfmemory"),
        ) => {
            return End::Lost(format!("pod {} {r}: {message}", name(pod)));
        }
        _ => {}
    }
    if let Some(d) = disruption {
        return End::Lost(format!(
            "pod {} was disrupted ({}): {}",
            name(pod),
            d.reason.as_deref().unwrap_or("DisruptionTarget"),
            d.message.as_deref().unwrap_or_default()
        ));
    }
    for c in statuses(pod, true) {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            // The fetch script's last line names a hash mismatch; the orchestrator passes it.
            let why = t
                .message
                .clone()
                .or_else(|| last_line.map(str::to_string))
                .unwrap_or_default();
            return End::Failed(if c.name == FETCH {
                format!(
                    "the init container that fetches the step binary failed (exit code {}){}",
                    t.exit_code,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                )
            } else {
                format!("init container {} exited {}: {why}", c.name, t.exit_code)
            });
        }
    }
    let main = statuses(pod, false)
        .find(|c| c.name == step_container(pod))
        .and_then(|c| c.state.as_ref()?.terminated.clone());
    let Some(t) = main else {
        return End::Failed(format!(
            "pod {} failed before its step ran{}",
            name(pod),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ));
    };
    // The runtime could not start the binary: containerd reports `StartError`, or (runc 1.1)
    // the container's init prints `exec <command>: <errno>` and exits 1.
    if t.reason.as_deref() == Some("StartError") {
        return End::Failed(start_error(pod, t.message.as_deref().unwrap_or_default()));
    }
    if let Some(l) = last_line
        && let Some(command) = step_command(pod)
        && l.starts_with(&format!("exec {command}: "))
    {
        return End::Failed(start_error(pod, l));
    }
    if crate::task::stopped_by_timeout(Some(t.exit_code), last_line) {
        return End::Failed(super::super::timed_out(
            &limits.step,
            limits.timeout_seconds.unwrap_or_default(),
        ));
    }
    if t.reason.as_deref() == Some("OOMKilled") {
        let limit = limits.memory.as_deref().unwrap_or("its limit");
        return End::Failed(format!(
            "OOMKilled: step `{step}` used more memory than its limit of {limit}; raise it with \
             #[kubernetes(memory = ...)] or #[resources(memory = ...)] (MB), or \
             `--with {step}/kubernetes:memory=N`",
            step = limits.step
        ));
    }
    let how = match t.signal {
        Some(s) if t.exit_code == 128 + s => format!("killed by signal {s}"),
        _ => format!("exit code {}", t.exit_code),
    };
    End::Failed(match last_line {
        Some(l) => format!("{how}: {}", l.strip_prefix("error: ").unwrap_or(l)),
        None => how,
    })
}

/// Whether an eviction message is the kubelet's for a pod over its own limits (its containers'
/// ephemeral storage, an emptyDir's size), not for a node under pressure.
fn storage_overrun(message: &str) -> bool {
    [
        "exceeds the total limit of containers",
        "exceeded its local ephemeral storage limit",
        "Usage of EmptyDir volume",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The executable the step's container runs.
fn step_command(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .command
        .as_ref()?
        .first()
        .map(String::as_str)
}

/// Why the runtime could not start the step's process (`StartError`, exit 128), with the
/// likely cause named.
fn start_error(pod: &Pod, message: &str) -> String {
    let image = image_of(pod, step_container(pod));
    let likely = if message.contains("exec format error") {
        "the step binary was built for another architecture than the node's; build it for the \
         node's (for example --target x86_64-unknown-linux-gnu) or select nodes of its \
         architecture"
    } else if message.contains("no such file or directory") {
        "the image lacks the binary's loader or a library it links (a glibc binary in a musl or \
         distroless image); use an image with the binary's libc, or build a static binary"
    } else if message.contains("permission denied") {
        "the binary is not executable for the container's user (a noexec mount, or a file \
         mode the user cannot run)"
    } else {
        "the container runtime refused to start it"
    };
    format!("the step could not start in image `{image}`: {likely} ({message})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "train", "image": "nope:1"}],
                     "initContainers": [{"name": "fetch-binary", "image": "curl"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn limits() -> Limits {
        Limits {
            step: "train".into(),
            memory: Some("4096M".into()),
            timeout_seconds: Some(30),
        }
    }

    #[test]
    fn a_pod_taken_away_is_lost_and_says_who_took_it() {
        let mut p = pod(
            json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}),
        );
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(
            phase(&p, &limits(), None),
            Phase::Ended(End::Lost(
                "pod p was taken away before it finished (EvictionByEvictionAPI: Eviction API: evicting)".into()
            ))
        );
        p.status = None;
        assert!(matches!(
            phase(&p, &limits(), None),
            Phase::Ended(End::Lost(m)) if m.contains("is being deleted before it finished")
        ));
    }

    #[test]
    fn unschedulable_is_a_waiting_note_with_the_schedulers_message() {
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}),
        );
        assert_eq!(
            phase(&p, &limits(), None),
            Phase::Waiting(Some(
                "Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.".into()
            ))
        );
    }

    #[test]
    fn no_node_of_the_executables_architecture_says_how_to_build_for_theirs() {
        let mut p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        p.spec.as_mut().unwrap().node_selector =
            Some([("kubernetes.io/arch".to_string(), "arm64".to_string())].into());
        let Phase::Waiting(Some(note)) = phase(&p, &limits(), None) else {
            panic!("not waiting")
        };
        assert!(
            note.ends_with("(this executable is built for arm64, so its pods ask for kubernetes.io/arch=arm64; if the nodes are of another architecture, run the flow from a machine of theirs, or build for theirs (for example `cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.36`) and bake that build into the step image with KUBESTEP_KUBERNETES_BINARY_IN_IMAGE)"),
            "{note}"
        );
        // With a selector of the user's own, that may be what no node matches: no hint.
        p.spec
            .as_mut()
            .unwrap()
            .node_selector
            .as_mut()
            .unwrap()
            .insert("disktype".into(), "ssd".into());
        let Phase::Waiting(Some(note)) = phase(&p, &limits(), None) else {
            panic!("not waiting")
        };
        assert!(!note.contains("executable"), "{note}");
        // Another reason to be unschedulable gets no such hint.
        let gpu = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]}),
        );
        let Phase::Waiting(Some(note)) = phase(&gpu, &limits(), None) else {
            panic!("not waiting")
        };
        assert!(!note.contains("executable"), "{note}");
    }

    #[test]
    fn image_pull_and_config_errors_are_stuck_and_named() {
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "train",
            "ready": false, "restartCount": 0, "image": "nope:1", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}]}),
        );
        let Phase::Stuck(cause) = phase(&p, &limits(), None) else {
            panic!()
        };
        assert!(
            cause.contains("`nope:1`") && cause.contains("ImagePullBackOff"),
            "{cause}"
        );
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "train",
            "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                                  "message": "secret \"s3\" not found"}}}]}),
        );
        let Phase::Stuck(cause) = phase(&p, &limits(), None) else {
            panic!()
        };
        assert!(cause.contains("secret \"s3\" not found"), "{cause}");
    }

    #[test]
    fn failures_name_their_cause() {
        let term = |reason: &str, code: i32| {
            pod(
                json!({"phase": "Failed", "containerStatuses": [{"name": "train",
                "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"reason": reason, "exitCode": code}}}]}),
            )
        };
        let End::Failed(oom) = failed(&term("OOMKilled", 137), &limits(), None) else {
            panic!()
        };
        assert!(
            oom.contains("4096M") && oom.contains("train/kubernetes:memory"),
            "{oom}"
        );
        assert_eq!(
            failed(&term("Error", 3), &limits(), Some("error: bad input")),
            End::Failed("exit code 3: bad input".into())
        );
        let deadline = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline"}));
        let End::Failed(t) = failed(&deadline, &limits(), None) else {
            panic!()
        };
        assert!(
            t.contains("before step `train` could time out itself (30 s"),
            "{t}"
        );
        assert_eq!(
            failed(
                &term("Error", crate::task::TIMEOUT_EXIT),
                &limits(),
                Some("kubestep: timed out after 30 s (#[timeout] of step `train`)")
            ),
            End::Failed("timed out after 30 s (#[timeout] of step `train`)".into())
        );
        assert_eq!(
            failed(&term("Error", 124), &limits(), Some("my own 124")),
            End::Failed("exit code 124: my own 124".into()),
            "a step's own exit 124 is not a timeout"
        );
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}));
        assert!(matches!(failed(&evicted, &limits(), None), End::Lost(m) if m.contains("Evicted")));
        let fetch = pod(json!({"phase": "Failed", "initContainerStatuses": [{"name":
            "fetch-binary", "ready": false, "restartCount": 0, "image": "curl", "imageID": "",
            "state": {"terminated": {"exitCode": 1, "message": "has sha256 abc, expected def"}}}]}));
        let End::Failed(f) = failed(&fetch, &limits(), None) else {
            panic!()
        };
        assert!(
            f.contains("fetches the step binary") && f.contains("expected def"),
            "{f}"
        );
    }

    #[test]
    fn succeeded_and_running() {
        assert_eq!(
            phase(&pod(json!({"phase": "Succeeded"})), &limits(), None),
            Phase::Ended(End::Succeeded)
        );
        let p = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "train",
            "ready": true, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"running": {}}}]}),
        );
        assert_eq!(phase(&p, &limits(), None), Phase::Running);
    }

    #[test]
    fn a_binary_that_cannot_start_names_the_likely_cause() {
        let p = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "train",
            "ready": false, "restartCount": 0, "image": "nope:1", "imageID": "",
            "state": {"terminated": {"exitCode": 128, "reason": "StartError",
            "message": "failed to create containerd task: exec: \"/kubestep/bin/step\": exec format error: unknown"}}}]}),
        );
        let Phase::Ended(End::Failed(cause)) = phase(&p, &limits(), None) else {
            panic!("{:?}", phase(&p, &limits(), None))
        };
        assert!(
            cause.starts_with("the step could not start in image `nope:1`: the step binary was built for another architecture"),
            "{cause}"
        );
        assert!(cause.contains("exec format error"), "{cause}");
    }

    #[test]
    fn overrunning_its_own_disk_limit_is_the_steps_failure_and_node_pressure_is_not() {
        let own = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "Pod ephemeral local storage usage exceeds the total limit of containers 1Gi."}));
        let Phase::Ended(End::Failed(cause)) = phase(&own, &limits(), None) else {
            panic!("{:?}", phase(&own, &limits(), None))
        };
        assert!(
            cause.contains("evicted for its disk use") && cause.contains("1Gi"),
            "{cause}"
        );
        assert!(cause.contains("--with train/kubernetes:disk=N"), "{cause}");
        let pressure = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: ephemeral-storage."}));
        assert!(
            matches!(
                phase(&pressure, &limits(), None),
                Phase::Ended(End::Lost(_))
            ),
            "{:?}",
            phase(&pressure, &limits(), None)
        );
    }

    #[test]
    fn runc_s_exec_failure_is_named_like_a_start_error() {
        let mut p = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "train",
            "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        p.spec.as_mut().unwrap().containers[0].command = Some(vec!["/kubestep/bin/step".into()]);
        let last = "exec /kubestep/bin/step: no such file or directory";
        let Phase::Ended(End::Failed(cause)) = phase(&p, &limits(), Some(last)) else {
            panic!()
        };
        assert!(cause.contains("lacks the binary's loader"), "{cause}");
        // A step's own last line that merely looks alike is its own.
        let Phase::Ended(End::Failed(cause)) = phase(
            &p,
            &limits(),
            Some("exec /bin/other: no such file or directory"),
        ) else {
            panic!()
        };
        assert!(cause.starts_with("exit code 1: exec /bin/other"), "{cause}");
    }
}
