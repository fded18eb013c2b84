//! The command line as a user meets it: `show`, `render --explain`, and every kind of bad input
//! answered with one clear line and the right exit code.

mod common;

use common::run;
use std::process::Output;

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failure(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn show_prints_the_graph_and_each_value_with_its_source() {
    let out = stdout(&run(
        "basic",
        &["show"],
        &[("KUBESTEP_KUBERNETES_NAMESPACE", "ml")],
    ));
    assert!(out.contains("start -> square (foreach) -> end"), "{out}");
    assert!(out.contains("#[resources(memory = 8192)]"), "{out}");
    assert!(
        out.contains("memory = 8192M") && out.contains("(#[resources])"),
        "{out}"
    );
    assert!(
        out.contains("namespace = ml")
            && out.contains("(environment KUBESTEP_KUBERNETES_NAMESPACE)"),
        "{out}"
    );
}

#[test]
fn explain_names_every_source() {
    let out = stdout(&run(
        "runtime_override",
        &[
            "render",
            "train",
            "--explain",
            "--with",
            "kubernetes:memory=16000",
            "--with",
            "train/kubernetes:gpu=2",
        ],
        &[("KUBESTEP_KUBERNETES_DISK", "30000")],
    ));
    let line = |field: &str| {
        out.lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in\n{out}"))
            .to_string()
    };
    assert!(
        line("spec.template.spec.containers[0].resources.requests.cpu")
            .ends_with("<- #[kubernetes]")
    );
    assert!(
        line("spec.template.spec.containers[0].resources.requests.memory")
            .ends_with("<- --with kubernetes:memory=16000")
    );
    assert!(
        line("spec.template.spec.containers[0].resources.limits.nvidia.com/gpu")
            .ends_with("<- --with train/kubernetes:gpu=2")
    );
    assert!(
        line("spec.template.spec.containers[0].resources.requests.ephemeral-storage")
            .ends_with("<- environment KUBESTEP_KUBERNETES_DISK")
    );
    assert!(line("metadata.namespace").ends_with("<- built-in default"));
}

#[test]
fn render_needs_no_cluster_and_only_renders_kubernetes_steps() {
    let out = stdout(&run(
        "basic",
        &["render"],
        &[("KUBECONFIG", "/nonexistent")],
    ));
    assert_eq!(
        out.matches("kind: Job").count(),
        1,
        "only `square` has #[kubernetes]"
    );
    let all = stdout(&run("basic", &["render", "--with", "kubernetes"], &[]));
    assert_eq!(
        all.matches("kind: Job").count(),
        3,
        "--with kubernetes sends every step"
    );
}

#[test]
fn a_bad_override_is_a_usage_error_with_a_suggestion() {
    let err = failure(
        &run("basic", &["render", "--with", "kubernetes:memroy=1"], &[]),
        2,
    );
    assert!(
        err.contains("unknown parameter `memroy`") && err.contains("did you mean `memory`"),
        "{err}"
    );
}

#[test]
fn a_bad_override_value_names_step_flag_value_and_rule() {
    let err = failure(
        &run(
            "basic",
            &["render", "--with", "square/kubernetes:port=70000"],
            &[],
        ),
        1,
    );
    assert_eq!(
        err.trim(),
        "error: step `square`: --with square/kubernetes:port=70000: invalid `port` = 70000: a port must be from 1 to 65535"
    );
}

#[test]
fn an_override_for_a_missing_step_is_never_ignored() {
    let err = failure(
        &run(
            "basic",
            &["render", "--with", "sqare/kubernetes:cpu=2"],
            &[],
        ),
        1,
    );
    assert!(
        err.contains("flow `squares` has no step `sqare` (did you mean `square`?)"),
        "{err}"
    );
    // Every command that takes --with checks it, before it needs a datastore or a cluster.
    for command in [
        &["resume", "--with", "sqare/kubernetes:cpu=2"][..],
        &["kubernetes", "list", "--with", "sqare/kubernetes:cpu=2"],
        &["kubernetes", "kill", "--with", "sqare/kubernetes:cpu=2"],
        &[
            "kubernetes",
            "rbac",
            "--user",
            "u",
            "--with",
            "sqare/kubernetes:cpu=2",
        ],
    ] {
        let err = failure(&run("basic", command, &[]), 1);
        assert!(err.contains("has no step `sqare`"), "{command:?}: {err}");
    }
}

#[test]
fn a_bad_environment_default_names_the_variable() {
    let err = failure(
        &run(
            "basic",
            &["render"],
            &[("KUBESTEP_KUBERNETES_MEMORY", "lots")],
        ),
        1,
    );
    assert!(
        err.contains("step `square`")
            && err.contains("KUBESTEP_KUBERNETES_MEMORY=\"lots\" (environment)"),
        "{err}"
    );
    let err = failure(
        &run(
            "basic",
            &["render"],
            &[("KUBESTEP_KUBERNETES_NAMESPCE", "ml")],
        ),
        1,
    );
    assert!(
        err.contains("did you mean KUBESTEP_KUBERNETES_NAMESPACE?"),
        "{err}"
    );
}

#[test]
fn conflicting_layers_name_both_sources() {
    let err = failure(
        &run(
            "basic",
            &["render", "--with", "kubernetes:qos=BestEffort"],
            &[],
        ),
        1,
    );
    assert!(err.contains("`cpu` (from #[kubernetes]) conflicts with qos = \"BestEffort\" (from --with kubernetes:qos=BestEffort)"), "{err}");
}

#[test]
fn the_config_file_is_below_the_environment() {
    let dir = std::env::temp_dir().join(format!("kubestep-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, r#"{"KUBESTEP_KUBERNETES_NAMESPACE": "from-file", "KUBESTEP_KUBERNETES_LABELS": {"team": "ml"}}"#).unwrap();
    let file = file.to_str().unwrap();
    let out = stdout(&run("basic", &["show"], &[("KUBESTEP_CONFIG", file)]));
    assert!(
        out.contains("namespace = from-file") && out.contains("labels = team=ml"),
        "{out}"
    );
    let out = stdout(&run(
        "basic",
        &["show"],
        &[
            ("KUBESTEP_CONFIG", file),
            ("KUBESTEP_KUBERNETES_NAMESPACE", "from-env"),
        ],
    ));
    assert!(out.contains("namespace = from-env"), "{out}");
    std::fs::write(dir.join("bad.json"), "[1]").unwrap();
    let err = failure(
        &run(
            "basic",
            &["show"],
            &[("KUBESTEP_CONFIG", dir.join("bad.json").to_str().unwrap())],
        ),
        1,
    );
    assert!(err.contains("must be a JSON object"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_lists_the_commands() {
    let out = stdout(&run("basic", &["--help"], &[]));
    assert!(out.contains("show") && out.contains("render"), "{out}");
}

#[test]
fn kubernetes_runs_need_a_datastore_pods_can_reach() {
    let dir = std::env::temp_dir().join(format!("kubestep-cli-local-{}", std::process::id()));
    let err = failure(
        &run(
            "basic",
            &[
                "run",
                "--with",
                "kubernetes",
                "--datastore-root",
                dir.to_str().unwrap(),
            ],
            &[],
        ),
        1,
    );
    assert!(
        err.contains(
            "steps `start`, `square`, `end` run on Kubernetes (#[kubernetes] or --with), which needs a datastore pods can reach: --datastore s3, azure or gs (or KUBESTEP_DATASTORE)"
        ),
        "{err}"
    );
    assert!(!dir.join("squares/runs").exists(), "nothing ran");
}

/// A `#[kubernetes]` step executes on Kubernetes without any `--with`, as the decorator says:
/// with nothing configured for it, `run` stops before anything starts and names the fix.
#[test]
fn a_decorated_step_goes_to_kubernetes_and_says_what_it_needs() {
    let dir = std::env::temp_dir().join(format!("kubestep-cli-decorated-{}", std::process::id()));
    let root = ["--datastore-root", dir.to_str().unwrap()];
    let err = failure(&run("basic", &[&["run"][..], &root].concat(), &[]), 1);
    assert!(
        err.contains("step `square` runs on Kubernetes (#[kubernetes]), which needs a datastore pods can reach")
            && err.contains("`run --local` runs every step on this machine"),
        "{err}"
    );
    // KUBESTEP_DATASTORE is --datastore's default; with no cluster configured, that is named.
    let home = dir.join("home");
    let err = failure(
        &run(
            "basic",
            &["run", "--datastore-root", "s3://kubestep/nowhere"],
            &[
                ("KUBESTEP_DATASTORE", "s3"),
                ("KUBECONFIG", ""),
                ("HOME", home.to_str().unwrap()),
                ("KUBERNETES_SERVICE_HOST", ""),
            ],
        ),
        1,
    );
    assert!(
        err.contains(
            "step `square` runs on Kubernetes (#[kubernetes]), but no cluster is configured"
        ) && err.contains("point KUBECONFIG at one, or `run --local`"),
        "{err}"
    );
    assert!(!dir.join("squares/runs").exists(), "nothing ran");
    // --local runs it here; it cannot be combined with --with.
    let out = run(
        "basic",
        &[&["run", "--local", "--quiet"][..], &root].concat(),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = failure(
        &run("basic", &["run", "--local", "--with", "kubernetes"], &[]),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn rbac_needs_exactly_one_subject_and_prints_the_role() {
    let err = failure(&run("basic", &["kubernetes", "rbac"], &[]), 2);
    assert!(err.contains("--user"), "{err}");
    let out = stdout(&run(
        "custom_image",
        &["kubernetes", "rbac", "--service-account", "ci/runner"],
        &[],
    ));
    // One Role and one RoleBinding for each namespace the steps use.
    assert_eq!(out.matches("\nkind: Role\n").count(), 2, "{out}");
    assert_eq!(out.matches("\nkind: RoleBinding\n").count(), 2, "{out}");
    assert!(
        out.contains("namespace: data") && out.contains("namespace: default"),
        "{out}"
    );
    assert!(
        out.contains("kind: ServiceAccount\n  name: runner\n  namespace: ci"),
        "{out}"
    );
}

/// `kubernetes kill` without `--run-id` takes the running run; with several running it refuses
/// and lists them, before it marks or deletes anything.
#[test]
fn kill_without_a_run_id_refuses_when_several_runs_are_running() {
    use kubestep::datastore::{Datastore, Key, RunRecord, Status};
    let dir = std::env::temp_dir().join(format!("kubestep-cli-kill-{}", std::process::id()));
    let ds = Datastore::local(&dir, "squares").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (run_id, status) in [
        ("1", Status::Running),
        ("2", Status::Running),
        ("3", Status::Failed),
    ] {
        let record = RunRecord {
            flow: "squares".into(),
            run_id: run_id.into(),
            status,
            started_ms: 1,
            finished_ms: None,
            cause: None,
            orchestrator_namespace: None,
        };
        rt.block_on(ds.put_record(&Key::Run(run_id.into()), &record))
            .unwrap();
    }
    let err = failure(
        &run(
            "basic",
            &[
                "kubernetes",
                "kill",
                "--datastore-root",
                dir.to_str().unwrap(),
            ],
            &[],
        ),
        1,
    );
    assert!(
        err.contains("2 runs of flow `squares` are running (1, 2); name one with --run-id"),
        "{err}"
    );
    assert!(!dir.join("squares/runs/1/killed.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `show --graph`: the flow as a Mermaid flowchart, each step with its decorators and where it
/// runs, each edge with how the next stage runs.
#[test]
fn show_graph_prints_a_mermaid_flowchart() {
    let out = stdout(&run("basic", &["show", "--graph"], &[]));
    let expected = [
        "flowchart TD",
        r#"    step_start["<b>start</b><br/>local"]"#,
        r#"    step_square["<b>square</b><br/>#[kubernetes(cpu = 2, memory = 4096, image = #quot;debian:bookworm-slim#quot;)]<br/>#[resources(memory = 8192)]<br/>#[retry(times = 2)]<br/>on Kubernetes"]"#,
        r#"    step_end["<b>end</b><br/>local"]"#,
        "    step_start -->|foreach| step_square",
        "    step_square -->|join| step_end",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    // --with changes where a step runs; a branch fans out and joins.
    let out = stdout(&run(
        "flow_shapes",
        &["show", "--graph", "--with", "kubernetes"],
        &[],
    ));
    for line in [
        r#"    step_start["<b>start</b><br/>on Kubernetes"]"#,
        "    step_start --> step_as_text",
        "    step_start --> step_as_float",
        "    step_as_float -->|join| step_combine",
        "    step_combine -->|parallel x4| step_train",
    ] {
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
}

/// A kubeconfig that is named but missing, unreadable or not YAML is said on one line with the
/// file and the fix, never passed over for another source; so is a server that cannot be reached.
#[test]
fn a_bad_kubeconfig_is_named_on_one_line_with_the_fix() {
    let dir = std::env::temp_dir().join(format!("kubestep-cli-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_yaml = dir.join("not-yaml");
    std::fs::write(&not_yaml, "clusters: [unclosed\n").unwrap();
    let nowhere = dir.join("nowhere");
    // Port 1 on this machine: nothing listens there.
    std::fs::write(
        &nowhere,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
    let run_with = |kubeconfig: &std::path::Path| {
        failure(
            &run(
                "basic",
                &["run", "--datastore-root", "s3://kubestep/nowhere"],
                &[
                    ("KUBESTEP_DATASTORE", "s3"),
                    ("KUBECONFIG", kubeconfig.to_str().unwrap()),
                ],
            ),
            1,
        )
    };
    for (kubeconfig, reason) in [
        (dir.join("missing"), "No such file or directory"),
        // A directory: unreadable as a file (the tests run as root, whom modes do not stop).
        (dir.clone(), "Is a directory"),
        (not_yaml.clone(), "line 1"),
    ] {
        let err = run_with(&kubeconfig);
        assert!(
            err.contains(&format!(
                "step `square` runs on Kubernetes (#[kubernetes]), but the kubeconfig {} cannot be used: ",
                kubeconfig.display()
            )) && err.contains(reason)
                && err.contains("; fix it, or point KUBECONFIG at another, or `run --local`")
                && err.trim_end().lines().count() == 1,
            "{err}"
        );
    }
    let err = run_with(&nowhere);
    assert!(
        err.contains("cannot reach the Kubernetes API server at https://127.0.0.1:1/: ")
            && err.contains("Connection refused")
            && err.contains(
                "is the cluster up, and is it the one KUBECONFIG's current context names?"
            )
            && err.trim_end().lines().count() == 1,
        "{err}"
    );
}

/// A schedule renders offline as the CronJob `deploy` makes: the schedule and its time zone,
/// the flow's parameters in the orchestrator's plan, and no URL that expires (the pod signs its
/// own request for the binary). Bad input is named before anything is made.
#[test]
fn render_deploy_shows_the_schedule_offline() {
    let out = stdout(&run(
        "reliability",
        &[
            "render",
            "--deploy",
            "--schedule",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
            "--items",
            "7",
            "--datastore",
            "s3",
            "--datastore-root",
            "s3://bucket/flows",
        ],
        &[],
    ));
    for part in [
        "kind: CronJob",
        "0 3 * * *",
        "timeZone: Europe/Paris",
        "concurrencyPolicy: Forbid",
        "podReplacementPolicy: Failed",
        "--aws-sigv4",
        "metadata.labels['batch.kubernetes.io/job-name']",
        "[7,10]",
        "serviceAccountName: kubestep-orchestrator",
    ] {
        assert!(out.contains(part), "no {part:?} in {out}");
    }
    assert!(!out.contains("X-Amz-Signature"), "{out}");
    let err = failure(
        &run(
            "reliability",
            &["render", "--deploy", "--schedule", "every night"],
            &[],
        ),
        2,
    );
    assert!(
        err.contains("schedule \"every night\": expected five fields"),
        "{err}"
    );
    let err = failure(&run("reliability", &["deploy"], &[]), 1);
    assert!(err.contains("deploy needs --schedule CRON"), "{err}");
    let err = failure(&run("basic", &["run", "--detach", "--local"], &[]), 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// The orchestrators' ServiceAccount gets a run's Role, never the deployer's CronJobs; a
/// deployer's Role has them.
#[test]
fn rbac_prints_the_orchestrator_account_and_the_deployer_role() {
    let out = stdout(&run(
        "reliability",
        &["kubernetes", "rbac", "--orchestrator"],
        &[],
    ));
    assert!(
        out.contains("kind: ServiceAccount") && out.contains("name: kubestep-orchestrator"),
        "{out}"
    );
    assert!(
        out.contains("- leases") && !out.contains("cronjobs"),
        "{out}"
    );
    let out = stdout(&run(
        "reliability",
        &["kubernetes", "rbac", "--deployer", "--user", "ana"],
        &[],
    ));
    assert!(
        out.contains("- cronjobs") && out.contains("name: kubestep-deployer"),
        "{out}"
    );
    let err = failure(
        &run(
            "reliability",
            &["kubernetes", "rbac", "--deployer", "--orchestrator"],
            &[],
        ),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
}
