//! The pod: container, command, environment, volumes, scheduling and security.

use super::{Binary, Notes, POD, Task, resources};
use crate::labels;
use crate::names;
use crate::parallel::{self, Member};
use crate::resolve::{Resolved, Source};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
    PodSpec, SeccompProfile, SecretEnvSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

const MAIN: &str = "spec.template.spec.containers[0]";
/// Where a fetched binary lives in the pod.
pub const BIN_DIR: &str = "/kubestep/bin";
const FETCHED_PATH: &str = "/kubestep/bin/step";

/// Downloads the binary, checks its sha256, and only then makes it visible under its final name,
/// so the main container never starts a partial or foreign file.
const FETCH_SCRIPT: &str = r#"set -eu
curl -fsSL --retry 5 --retry-all-errors --connect-timeout 10 -o /kubestep/bin/step.part "$KUBESTEP_BINARY_URL"
"#;

/// [`FETCH_SCRIPT`] for [`Binary::FromS3`]: the request signed by curl (AWS Signature V4) with
/// the credentials the pod's Secrets give.
const FETCH_S3_SCRIPT: &str = r#"set -eu
if [ -n "${AWS_SESSION_TOKEN:-}" ]; then
  set -- -H "x-amz-security-token: $AWS_SESSION_TOKEN"
fi
curl -fsSL --retry 5 --retry-all-errors --connect-timeout 10 \
  --aws-sigv4 "aws:amz:$KUBESTEP_BINARY_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@" \
  -o /kubestep/bin/step.part "$KUBESTEP_BINARY_URL"
"#;

/// After either download: the hash check and the rename.
const CHECK_SCRIPT: &str = r#"actual=$(sha256sum /kubestep/bin/step.part | cut -d' ' -f1)
if [ "$actual" != "$KUBESTEP_BINARY_SHA256" ]; then
  echo "kubestep: the step binary fetched from the datastore has sha256 $actual, expected $KUBESTEP_BINARY_SHA256; the upload is corrupt or was replaced" >&2
  exit 65
fi
chmod 0755 /kubestep/bin/step.part
mv /kubestep/bin/step.part /kubestep/bin/step
"#;

/// What a pod gets to start (pull its image, fetch the step binary) on top of the step's
/// `#[timeout]`. The step process enforces `#[timeout]` itself, from its own start, so a slow
/// pull does not eat the step's time (Metaflow's pod deadline counts it); the pod's
/// `activeDeadlineSeconds` is the backstop for a pod that never gets that far.
pub const START_ALLOWANCE_SECONDS: u64 = 600;

/// The pod's `activeDeadlineSeconds` for a step whose `#[timeout]` is `timeout` seconds.
pub fn active_deadline(timeout: u64) -> u64 {
    timeout + START_ALLOWANCE_SECONDS
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn main_env(step: &Resolved, task: &Task, notes: &mut Notes) -> Vec<EnvVar> {
    let mut out = vec![
        env("KUBESTEP_KUBERNETES_WORKLOAD", "1"),
        field_env("KUBESTEP_KUBERNETES_POD_NAME", "metadata.name"),
        field_env("KUBESTEP_KUBERNETES_POD_NAMESPACE", "metadata.namespace"),
        field_env("KUBESTEP_KUBERNETES_POD_ID", "metadata.uid"),
        field_env("KUBESTEP_KUBERNETES_NODE_IP", "status.hostIP"),
        field_env(
            "KUBESTEP_KUBERNETES_SERVICE_ACCOUNT_NAME",
            "spec.serviceAccountName",
        ),
    ];
    if let Some(t) = step.tmpfs.as_ref().filter(|t| t.tempdir.value) {
        notes.note(
            format!("{MAIN}.env.KUBESTEP_TEMPDIR"),
            &t.path.value,
            &t.tempdir.source,
        );
        out.push(env("KUBESTEP_TEMPDIR", t.path.value.clone()));
        out.push(env("TMPDIR", t.path.value.clone()));
    }
    if let Some(size) = task.gang {
        out.extend(gang_env(step, task, size, notes));
    }
    out.extend(task.env.iter().map(|(k, v)| env(k, v.clone())));
    out
}

/// What each member of a gang is told: its rank from the completion index the Job controller
/// gives its pod, the rest alike for all (see `crate::parallel`).
fn gang_env(step: &Resolved, task: &Task, size: u32, notes: &mut Notes) -> Vec<EnvVar> {
    let job = task.job_name();
    let member = Member {
        index: 0,
        size,
        // The control member's fully qualified name: no search-list lookups before it resolves.
        main_addr: format!(
            "{job}-0.{job}.{}.svc.{}",
            step.namespace.value, step.settings.cluster_domain
        ),
        main_port: step.port.as_ref().map(|p| p.value),
        resolution_timeout: step.hostname_resolution_timeout.value,
    };
    notes.note(
        format!("{MAIN}.env.{}", parallel::RESOLUTION_TIMEOUT),
        member.resolution_timeout,
        &step.hostname_resolution_timeout.source,
    );
    let index = format!("metadata.annotations['{}']", labels::COMPLETION_INDEX);
    let mut out: Vec<EnvVar> = parallel::RANK_VARS
        .iter()
        .map(|v| field_env(v, &index))
        .collect();
    out.extend(member.shared_env().into_iter().map(|(k, v)| env(k, v)));
    out
}

/// kubestep's hardening unless the step says otherwise: no privilege escalation, no
/// capabilities and the runtime's default seccomp profile; the step's own keys render exactly.
/// The init container gets the same.
fn security_context(step: &Resolved, notes: &mut Notes) -> SecurityContext {
    let user = step.security_context.as_ref();
    let sc = user.map(|s| s.value.clone()).unwrap_or_default();
    let source = user.map_or(Source::BuiltIn, |s| s.source.clone());
    let privileged = sc.privileged == Some(true);
    let ape = sc
        .allow_privilege_escalation
        .or((!privileged).then_some(false));
    let field = format!("{MAIN}.securityContext");
    let ape_source = if sc.allow_privilege_escalation.is_some() {
        source.clone()
    } else {
        Source::BuiltIn
    };
    if let Some(a) = ape {
        notes.note(format!("{field}.allowPrivilegeEscalation"), a, &ape_source);
    }
    for (name, value) in [
        ("privileged", sc.privileged.map(|b| b.to_string())),
        ("runAsUser", sc.run_as_user.map(|n| n.to_string())),
        ("runAsGroup", sc.run_as_group.map(|n| n.to_string())),
        ("runAsNonRoot", sc.run_as_non_root.map(|b| b.to_string())),
    ] {
        if let Some(v) = value {
            notes.note(format!("{field}.{name}"), v, &source);
        }
    }
    // No capabilities unless privileged: a step computes and talks to its datastore, and
    // dropping ALL is what the `restricted` Pod Security level asks of every container.
    let capabilities = (!privileged).then(|| {
        notes.note(
            format!("{field}.capabilities.drop"),
            "ALL",
            &Source::BuiltIn,
        );
        Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }
    });
    SecurityContext {
        allow_privilege_escalation: ape,
        capabilities,
        privileged: sc.privileged,
        run_as_user: sc.run_as_user,
        run_as_group: sc.run_as_group,
        run_as_non_root: sc.run_as_non_root,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

fn memory_volume(name: &str, size: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity(size.into())),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

/// The emptyDir a fetched binary lands in, and the main container's read-only mount of it.
pub(super) fn bin_volume(binary: &Binary) -> Option<(Volume, VolumeMount)> {
    if let Binary::InImage { .. } = binary {
        return None;
    }
    Some((
        Volume {
            name: labels::BIN_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        VolumeMount {
            read_only: Some(true),
            ..mount(labels::BIN_VOLUME, BIN_DIR)
        },
    ))
}

/// The main container's command: where the binary is in the pod.
pub(super) fn binary_path(binary: &Binary) -> String {
    match binary {
        Binary::InImage { path } => path.clone(),
        Binary::Fetched { .. } | Binary::FromS3 { .. } => FETCHED_PATH.into(),
    }
}

/// Volumes and the main container's mounts: binary dir, /dev/shm, tmpfs, claims.
fn volumes(step: &Resolved, task: &Task, notes: &mut Notes) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some((volume, m)) = bin_volume(&task.binary) {
        volumes.push(volume);
        mounts.push(m);
    }
    if let Some(shm) = &step.shared_memory {
        notes.note(
            format!("{POD}.volumes[dshm].emptyDir.sizeLimit"),
            shm.value.quantity(),
            &shm.source,
        );
        volumes.push(memory_volume("dshm", shm.value.quantity()));
        mounts.push(mount("dshm", "/dev/shm"));
    }
    if let Some(t) = &step.tmpfs {
        notes.note(
            format!("{POD}.volumes[tmpfs].emptyDir.sizeLimit"),
            t.size.value.quantity(),
            &t.size.source,
        );
        notes.note(
            format!("{MAIN}.volumeMounts[tmpfs].mountPath"),
            &t.path.value,
            &t.path.source,
        );
        volumes.push(memory_volume("tmpfs", t.size.value.quantity()));
        mounts.push(mount("tmpfs", &t.path.value));
    }
    for (claim, path) in &step.persistent_volume_claims {
        let name = names::to_dns_label(&format!("pvc-{claim}"));
        notes.note(
            format!("{MAIN}.volumeMounts[{name}].mountPath"),
            &path.value,
            &path.source,
        );
        volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        mounts.push(mount(&name, &path.value));
    }
    (volumes, mounts)
}

/// The init container that fetches a binary (none when the image has it), with `main`'s
/// requests and hardening.
pub(super) fn fetch_container(binary: &Binary, image: &str, main: &Container) -> Option<Container> {
    let (script, mut vars, env_from) = match binary {
        Binary::InImage { .. } => return None,
        Binary::Fetched { url, sha256 } => (
            FETCH_SCRIPT,
            vec![
                env("KUBESTEP_BINARY_URL", url),
                env("KUBESTEP_BINARY_SHA256", sha256),
            ],
            None,
        ),
        // The request is signed with the credentials and endpoint settings the main container
        // gets.
        Binary::FromS3 {
            url,
            region,
            sha256,
        } => (
            FETCH_S3_SCRIPT,
            vec![
                env("KUBESTEP_BINARY_URL", url),
                env("KUBESTEP_BINARY_REGION", region),
                env("KUBESTEP_BINARY_SHA256", sha256),
            ],
            main.env_from.clone(),
        ),
    };
    if env_from.is_some() {
        vars.extend(main.env.iter().flatten().cloned());
    }
    Some(Container {
        name: labels::FETCH_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("{script}{CHECK_SCRIPT}"),
        ]),
        env: Some(vars),
        env_from,
        volume_mounts: Some(vec![mount(labels::BIN_VOLUME, BIN_DIR)]),
        // The same requests as the main container cost nothing (a pod reserves the larger of the
        // two) and keep a Guaranteed pod Guaranteed.
        resources: main.resources.clone().map(|mut r| {
            for map in [&mut r.requests, &mut r.limits].into_iter().flatten() {
                map.retain(|name, _| !name.ends_with("/gpu"));
            }
            r
        }),
        security_context: main.security_context.clone(),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    })
}

/// The node selector: the step's, then its compute pool, then the binary's architecture.
fn node_selector(step: &Resolved, task: &Task, notes: &mut Notes) -> BTreeMap<String, String> {
    let mut sel = BTreeMap::new();
    for (k, v) in &step.node_selector {
        notes.note(format!("{POD}.nodeSelector.{k}"), &v.value, &v.source);
        sel.insert(k.clone(), v.value.clone());
    }
    if let Some(pool) = &step.compute_pool {
        let label = &step.settings.compute_pool_label;
        notes.note(
            format!("{POD}.nodeSelector.{label}"),
            &pool.value,
            &pool.source,
        );
        sel.insert(label.clone(), pool.value.clone());
    }
    if let Some(arch) = &task.arch {
        sel.entry(labels::ARCH.into())
            .or_insert_with(|| arch.clone());
    }
    sel
}

fn toleration(t: &crate::spec::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone(),
        operator: t.operator.map(|o| o.name().to_string()),
        value: t.value.clone(),
        effect: t.effect.map(|e| e.name().to_string()),
        toleration_seconds: t.toleration_seconds,
    }
}

/// The taints of a node that is not ready or unreachable (a lost node).
const NODE_LOST_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// The step's tolerations, then kubestep's for a lost node's taints: its pods are evicted after
/// `KUBESTEP_KUBERNETES_NODE_LOST_SECONDS` (30 s) rather than Kubernetes' 300 s, so their tasks
/// are retried elsewhere within a minute. A step's own toleration of such a taint (or of every
/// taint) is kept as it is.
fn tolerations(step: &Resolved, notes: &mut Notes) -> Vec<Toleration> {
    let mut out: Vec<Toleration> = step
        .tolerations
        .iter()
        .map(|t| toleration(&t.value))
        .collect();
    let seconds = &step.settings.node_lost_seconds;
    for taint in NODE_LOST_TAINTS {
        let covered = out.iter().any(|t| match &t.key {
            Some(k) => k == taint,
            None => t.operator.as_deref() == Some("Exists"),
        });
        if !covered {
            notes.note(
                format!("{POD}.tolerations[{taint}].tolerationSeconds"),
                seconds.value,
                &seconds.source,
            );
            out.push(Toleration {
                key: Some(taint.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(seconds.value),
                value: None,
            });
        }
    }
    out
}

pub(super) fn pod_spec(step: &Resolved, task: &Task, notes: &mut Notes) -> PodSpec {
    let (volumes, mounts) = volumes(step, task, notes);
    let command = binary_path(&task.binary);
    notes.note(
        format!("{MAIN}.image"),
        &step.image.value,
        &step.image.source,
    );
    if let Some(p) = &step.image_pull_policy {
        notes.note(format!("{MAIN}.imagePullPolicy"), p.value.name(), &p.source);
    }
    for s in &step.secrets {
        notes.note(
            format!("{MAIN}.envFrom[].secretRef.name"),
            &s.value,
            &s.source,
        );
    }
    if let Some(p) = &step.port {
        notes.note(format!("{MAIN}.ports[0].containerPort"), p.value, &p.source);
    }
    let main = Container {
        name: names::to_dns_label(&task.invocation.step),
        image: Some(step.image.value.clone()),
        image_pull_policy: step
            .image_pull_policy
            .as_ref()
            .map(|p| p.value.name().to_string()),
        command: Some(vec![command]),
        args: Some(task.args()),
        env: Some(main_env(step, task, notes)),
        env_from: (!step.secrets.is_empty()).then(|| {
            step.secrets
                .iter()
                .map(|s| EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: s.value.clone(),
                        optional: None,
                    }),
                    ..EnvFromSource::default()
                })
                .collect()
        }),
        ports: step.port.as_ref().map(|p| {
            vec![ContainerPort {
                container_port: p.value.into(),
                name: Some(labels::PORT_NAME.into()),
                ..ContainerPort::default()
            }]
        }),
        resources: Some(resources::requirements(step, notes)),
        security_context: Some(security_context(step, notes)),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let sel = node_selector(step, task, notes);
    if let Some(sa) = &step.service_account {
        notes.note(format!("{POD}.serviceAccountName"), &sa.value, &sa.source);
    }
    for t in &step.tolerations {
        notes.note(
            format!("{POD}.tolerations[]"),
            format!("{:?}", t.value),
            &t.source,
        );
    }
    for s in &step.image_pull_secrets {
        notes.note(
            format!("{POD}.imagePullSecrets[].name"),
            &s.value,
            &s.source,
        );
    }
    PodSpec {
        restart_policy: Some("Never".into()),
        active_deadline_seconds: step.timeout_seconds.map(|t| active_deadline(t) as i64),
        service_account_name: step.service_account.as_ref().map(|s| s.value.clone()),
        // A step needs no API access unless it was given an account for it.
        automount_service_account_token: step.service_account.is_none().then_some(false),
        enable_service_links: Some(false),
        node_selector: (!sel.is_empty()).then_some(sel),
        tolerations: Some(tolerations(step, notes)),
        affinity: resources::affinity(step, notes),
        image_pull_secrets: (!step.image_pull_secrets.is_empty()).then(|| {
            step.image_pull_secrets
                .iter()
                .map(|s| LocalObjectReference {
                    name: s.value.clone(),
                })
                .collect()
        }),
        volumes: (!volumes.is_empty()).then_some(volumes),
        init_containers: fetch_container(&task.binary, &step.settings.fetch_image, &main)
            .map(|c| vec![c]),
        // The Job controller names each member's host `<job>-<rank>`; under the gang's Service
        // that name resolves.
        subdomain: task.gang.map(|_| task.job_name()),
        containers: vec![main],
        ..PodSpec::default()
    }
}
