//! Every parameter against the rendering rules of the design, including the ones Metaflow
//! gets wrong (named after the defect).

use super::*;
use crate::invocation::{StoreKind, TaskInvocation};
use crate::resolve::{Defaults, env::Entry, env::Origin, resolve, with_arg};
use crate::value::testing::{arg, map, s};
use crate::value::{Arg, Decorator, DecoratorKind, StepDecl, Value};
use k8s_openapi::api::core::v1::{Container, PodSpec};

fn decl(decorators: Vec<Decorator>) -> StepDecl {
    StepDecl {
        name: "train",
        doc: "",
        input: "()",
        output: "u64",
        is_async: false,
        decorators: Box::leak(decorators.into_boxed_slice()),
    }
}

fn k8s(args: Vec<Arg>) -> Decorator {
    Decorator {
        kind: DecoratorKind::Kubernetes,
        args: args.into(),
    }
}

fn task() -> Task {
    Task {
        flow: "Train Flow".into(),
        invocation: TaskInvocation {
            step: "train".into(),
            run_id: "1700000000".into(),
            task_id: "1".into(),
            attempt: 0,
            input: "a1b2".into(),
            store: StoreKind::S3,
            store_root: "s3://bucket/flows".into(),
        },
        env: vec![],
        binary: Binary::InImage {
            path: "/usr/local/bin/flow".into(),
        },
        arch: Some("amd64".into()),
        gang: None,
    }
}

fn render_with(decorators: Vec<Decorator>, env: &[(&str, &str)], with: &[&str]) -> Rendered {
    let defaults = Defaults {
        entries: env
            .iter()
            .map(|(k, v)| Entry {
                var: k.to_string(),
                value: v.to_string(),
                origin: Origin::Env,
            })
            .collect(),
    };
    let overrides: Vec<_> = with.iter().map(|w| with_arg::parse(w).unwrap()).collect();
    job(
        &resolve(&decl(decorators), &defaults, &overrides).unwrap(),
        &task(),
    )
}

fn render(args: Vec<Arg>) -> Rendered {
    render_with(vec![k8s(args)], &[], &[])
}

/// Where the field ending in `field` got its value, as `--explain` prints it.
fn source_of(r: &Rendered, field: &str) -> String {
    r.explain
        .iter()
        .find(|e| e.field.ends_with(field))
        .map(|e| e.source.to_string())
        .unwrap_or_else(|| panic!("no explained field ends with {field}"))
}

fn pod(r: &Rendered) -> &PodSpec {
    r.job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn main(r: &Rendered) -> &Container {
    &pod(r).containers[0]
}

fn quantity(r: &Rendered, which: &str, name: &str) -> Option<String> {
    let res = main(r).resources.as_ref().unwrap();
    let map = if which == "requests" {
        &res.requests
    } else {
        &res.limits
    };
    map.as_ref().and_then(|m| m.get(name)).map(|q| q.0.clone())
}

#[test]
fn defaults_are_burstable_with_memory_limit() {
    let r = render(vec![]);
    assert_eq!(quantity(&r, "requests", "cpu").as_deref(), Some("1"));
    assert_eq!(quantity(&r, "requests", "memory").as_deref(), Some("4096M"));
    assert_eq!(
        quantity(&r, "requests", "ephemeral-storage").as_deref(),
        Some("10240M")
    );
    assert_eq!(quantity(&r, "limits", "memory").as_deref(), Some("4096M"));
    assert_eq!(quantity(&r, "limits", "cpu"), None);
    let spec = r.job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.ttl_seconds_after_finished, Some(604_800));
    assert_eq!(pod(&r).restart_policy.as_deref(), Some("Never"));
    assert_eq!(r.job.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(main(&r).image.as_deref(), Some("debian:bookworm-slim"));
    let sc = main(&r).security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(
        pod(&r).node_selector.as_ref().unwrap()["kubernetes.io/arch"],
        "amd64"
    );
}

#[test]
fn memory_merged_with_resources_stays_an_integer() {
    // Metaflow renders "16000.0M" after a max-merge.
    let res = Decorator {
        kind: DecoratorKind::Resources,
        args: vec![arg("memory", Value::Int(16000)), arg("gpu", Value::Int(1))].into(),
    };
    let r = render_with(
        vec![
            k8s(vec![
                arg("memory", Value::Int(4096)),
                arg("gpu", Value::Int(4)),
            ]),
            res,
        ],
        &[],
        &[],
    );
    assert_eq!(
        quantity(&r, "requests", "memory").as_deref(),
        Some("16000M")
    );
    // Metaflow lets #[resources(gpu = 1)] replace gpu = 4; kubestep takes the maximum.
    assert_eq!(
        quantity(&r, "limits", "nvidia.com/gpu").as_deref(),
        Some("4")
    );
}

#[test]
fn guaranteed_sets_limits_equal_to_requests() {
    let r = render(vec![
        arg("qos", s("Guaranteed")),
        arg("cpu", Value::Float(0.5)),
        arg("memory", s("16Gi")),
    ]);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        assert_eq!(
            quantity(&r, "requests", name),
            quantity(&r, "limits", name),
            "{name}"
        );
    }
    assert_eq!(quantity(&r, "limits", "cpu").as_deref(), Some("0.5"));
    assert_eq!(quantity(&r, "limits", "memory").as_deref(), Some("16Gi"));
}

#[test]
fn best_effort_has_no_cpu_memory_or_disk() {
    // Metaflow documents BestEffort but rejects it.
    let r = render(vec![arg("qos", s("BestEffort"))]);
    assert_eq!(main(&r).resources.as_ref().unwrap().requests, None);
    assert_eq!(main(&r).resources.as_ref().unwrap().limits, None);
    // An environment default is a default: it does not apply to a BestEffort step.
    let r = render_with(
        vec![k8s(vec![arg("qos", s("besteffort"))])],
        &[("KUBESTEP_KUBERNETES_DISK", "2048")],
        &[],
    );
    assert_eq!(quantity(&r, "requests", "ephemeral-storage"), None);
    // An explicit one would be silently dropped, so it is an error.
    let w = with_arg::parse("kubernetes:disk=2048").unwrap();
    let e = resolve(
        &decl(vec![k8s(vec![arg("qos", s("BestEffort"))])]),
        &Defaults::default(),
        &[w],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`disk` (from --with kubernetes:disk=2048) conflicts with qos"),
        "{e}"
    );
}

#[test]
fn a_higher_layer_replaces_node_selector_and_tolerations_whole() {
    let env = [
        ("KUBESTEP_KUBERNETES_NODE_SELECTOR", "pool=cpu,zone=a"),
        (
            "KUBESTEP_KUBERNETES_TOLERATIONS",
            r#"[{"key":"spot","operator":"Exists"}]"#,
        ),
    ];
    let r = render_with(
        vec![k8s(vec![arg("node_selector", s("pool=gpu"))])],
        &env,
        &[],
    );
    let sel = pod(&r).node_selector.as_ref().unwrap();
    assert_eq!(sel.get("pool").map(String::as_str), Some("gpu"));
    assert_eq!(
        sel.get("zone"),
        None,
        "the decorator's selector replaces the environment's"
    );
    let keys: Vec<_> = pod(&r)
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.key.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "spot",
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable"
        ],
        "no decorator tolerations: the environment's apply, then kubestep's for a lost node"
    );
}

#[test]
fn a_lost_nodes_pods_are_evicted_after_30_s_unless_the_step_tolerates_its_taints() {
    let lost = |r: &Rendered| -> Vec<(String, Option<i64>)> {
        pod(r)
            .tolerations
            .iter()
            .flatten()
            .filter(|t| {
                t.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with("node.kubernetes.io/"))
            })
            .map(|t| (t.key.clone().unwrap(), t.toleration_seconds))
            .collect()
    };
    let r = render(vec![]);
    assert_eq!(
        lost(&r),
        [
            ("node.kubernetes.io/not-ready".into(), Some(30)),
            ("node.kubernetes.io/unreachable".into(), Some(30))
        ]
    );
    let t = pod(&r).tolerations.as_ref().unwrap();
    assert!(t.iter().all(
        |t| t.effect.as_deref() == Some("NoExecute") && t.operator.as_deref() == Some("Exists")
    ));
    let r = render_with(
        vec![],
        &[("KUBESTEP_KUBERNETES_NODE_LOST_SECONDS", "5")],
        &[],
    );
    assert_eq!(lost(&r)[1].1, Some(5));
    // The step's own toleration of a taint (or of every taint) stands as it is.
    let own = r#"[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","toleration_seconds":600}]"#;
    let r = render_with(vec![], &[("KUBESTEP_KUBERNETES_TOLERATIONS", own)], &[]);
    assert_eq!(
        lost(&r),
        [
            ("node.kubernetes.io/unreachable".into(), Some(600)),
            ("node.kubernetes.io/not-ready".into(), Some(30))
        ]
    );
    let all = r#"[{"operator":"Exists"}]"#;
    let r = render_with(vec![], &[("KUBESTEP_KUBERNETES_TOLERATIONS", all)], &[]);
    assert_eq!(lost(&r), []);
}

#[test]
fn compute_pool_beats_a_lower_layer_node_selector_on_its_label() {
    let env = [(
        "KUBESTEP_KUBERNETES_NODE_SELECTOR",
        "kubestep.io/compute-pool=cpu",
    )];
    let r = render_with(vec![k8s(vec![arg("compute_pool", s("a100"))])], &env, &[]);
    assert_eq!(
        pod(&r).node_selector.as_ref().unwrap()["kubestep.io/compute-pool"],
        "a100"
    );
    let w =
        with_arg::parse("kubernetes:node_selector=kubestep.io/compute-pool=cpu,compute_pool=a100")
            .unwrap();
    let e = resolve(&decl(vec![]), &Defaults::default(), &[w])
        .unwrap_err()
        .to_string();
    assert!(e.contains("compute_pool \"a100\""), "{e}");
}

#[test]
fn tmpfs_settings_without_a_tmpfs_are_errors() {
    let w = with_arg::parse("kubernetes:tmpfs_path=/fast").unwrap();
    let e = resolve(&decl(vec![]), &Defaults::default(), &[w])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "`tmpfs_path` (from --with kubernetes:tmpfs_path=/fast) has no effect without a tmpfs"
        ),
        "{e}"
    );
    // An override may lean on the decorator's tmpfs.
    let w = with_arg::parse("kubernetes:tmpfs_path=/fast").unwrap();
    let step = resolve(
        &decl(vec![k8s(vec![arg("use_tmpfs", Value::Bool(true))])]),
        &Defaults::default(),
        &[w],
    )
    .unwrap();
    assert_eq!(step.tmpfs.unwrap().path.value, "/fast");
}

#[test]
fn explain_names_timeout_and_ttl_sources() {
    let timeout = Decorator {
        kind: DecoratorKind::Timeout,
        args: vec![arg("seconds", Value::Int(90))].into(),
    };
    let r = render_with(
        vec![k8s(vec![]), timeout],
        &[("KUBESTEP_KUBERNETES_JOB_TTL_SECONDS_AFTER_FINISHED", "60")],
        &[],
    );
    let source = |field: &str| source_of(&r, field);
    assert_eq!(source("activeDeadlineSeconds"), "#[timeout]");
    assert_eq!(
        source("ttlSecondsAfterFinished"),
        "environment KUBESTEP_KUBERNETES_JOB_TTL_SECONDS_AFTER_FINISHED"
    );
    assert_eq!(
        r.job.spec.as_ref().unwrap().ttl_seconds_after_finished,
        Some(60)
    );
}

#[test]
fn a_gang_is_one_indexed_job_whose_members_reach_the_control_member_by_name() {
    let mut t = task();
    t.gang = Some(3);
    let step = resolve(
        &decl(vec![k8s(vec![arg("port", Value::Int(29500))])]),
        &Defaults::default(),
        &[],
    )
    .unwrap();
    let name = t.job_name();
    let r = job(&step, &t);
    let spec = r.job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.subdomain.as_deref(), Some(name.as_str()));
    let main = &pod.containers[0];
    // Each member's task id is its rank, substituted by the kubelet.
    let args = main.args.as_ref().unwrap();
    let at = args.iter().position(|a| a == "--task-id").unwrap();
    assert_eq!(args[at + 1], "$(KUBESTEP_PARALLEL_NODE_INDEX)");
    let env = main.env.as_ref().unwrap();
    let var = |n: &str| env.iter().find(|e| e.name == n);
    for rank in ["KUBESTEP_PARALLEL_NODE_INDEX", "RANK", "NODE_RANK"] {
        let from = var(rank).and_then(|e| e.value_from.as_ref()?.field_ref.as_ref());
        assert_eq!(
            from.map(|f| f.field_path.as_str()),
            Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
        );
    }
    let value = |n: &str| var(n).and_then(|e| e.value.clone());
    let control = format!("{name}-0.{name}.default.svc.cluster.local");
    assert_eq!(value("MASTER_ADDR"), Some(control.clone()));
    assert_eq!(value("KUBESTEP_PARALLEL_MAIN_ADDR"), Some(control));
    assert_eq!(value("MASTER_PORT").as_deref(), Some("29500"));
    assert_eq!(value("WORLD_SIZE").as_deref(), Some("3"));
    assert_eq!(value("NNODES").as_deref(), Some("3"));
    assert_eq!(
        value("KUBESTEP_HOSTNAME_RESOLUTION_TIMEOUT").as_deref(),
        Some("600")
    );
    let labels = r.job.metadata.labels.as_ref().unwrap();
    assert!(!labels.contains_key("kubestep.io/task-id"), "{labels:?}");

    let svc = gang_service(&step, &t);
    assert_eq!(svc.metadata.name.as_deref(), Some(name.as_str()));
    let svc_spec = svc.spec.as_ref().unwrap();
    assert_eq!(svc_spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc_spec.publish_not_ready_addresses, Some(true));
    // The Service selects every member of this attempt, through the labels every pod has.
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    for (k, v) in svc_spec.selector.as_ref().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "{k}");
    }
    assert_eq!(
        svc_spec.selector.as_ref().unwrap()["kubestep.io/attempt"],
        "0"
    );
}

#[test]
fn a_gang_without_a_port_has_no_port_variable_and_a_cluster_domain_can_be_set() {
    let mut t = task();
    t.gang = Some(2);
    let step = resolve(
        &decl(vec![]),
        &Defaults {
            entries: vec![Entry {
                var: "KUBESTEP_KUBERNETES_CLUSTER_DOMAIN".into(),
                value: "corp.example".into(),
                origin: Origin::Env,
            }],
        },
        &[],
    )
    .unwrap();
    let r = job(&step, &t);
    let main = &r.job.spec.unwrap().template.spec.unwrap().containers[0];
    let env = main.env.as_ref().unwrap();
    assert!(!env.iter().any(|e| e.name.contains("PORT")), "{env:?}");
    let addr = env.iter().find(|e| e.name == "MASTER_ADDR").unwrap();
    assert!(
        addr.value
            .as_ref()
            .unwrap()
            .ends_with(".default.svc.corp.example"),
        "{addr:?}"
    );
    assert!(gang_service(&step, &t).spec.unwrap().ports.is_none());
}

#[test]
fn gpu_vendor_is_lower_cased() {
    // Metaflow lower-cases the format string, not the vendor: "NVIDIA.com/gpu".
    let r = render(vec![arg("gpu", Value::Int(2)), arg("gpu_vendor", s("AMD"))]);
    assert_eq!(quantity(&r, "limits", "amd.com/gpu").as_deref(), Some("2"));
}

#[test]
fn gpu_zero_keeps_pod_off_gpu_nodes() {
    let r = render(vec![arg("gpu", Value::Int(0))]);
    assert_eq!(quantity(&r, "limits", "nvidia.com/gpu"), None);
    let terms = &pod(&r)
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let req = &terms
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    let expr = &req.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.operator.as_str()),
        ("nvidia.com/gpu.present", "NotIn")
    );
    let r = render_with(
        vec![k8s(vec![arg("gpu", Value::Int(0))])],
        &[("KUBESTEP_KUBERNETES_GPU_NODE_LABEL", "example.com/gpu")],
        &[],
    );
    let aff = pod(&r)
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let key = &aff
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0]
        .match_expressions
        .as_ref()
        .unwrap()[0]
        .key;
    assert_eq!(key, "example.com/gpu");
}

#[test]
fn shared_memory_and_tmpfs_are_memory_volumes() {
    let r = render(vec![
        arg("shared_memory", Value::Int(1024)),
        arg("use_tmpfs", Value::Bool(true)),
        arg("memory", Value::Int(9000)),
    ]);
    let vols = pod(&r).volumes.as_ref().unwrap();
    let dshm = vols
        .iter()
        .find(|v| v.name == "dshm")
        .unwrap()
        .empty_dir
        .as_ref()
        .unwrap();
    assert_eq!(
        (
            dshm.medium.as_deref(),
            dshm.size_limit.as_ref().unwrap().0.as_str()
        ),
        (Some("Memory"), "1024Mi")
    );
    let tmpfs = vols
        .iter()
        .find(|v| v.name == "tmpfs")
        .unwrap()
        .empty_dir
        .as_ref()
        .unwrap();
    // Half of the final memory number, read as MiB.
    assert_eq!(tmpfs.size_limit.as_ref().unwrap().0, "4500Mi");
    let mounts = main(&r).volume_mounts.as_ref().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "dshm" && m.mount_path == "/dev/shm")
    );
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "tmpfs" && m.mount_path == "/kubestep_temp")
    );
    let env = main(&r).env.as_ref().unwrap();
    assert!(
        env.iter()
            .any(|e| e.name == "TMPDIR" && e.value.as_deref() == Some("/kubestep_temp"))
    );
    assert!(env.iter().any(|e| e.name == "KUBESTEP_TEMPDIR"));
}

#[test]
fn tmpfs_default_size_follows_the_merged_memory() {
    // Metaflow computes memory/2 before the #[resources] merge.
    let res = Decorator {
        kind: DecoratorKind::Resources,
        args: vec![arg("memory", Value::Int(20000))].into(),
    };
    let r = render_with(
        vec![
            k8s(vec![
                arg("tmpfs_path", s("/scratch")),
                arg("use_tmpfs", Value::Bool(true)),
            ]),
            res,
        ],
        &[],
        &[],
    );
    let tmpfs = pod(&r)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "tmpfs")
        .unwrap()
        .empty_dir
        .clone()
        .unwrap();
    assert_eq!(tmpfs.size_limit.unwrap().0, "10000Mi");
}

#[test]
fn scheduling_fields() {
    let tol = map(&[
        ("key", s("nvidia.com/gpu")),
        ("operator", s("Exists")),
        ("effect", s("NoSchedule")),
    ]);
    let r = render(vec![
        arg("node_selector", s("disk=ssd,zone=a")),
        arg("tolerations", Value::List(vec![tol].into())),
        arg("compute_pool", s("a100")),
        arg("image_pull_secrets", Value::List(vec![s("regcred")].into())),
        arg("service_account", s("trainer")),
        arg("namespace", s("ml")),
    ]);
    let p = pod(&r);
    let sel = p.node_selector.as_ref().unwrap();
    assert_eq!(
        (
            sel["disk"].as_str(),
            sel["zone"].as_str(),
            sel["kubestep.io/compute-pool"].as_str()
        ),
        ("ssd", "a", "a100")
    );
    let t = &p.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (t.key.as_deref(), t.operator.as_deref(), t.effect.as_deref()),
        (Some("nvidia.com/gpu"), Some("Exists"), Some("NoSchedule"))
    );
    assert_eq!(p.image_pull_secrets.as_ref().unwrap()[0].name, "regcred");
    assert_eq!(p.service_account_name.as_deref(), Some("trainer"));
    assert_eq!(p.automount_service_account_token, None);
    assert_eq!(r.job.metadata.namespace.as_deref(), Some("ml"));
}

#[test]
fn labels_are_system_plus_user_and_valid() {
    let r = render(vec![
        arg("labels", map(&[("team", s("ml"))])),
        arg("annotations", map(&[("owner", s("ana@example.com"))])),
    ]);
    let labels = r.job.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "ml");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubestep");
    // "Train Flow" is no label value; the annotation keeps the exact name.
    assert!(crate::names::label_value(&labels["kubestep.io/flow"]).is_ok());
    assert_eq!(
        r.job.metadata.annotations.as_ref().unwrap()["kubestep.io/flow"],
        "Train Flow"
    );
    assert_eq!(
        r.job.metadata.annotations.as_ref().unwrap()["owner"],
        "ana@example.com"
    );
    let pod_labels = r
        .job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(pod_labels, labels);
    assert!(crate::names::dns_label(r.job.metadata.name.as_ref().unwrap()).is_ok());
}

#[test]
fn claims_secrets_port_security_and_timeout() {
    let timeout = Decorator {
        kind: DecoratorKind::Timeout,
        args: vec![arg("minutes", Value::Int(2))].into(),
    };
    let r = render_with(
        vec![
            k8s(vec![
                arg("persistent_volume_claims", map(&[("datasets", s("/data"))])),
                arg("secrets", Value::List(vec![s("aws-creds")].into())),
                arg("port", Value::Int(29500)),
                arg(
                    "security_context",
                    map(&[
                        ("run_as_user", Value::Int(1000)),
                        ("run_as_non_root", Value::Bool(true)),
                    ]),
                ),
            ]),
            timeout,
        ],
        &[("KUBESTEP_KUBERNETES_SECRETS", "common")],
        &[],
    );
    let p = pod(&r);
    let claim = p
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| v.persistent_volume_claim.clone())
        .unwrap();
    assert_eq!(claim.claim_name, "datasets");
    assert!(
        main(&r)
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/data")
    );
    let secrets: Vec<_> = main(&r)
        .env_from
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.secret_ref.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(secrets, ["common", "aws-creds"]);
    assert_eq!(main(&r).ports.as_ref().unwrap()[0].container_port, 29500);
    let sc = main(&r).security_context.as_ref().unwrap();
    assert_eq!(
        (
            sc.run_as_user,
            sc.run_as_non_root,
            sc.allow_privilege_escalation
        ),
        (Some(1000), Some(true), Some(false))
    );
    assert_eq!(
        p.active_deadline_seconds,
        Some(120 + super::START_ALLOWANCE_SECONDS as i64)
    );
}

#[test]
fn privileged_drops_the_escalation_default() {
    let r = render(vec![arg(
        "security_context",
        map(&[("privileged", Value::Bool(true))]),
    )]);
    let sc = main(&r).security_context.as_ref().unwrap();
    assert_eq!(
        (sc.privileged, sc.allow_privilege_escalation),
        (Some(true), None)
    );
}

#[test]
fn precedence_and_explain() {
    let decorators = vec![k8s(vec![
        arg("cpu", Value::Int(2)),
        arg("memory", Value::Int(8192)),
    ])];
    let env = [
        ("KUBESTEP_KUBERNETES_CPU", "4"),
        ("KUBESTEP_KUBERNETES_DISK", "30000"),
        ("KUBESTEP_KUBERNETES_IMAGE_PULL_POLICY", "Always"),
    ];
    let r = render_with(
        decorators,
        &env,
        &["kubernetes:memory=32000", "train/kubernetes:memory=64000"],
    );
    assert_eq!(
        quantity(&r, "requests", "cpu").as_deref(),
        Some("2"),
        "decorator beats environment"
    );
    assert_eq!(
        quantity(&r, "requests", "ephemeral-storage").as_deref(),
        Some("30000M"),
        "environment beats built-in"
    );
    assert_eq!(
        quantity(&r, "requests", "memory").as_deref(),
        Some("64000M"),
        "a step override beats a flow override"
    );
    let source = |field: &str| source_of(&r, field);
    assert_eq!(source("requests.cpu"), "#[kubernetes]");
    assert_eq!(
        source("requests.ephemeral-storage"),
        "environment KUBESTEP_KUBERNETES_DISK"
    );
    assert_eq!(
        source("requests.memory"),
        "--with train/kubernetes:memory=64000"
    );
    assert_eq!(
        source("imagePullPolicy"),
        "environment KUBESTEP_KUBERNETES_IMAGE_PULL_POLICY"
    );
}

#[test]
fn override_applies_to_steps_with_a_decorator() {
    // Metaflow silently ignores --with kubernetes:... on steps that have @kubernetes in code.
    let r = render_with(
        vec![k8s(vec![arg("cpu", Value::Int(2))])],
        &[],
        &["kubernetes:cpu=8,node_selector=a=b,c=d"],
    );
    assert_eq!(quantity(&r, "requests", "cpu").as_deref(), Some("8"));
    let sel = pod(&r).node_selector.as_ref().unwrap();
    assert_eq!((sel["a"].as_str(), sel["c"].as_str()), ("b", "d"));
}

#[test]
fn bad_override_names_step_flag_value_and_rule() {
    let w = with_arg::parse("kubernetes:cpu=-1").unwrap();
    let e = resolve(&decl(vec![]), &Defaults::default(), &[w])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "step `train`: --with kubernetes:cpu=-1: invalid `cpu` = -1: cpu must be greater than 0 and at most 1000000, a multiple of 0.001 (1m), written as a number or a string such as \"500m\""
    );
}

#[test]
fn best_effort_with_an_override_cpu_is_an_error() {
    let w = with_arg::parse("kubernetes:cpu=2").unwrap();
    let e = resolve(
        &decl(vec![k8s(vec![arg("qos", s("BestEffort"))])]),
        &Defaults::default(),
        &[w],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "`cpu` (from --with kubernetes:cpu=2) conflicts with qos = \"BestEffort\" (from #[kubernetes])"
        ),
        "{e}"
    );
}

#[test]
fn fetched_binary_gets_a_verifying_init_container() {
    let mut t = task();
    t.binary = Binary::Fetched {
        url: "http://store/bin".into(),
        sha256: "ab".repeat(32),
    };
    let step = resolve(
        &decl(vec![k8s(vec![arg("qos", s("Guaranteed"))])]),
        &Defaults::default(),
        &[],
    )
    .unwrap();
    let r = job(&step, &t);
    let init = &pod(&r).init_containers.as_ref().unwrap()[0];
    assert!(init.command.as_ref().unwrap()[2].contains("sha256sum"));
    assert_eq!(
        init.resources,
        main(&r).resources,
        "keeps a Guaranteed pod Guaranteed"
    );
    assert_eq!(main(&r).command.as_ref().unwrap()[0], "/kubestep/bin/step");
}

#[test]
fn yaml_is_byte_stable() {
    let a = to_yaml(&[render(vec![arg("cpu", Value::Int(2))]).job]).unwrap();
    let b = to_yaml(&[render(vec![arg("cpu", Value::Int(2))]).job]).unwrap();
    assert_eq!(a, b);
    assert!(
        a.starts_with("---\napiVersion: batch/v1\nkind: Job\n"),
        "{a}"
    );
}

/// Every catalog parameter changes the Job and shows in `show` with its source: a parameter
/// added to the catalog and forgotten by the renderer (or by resolve's summary) fails here.
#[test]
fn every_catalog_parameter_reaches_the_job_and_show() {
    // What a parameter needs beside it to have an effect.
    let companion = |name: &str| match name {
        "gpu_vendor" => Some("kubernetes:gpu=1"),
        "tmpfs_path" | "tmpfs_tempdir" => Some("kubernetes:use_tmpfs=true"),
        _ => None,
    };
    // A multi-node step, where hostname_resolution_timeout applies.
    let mut worker = task();
    worker.gang = Some(2);
    let resolved = |with: &[String]| {
        let overrides: Vec<_> = with.iter().map(|w| with_arg::parse(w).unwrap()).collect();
        resolve(&decl(vec![]), &Defaults::default(), &overrides)
            .unwrap_or_else(|e| panic!("{with:?}: {e}"))
    };
    for p in crate::params::KUBERNETES {
        assert!(!p.example.is_empty(), "`{}` has no example", p.name);
        let base: Vec<String> = companion(p.name).into_iter().map(String::from).collect();
        let mut with = base.clone();
        with.push(format!("kubernetes:{}={}", p.name, p.example));
        let (before, after) = (resolved(&base), resolved(&with));
        assert_ne!(
            format!("{:?}", job(&before, &worker).job),
            format!("{:?}", job(&after, &worker).job),
            "`{} = {}` changes nothing in the Job: render it",
            p.name,
            p.example
        );
        assert!(
            after
                .summary()
                .iter()
                .any(|(name, _, source)| *name == p.name && matches!(source, Source::Override(_))),
            "`{}` given by --with is missing from the summary `show` prints",
            p.name
        );
    }
}

/// A claim at the built-in tmpfs path collides with the tmpfs as surely as one at a given path.
#[test]
fn a_claim_at_the_default_tmpfs_path_is_an_error() {
    let e = resolve(
        &decl(vec![k8s(vec![
            arg("use_tmpfs", Value::Bool(true)),
            arg(
                "persistent_volume_claims",
                map(&[("c", s("/kubestep_temp"))]),
            ),
        ])]),
        &Defaults::default(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "tmpfs_path and persistent_volume_claims \"c\" both mount at \"/kubestep_temp\""
        ),
        "{e}"
    );
}

#[test]
fn run_as_non_root_alone_on_the_default_image_is_refused_before_launch() {
    let non_root = || {
        arg(
            "security_context",
            map(&[("run_as_non_root", Value::Bool(true))]),
        )
    };
    let e = resolve(
        &decl(vec![k8s(vec![non_root()])]),
        &Defaults::default(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("run_as_non_root = true (from #[kubernetes]) needs run_as_user: the default image `debian:bookworm-slim` runs as root"),
        "{e}"
    );
    // With a uid, or an image of the user's own (whose user kubestep cannot know), it renders.
    let with_user = map(&[
        ("run_as_non_root", Value::Bool(true)),
        ("run_as_user", Value::Int(1000)),
    ]);
    render(vec![arg("security_context", with_user)]);
    render(vec![non_root(), arg("image", s("ghcr.io/acme/train:1.4"))]);
}

#[test]
fn every_container_drops_all_capabilities_unless_privileged() {
    let r = render(vec![]);
    let caps = |c: &Container| {
        c.security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.drop.clone())
    };
    let pod = r.job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        assert_eq!(caps(c), Some(vec!["ALL".to_string()]), "{}", c.name);
    }
    let r = render(vec![arg(
        "security_context",
        map(&[("privileged", Value::Bool(true))]),
    )]);
    assert_eq!(caps(main(&r)), None);
}
