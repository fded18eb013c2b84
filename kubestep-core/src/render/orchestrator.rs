//! A detached run's orchestrator: the Job whose pod runs the flow binary's orchestrator in the
//! cluster (`run --detach`), fetching the binary as a step's pod does.
//!
//! One pod at a time drives the run: the Job replaces a pod only once the old one has fully
//! stopped (`podReplacementPolicy: Failed`), and the run's Lease (taken by the binary) keeps out
//! any other orchestrator. A replaced pod continues the run where the last one stopped.

use super::Binary;
use super::pod::{bin_volume, binary_path, fetch_container};
use crate::labels;
use crate::names;
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec, PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The variable that names a scheduled run's orchestrator its run: its Job's name.
pub const RUN_ID_ENV: &str = "KUBESTEP_RUN_ID";

/// The orchestrator container's name.
pub const CONTAINER: &str = "orchestrator";

/// The orchestrator's exit code when the run itself failed: the Job fails at once, no other pod
/// is started for it (any other failure of the pod is retried by a new pod that continues the
/// run).
pub const RUN_FAILED_EXIT: i32 = 3;

/// How many pods may fail before the Job gives up: pods lost with their node, deleted or
/// out of memory, each continuing the run.
pub const POD_RETRIES: i32 = 6;

/// What the orchestrator asks of its node: it waits on the API server and the datastore.
const CPU_REQUEST: &str = "100m";
const MEMORY_REQUEST: &str = "256Mi";
const MEMORY_LIMIT: &str = "1Gi";

/// The unprivileged user the orchestrator runs as (`nobody`-like; it writes nothing locally).
const RUN_AS: i64 = 65532;

/// Where and how the orchestrator runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orchestrator {
    /// The flow.
    pub flow: String,
    /// The run it drives; none for a schedule's, whose runs are named after their Jobs.
    pub run_id: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// The ServiceAccount it runs as: what it may do in the cluster.
    pub service_account: String,
    /// Its image: one the flow binary runs in.
    pub image: String,
    /// The init container's image, when the binary is fetched.
    pub fetch_image: String,
    /// How the binary arrives.
    pub binary: Binary,
    /// `kubernetes.io/arch` of the binary, when known.
    pub arch: Option<String>,
    /// The binary's arguments.
    pub args: Vec<String>,
    /// Its environment: the launcher's settings, resolved there.
    pub env: Vec<(String, String)>,
    /// Secrets whose keys become its environment (the datastore's credentials).
    pub secrets: Vec<String>,
    /// `ttlSecondsAfterFinished`.
    pub ttl_seconds: i32,
}

impl Orchestrator {
    /// Its Job's name (and its Lease's), for a run.
    pub fn job_name(&self) -> Option<String> {
        self.run_id.as_ref().map(|r| names::run_name(&self.flow, r))
    }

    /// The labels of its Job and pods: the run's selector, and the orchestrator mark.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut s = labels::Selector::flow(&self.flow);
        if let Some(r) = &self.run_id {
            s = s.run(r);
        }
        let mut l = s.labels();
        l.insert(labels::ORCHESTRATOR.into(), "true".into());
        l
    }
}

fn quantity(q: &str) -> Quantity {
    Quantity(q.into())
}

/// The orchestrator's Job.
pub fn job(o: &Orchestrator) -> Job {
    let mut annotations = BTreeMap::from([(labels::FLOW.to_string(), o.flow.clone())]);
    if let Some(r) = &o.run_id {
        annotations.insert(labels::RUN_ID.to_string(), r.clone());
    }
    let meta = ObjectMeta {
        labels: Some(o.labels()),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    let mut env: Vec<EnvVar> = o
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    // A scheduled run is named after its Job, which the CronJob names by the time it fires: a
    // replacement pod of the same Job continues the same run.
    if o.run_id.is_none() {
        env.push(EnvVar {
            name: RUN_ID_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.labels['{}']", labels::BATCH_JOB_NAME),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    let (volumes, mounts) = bin_volume(&o.binary).unzip();
    let main = Container {
        name: CONTAINER.into(),
        image: Some(o.image.clone()),
        command: Some(vec![binary_path(&o.binary)]),
        args: Some(o.args.clone()),
        env: Some(env),
        env_from: (!o.secrets.is_empty()).then(|| {
            o.secrets
                .iter()
                .map(|s| EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: s.clone(),
                        optional: None,
                    }),
                    ..EnvFromSource::default()
                })
                .collect()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), quantity(CPU_REQUEST)),
                    ("memory".to_string(), quantity(MEMORY_REQUEST)),
                ]
                .into(),
            ),
            limits: Some([("memory".to_string(), quantity(MEMORY_LIMIT))].into()),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: mounts.map(|m| vec![m]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(o.service_account.clone()),
        enable_service_links: Some(false),
        node_selector: o
            .arch
            .as_ref()
            .map(|a| [(labels::ARCH.to_string(), a.clone())].into()),
        // Passes the `restricted` Pod Security level: it needs no privilege at all.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        volumes: volumes.map(|v| vec![v]),
        init_containers: fetch_container(&o.binary, &o.fetch_image, &main).map(|c| vec![c]),
        containers: vec![main],
        ..PodSpec::default()
    };
    Job {
        metadata: ObjectMeta {
            name: o.job_name(),
            namespace: Some(o.namespace.clone()),
            ..meta.clone()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(POD_RETRIES),
            // A new pod only once the old one is gone: never two orchestrators at once, even
            // for the seconds a deleted pod takes to stop.
            pod_replacement_policy: Some("Failed".into()),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![
                    // The run failed: nothing for another pod to continue.
                    PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                            container_name: Some(CONTAINER.into()),
                            operator: "In".into(),
                            values: vec![RUN_FAILED_EXIT],
                        }),
                        on_pod_conditions: None,
                    },
                    // Evicted, preempted, its node lost: not the run's fault, not counted.
                    PodFailurePolicyRule {
                        action: "Ignore".into(),
                        on_exit_codes: None,
                        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                            type_: "DisruptionTarget".into(),
                            status: "True".into(),
                        }]),
                    },
                ],
            }),
            ttl_seconds_after_finished: Some(o.ttl_seconds),
            template: PodTemplateSpec {
                metadata: Some(meta),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// When a deployed flow runs: a CronJob of its orchestrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The CronJob's name.
    pub name: String,
    /// Standard cron syntax: five fields, or a macro such as `@daily`.
    pub cron: String,
    /// An IANA time zone such as `Europe/Paris`; the controller manager's (UTC, usually) when
    /// none.
    pub time_zone: Option<String>,
    /// Whether a run may start while the previous one still runs (`Forbid` skips it).
    pub concurrency: Concurrency,
}

/// The CronJob's `concurrencyPolicy`. `Replace` is not offered: it deletes a running run's
/// orchestrator Job, which would leave that run's Jobs without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// A run starts only when the previous one has ended; a time that comes while it runs is
    /// skipped.
    #[default]
    Forbid,
    /// Runs may overlap.
    Allow,
}

impl Concurrency {
    /// Every value, for a command line's choices.
    pub const ALL: [Concurrency; 2] = [Concurrency::Forbid, Concurrency::Allow];

    /// Its name, as `concurrencyPolicy` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Concurrency::Forbid => "Forbid",
            Concurrency::Allow => "Allow",
        }
    }
}

/// Finished Jobs a CronJob keeps: enough to see the last few runs' orchestrators.
pub const HISTORY: i32 = 3;

/// How late a run may still start when its time was missed (the controller manager was down).
pub const STARTING_DEADLINE_SECONDS: i64 = 600;

/// Checks a cron expression's shape (the API server checks it fully): five fields, or one of
/// the macros.
pub fn check_cron(cron: &str) -> Result<(), String> {
    const MACROS: [&str; 8] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@every",
    ];
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let ok = match fields.as_slice() {
        [m] => MACROS.contains(m),
        [m, _] => *m == "@every",
        f => {
            f.len() == 5
                && f.iter().all(|x| {
                    x.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "schedule {cron:?}: expected five fields (minute hour day-of-month month day-of-week, such as \"0 3 * * *\") or a macro such as @daily"
        ))
    }
}

/// The CronJob whose Jobs each run the orchestrator of a new run (`o.run_id` is none).
pub fn cron_job(o: &Orchestrator, s: &Schedule) -> CronJob {
    let Job { metadata, spec, .. } = job(o);
    let mut labels = o.labels();
    labels.insert(labels::SCHEDULE.into(), names::to_label_value(&s.name));
    CronJob {
        metadata: ObjectMeta {
            name: Some(s.name.clone()),
            namespace: Some(o.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(CronJobSpec {
            schedule: s.cron.clone(),
            time_zone: s.time_zone.clone(),
            concurrency_policy: Some(s.concurrency.name().into()),
            successful_jobs_history_limit: Some(HISTORY),
            failed_jobs_history_limit: Some(HISTORY),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: metadata.annotations,
                    ..ObjectMeta::default()
                }),
                spec,
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orchestrator(binary: Binary) -> Orchestrator {
        Orchestrator {
            flow: "Train".into(),
            run_id: Some("20261130-1".into()),
            namespace: "ml".into(),
            service_account: "kubestep-orchestrator".into(),
            image: "debian:bookworm-slim".into(),
            fetch_image: "curlimages/curl:8.11.1".into(),
            binary,
            arch: Some("amd64".into()),
            args: vec!["orchestrate".into(), "{}".into()],
            env: vec![("AWS_REGION".into(), "eu-west-1".into())],
            secrets: vec!["s3".into()],
            ttl_seconds: 60,
        }
    }

    #[test]
    fn one_pod_at_a_time_and_a_failed_run_is_not_retried() {
        let o = orchestrator(Binary::Fetched {
            url: "https://x/bin".into(),
            sha256: "ab".into(),
        });
        let job = job(&o);
        assert_eq!(job.metadata.name, o.job_name());
        let spec = job.spec.unwrap();
        assert_eq!(spec.pod_replacement_policy.as_deref(), Some("Failed"));
        let rules = spec.pod_failure_policy.unwrap().rules;
        assert_eq!(
            rules[0].on_exit_codes.as_ref().unwrap().values,
            vec![RUN_FAILED_EXIT]
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("kubestep-orchestrator")
        );
        assert_eq!(pod.init_containers.unwrap().len(), 1);
        let main = &pod.containers[0];
        assert_eq!(main.command.as_ref().unwrap()[0], "/kubestep/bin/step");
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels[labels::ORCHESTRATOR], "true");
        assert_eq!(labels[labels::RUN_ID], "20261130-1");
    }

    #[test]
    fn a_binary_in_the_image_needs_no_init_container() {
        let job = job(&orchestrator(Binary::InImage {
            path: "/usr/local/bin/flow".into(),
        }));
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert!(pod.init_containers.is_none() && pod.volumes.is_none());
        assert_eq!(
            pod.containers[0].command.as_ref().unwrap()[0],
            "/usr/local/bin/flow"
        );
    }

    #[test]
    fn a_schedules_runs_are_named_after_their_jobs() {
        let o = Orchestrator {
            run_id: None,
            ..orchestrator(Binary::FromS3 {
                url: "http://s3/bucket/bin".into(),
                region: "us-east-1".into(),
                sha256: "ab".into(),
            })
        };
        let s = Schedule {
            name: "train-nightly".into(),
            cron: "0 3 * * *".into(),
            time_zone: Some("Europe/Paris".into()),
            concurrency: Concurrency::Forbid,
        };
        let cj = cron_job(&o, &s);
        let spec = cj.spec.unwrap();
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(spec.time_zone.as_deref(), Some("Europe/Paris"));
        let template = spec.job_template;
        assert!(
            !template
                .metadata
                .unwrap()
                .labels
                .unwrap()
                .contains_key(labels::RUN_ID)
        );
        let pod = template.spec.unwrap().template.spec.unwrap();
        let run_id = pod.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == RUN_ID_ENV)
            .unwrap();
        assert_eq!(
            run_id
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-name']"
        );
        // The init container signs its own request with the pod's credentials: no URL expires.
        let fetch = &pod.init_containers.unwrap()[0];
        assert!(fetch.command.as_ref().unwrap()[2].contains("--aws-sigv4"));
        assert_eq!(fetch.env_from, pod.containers[0].env_from);
    }

    #[test]
    fn cron_expressions_are_checked_for_shape() {
        for good in ["0 3 * * *", "*/5 * * * 1-5", "@daily", "@every 1h"] {
            assert_eq!(check_cron(good), Ok(()), "{good}");
        }
        for bad in ["", "0 3 * *", "@sometimes", "0 3 * * * *", "0 3 * * ;rm"] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_name_fits_a_pod_name_suffix() {
        let long = "x".repeat(200);
        let name = names::run_name(&long, &long);
        assert!(name.len() + 6 <= names::MAX_LABEL, "{name}");
        assert!(names::dns_label(&name).is_ok());
        assert_ne!(name, names::run_name(&long, "other"));
    }
}
