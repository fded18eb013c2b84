//! The names kubestep and Kubernetes agree on: kubestep's label and annotation keys, the label
//! selector that finds a flow's objects, and the names inside a pod that the renderer writes and
//! the runtime reads back. Written once here; render, the executor, the CLI and the tests use them.

use crate::names::to_label_value;
use std::fmt;

/// kubestep's own prefix; user labels and annotations may not use it.
pub const PREFIX: &str = "kubestep.io/";
/// The well-known key naming the tool that manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value on everything kubestep creates.
pub const MANAGER: &str = "kubestep";
/// The flow (sanitised as a label value; the annotation keeps the exact name).
pub const FLOW: &str = "kubestep.io/flow";
/// The run id.
pub const RUN_ID: &str = "kubestep.io/run-id";
/// The step.
pub const STEP: &str = "kubestep.io/step";
/// The task id within the step.
pub const TASK_ID: &str = "kubestep.io/task-id";
/// The attempt, from 0.
pub const ATTEMPT: &str = "kubestep.io/attempt";
/// The label (and annotation) the Job controller gives each pod of an Indexed Job: its rank,
/// which is its task id when the Job is a multi-node step's gang.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// On a detached run's orchestrator Job and pod (`true`), and its schedule's CronJob: what runs
/// the run rather than one of its tasks.
pub const ORCHESTRATOR: &str = "kubestep.io/orchestrator";
/// On a schedule's CronJob and its Jobs: the schedule's name.
pub const SCHEDULE: &str = "kubestep.io/schedule";
/// The label the Job controller puts on a Job's pods, naming the Job (Kubernetes 1.27+).
pub const BATCH_JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The node label `compute_pool` selects on unless `KUBESTEP_KUBERNETES_COMPUTE_POOL_LABEL`
/// names another.
pub const COMPUTE_POOL: &str = "kubestep.io/compute-pool";
/// The node label of a node's CPU architecture.
pub const ARCH: &str = "kubernetes.io/arch";
/// The label the Job controller puts on a Job's pods.
pub const JOB_NAME: &str = "job-name";

/// Label and annotation keys kubestep sets itself; a user's may not take them.
pub const RESERVED_PREFIXES: [&str; 2] = [PREFIX, MANAGED_BY];
/// The annotations of a task's objects: the exact (unsanitised) names its labels may shorten.
pub fn annotations<'a>(
    flow: &'a str,
    inv: &'a crate::invocation::TaskInvocation,
) -> [(&'static str, &'a str); 4] {
    [
        (FLOW, flow),
        (RUN_ID, &inv.run_id),
        (STEP, &inv.step),
        (TASK_ID, &inv.task_id),
    ]
}

/// The init container that fetches the step binary.
pub const FETCH_CONTAINER: &str = "fetch-binary";
/// The emptyDir the binary is fetched into.
pub const BIN_VOLUME: &str = "kubestep-bin";
/// The name of the step container's port (and of its Service port).
pub const PORT_NAME: &str = "main";

/// The label selector of a flow's objects: `managed-by=kubestep,flow=F[,run-id=R]`,
/// each value sanitised as the renderer sanitises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    flow: String,
    run_id: Option<String>,
}

impl Selector {
    /// Every object of `flow`.
    pub fn flow(flow: &str) -> Selector {
        Selector {
            flow: flow.to_string(),
            run_id: None,
        }
    }

    /// Only run `run_id`'s.
    pub fn run(mut self, run_id: &str) -> Selector {
        self.run_id = Some(run_id.to_string());
        self
    }

    /// The labels an object needs to match it.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        let mut l = std::collections::BTreeMap::from([
            (MANAGED_BY.to_string(), MANAGER.to_string()),
            (FLOW.to_string(), to_label_value(&self.flow)),
        ]);
        if let Some(run) = &self.run_id {
            l.insert(RUN_ID.to_string(), to_label_value(run));
        }
        l
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MANAGED_BY}={MANAGER},{FLOW}={}",
            to_label_value(&self.flow)
        )?;
        if let Some(run) = &self.run_id {
            write!(f, ",{RUN_ID}={}", to_label_value(run))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_sanitises_like_the_renderer() {
        let s = Selector::flow("Train Flow").run("17").to_string();
        assert_eq!(
            s,
            format!(
                "app.kubernetes.io/managed-by=kubestep,kubestep.io/flow={},kubestep.io/run-id=17",
                to_label_value("Train Flow")
            )
        );
    }
}
