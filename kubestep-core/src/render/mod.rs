//! Rendering: a resolved step and one task attempt -> the k8s-openapi `Job` that runs it.
//!
//! Every field taken from a resolved value is noted with its source, which is what
//! `render --explain` prints.

mod metadata;
pub mod orchestrator;
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
    /// As `Fetched`, from an S3 object the init container signs its request for (AWS
    /// Signature V4) with the pod's own credentials: no URL that expires, for a schedule.
    FromS3 {
        /// The object's URL, unsigned.
        url: String,
        /// The bucket's region, part of the signature.
        region: String,
        /// Its expected sha256, lower-case hex.
        sha256: String,
    },
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
    /// Set for a multi-node (`.parallel`) step: how many members its gang has. The Job is then
    /// Indexed, one pod per member, each told its rank by its completion index; `invocation`'s
    /// task id is ignored (a member's task id is its rank).
    pub gang: Option<u32>,
}

impl Task {
    /// The Job's name: deterministic, so a retried create finds the Job it already made. A
    /// gang's headless Service has the same name.
    pub fn job_name(&self) -> String {
        let inv = &self.invocation;
        match self.gang {
            Some(size) => names::gang_name(&self.flow, &inv.run_id, &inv.step, inv.attempt, size),
            None => names::job_name(
                &self.flow,
                &inv.run_id,
                &inv.step,
                &inv.task_id,
                inv.attempt,
            ),
        }
    }

    /// The command line of the step container. A gang member's task id is its rank, which the
    /// kubelet substitutes from the member's own environment (`$(VAR)` in `args`).
    pub fn args(&self) -> Vec<String> {
        match self.gang {
            Some(_) => TaskInvocation {
                task_id: format!("$({})", crate::parallel::NODE_INDEX),
                ..self.invocation.clone()
            }
            .to_args(),
            None => self.invocation.to_args(),
        }
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
            // A gang runs as one: any member failing fails the Job at once.
            backoff_limit: Some(0),
            completions: Some(task.gang.map_or(1, |n| n as i32)),
            parallelism: Some(task.gang.map_or(1, |n| n as i32)),
            completion_mode: task.gang.map(|_| "Indexed".into()),
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

/// The headless Service of a multi-node step's attempt: it gives each member the DNS name
/// `<job>-<rank>.<job>.<namespace>.svc.<cluster domain>` (the Job controller makes
/// `<job>-<rank>` the pod's hostname; the template names this Service as its subdomain), and it
/// publishes members before they are ready, so workers can resolve the control member as soon
/// as it has an address. The executor makes the Job its owner, so it goes with the Job.
pub fn gang_service(step: &Resolved, task: &Task) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(task.job_name()),
            namespace: Some(step.namespace.value.clone()),
            ..metadata::object_meta(step, task)
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(metadata::system_labels(task)),
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
