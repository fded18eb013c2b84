//! Rendering: a resolved step and one task attempt -> the k8s-openapi `Job` that runs it.
//!
//! Every field taken from a resolved value is noted with its source, which is what
//! `render --explain` prints.

mod metadata;
mod pod;
mod resources;
mod yaml;

pub use pod::{START_ALLOWANCE_SECONDS, active_deadline};
pub use yaml::{YamlError, to_yaml};

use crate::invocation::TaskInvocation;
use crate::names;
use crate::resolve::{Resolved, Source};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How the step's binary reaches the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binary {
    /// The image already holds the binary at this path.
    InImage {
        /// Absolute path inside the image.
        path: String,
    },
    /// An init container downloads it into an emptyDir and checks its hash.
    Fetched {
        /// Where to download it from (a presigned datastore URL).
        url: String,
        /// Its expected sha256, lower-case hex.
        sha256: String,
    },
}

/// One node of a multi-node (`.parallel`) step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParallelNode {
    /// This node's index; 0 is the main node.
    pub index: u32,
    /// How many nodes the step runs on.
    pub size: u32,
}

/// One attempt of one task: what the Job runs, beyond the step's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The flow's name.
    pub flow: String,
    /// What the step container runs: the attempt's identity and its command line.
    pub invocation: TaskInvocation,
    /// Extra environment for the step (datastore settings), in order.
    pub env: Vec<(String, String)>,
    /// How the binary arrives.
    pub binary: Binary,
    /// `kubernetes.io/arch` of the binary, when known.
    pub arch: Option<String>,
    /// Set for the nodes of a multi-node step.
    pub parallel: Option<ParallelNode>,
}

impl Task {
    /// The Job's name: deterministic, so a retried create finds the Job it already made.
    pub fn job_name(&self) -> String {
        let inv = &self.invocation;
        let task = match &self.parallel {
            Some(node) => format!("{}-{}", inv.task_id, node.index),
            None => inv.task_id.clone(),
        };
        names::job_name(&self.flow, &inv.run_id, &inv.step, &task, inv.attempt)
    }

    /// The headless Service that gives the nodes of a multi-node step their DNS names.
    pub fn service_name(&self) -> String {
        let inv = &self.invocation;
        names::job_name(
            &self.flow,
            &inv.run_id,
            &inv.step,
            &inv.task_id,
            inv.attempt,
        )
    }
}

/// One rendered field and where its value came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The field's path in the Job, such as `spec.template.spec.containers[0].resources.requests.cpu`.
    pub field: String,
    /// The value as rendered.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// A rendered Job and the provenance of its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The Job.
    pub job: Job,
    /// One entry per field taken from the step's settings, in render order.
    pub explain: Vec<Explained>,
}

/// Collects the provenance of rendered fields.
#[derive(Default)]
pub(crate) struct Notes(Vec<Explained>);

impl Notes {
    pub(crate) fn note(&mut self, field: impl Into<String>, value: impl ToString, source: &Source) {
        self.0.push(Explained {
            field: field.into(),
            value: value.to_string(),
            source: source.clone(),
        });
    }
}

const POD: &str = "spec.template.spec";

/// Renders the Job of one task attempt.
pub fn job(step: &Resolved, task: &Task) -> Rendered {
    let mut notes = Notes::default();
    let name = task.job_name();
    notes.note(
        "metadata.namespace",
        &step.namespace.value,
        &step.namespace.source,
    );
    metadata::explain(step, &mut notes);
    let meta = metadata::object_meta(step, task);
    let pod_spec = pod::pod_spec(step, task, &mut notes);
    if let Some(t) = step.timeout_seconds {
        notes.note(
            format!("{POD}.activeDeadlineSeconds"),
            active_deadline(t),
            &Source::Timeout,
        );
    }
    let ttl = &step.settings.job_ttl_seconds;
    notes.note("spec.ttlSecondsAfterFinished", ttl.value, &ttl.source);
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(step.namespace.value.clone()),
            ..meta.clone()
        },
        spec: Some(JobSpec {
            // kubestep retries itself, so it can tell a user failure from an infrastructure one.
            backoff_limit: Some(0),
            completions: Some(1),
            parallelism: Some(1),
            ttl_seconds_after_finished: Some(ttl.value),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    namespace: None,
                    ..meta
                }),
                spec: Some(pod_spec),
            },
            ..JobSpec::default()
        }),
        status: None,
    };
    Rendered {
        job,
        explain: notes.0,
    }
}

/// The headless Service that lets the nodes of a multi-node step find each other by name
/// (`<job>.<service>`), as a JobSet's does.
pub fn parallel_service(step: &Resolved, task: &Task) -> Service {
    // Every node of this attempt, not just the one `task` describes.
    let mut meta = metadata::object_meta(step, task);
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(crate::labels::NODE_INDEX);
    }
    let mut selector = metadata::system_labels(task);
    selector.remove(crate::labels::NODE_INDEX);
    Service {
        metadata: ObjectMeta {
            name: Some(task.service_name()),
            namespace: Some(step.namespace.value.clone()),
            ..meta
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector),
            ports: step.port.as_ref().map(|p| {
                vec![ServicePort {
                    port: p.value.into(),
                    name: Some(crate::labels::PORT_NAME.into()),
                    ..Default::default()
                }]
            }),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests;
