//! `run --with kubernetes` end to end on the test cluster: the example flows run as Jobs whose
//! pods fetch the example's own binary from the S3 emulator, outputs are read back through the
//! client API, and every failure names its cause. The flows run as a user bound to exactly the
//! Role that `kubernetes rbac` prints.

mod common;
mod kubernetes {
    mod effects;
    pub mod gang;
}

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use kubestep::client::Client;
use kubestep::core::labels::{RUN_ID, STEP, TASK_ID};
use kubestep::datastore::{Kind, PodStage, Status, TaskRecord};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::process::Output;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Creates `obj` from JSON unless it exists.
async fn ensure<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    let obj: K = serde_json::from_value(obj).expect("valid object");
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("cannot create {:?}: {e}", obj.meta().name),
    }
}

/// The environment a user's shell has after `testenv up`, with KUBECONFIG naming the
/// restricted user; the cluster prepared as an admin would for the examples.
async fn setup() -> &'static Vec<(String, String)> {
    static ENV: OnceCell<Vec<(String, String)>> = OnceCell::const_new();
    ENV.get_or_init(|| async {
        let env = kubestep_testenv::shared();
        let admin = env.client().await;
        let s3: Secret = Api::<Secret>::namespaced(admin.clone(), "default")
            .get(kubestep_testenv::S3_SECRET_NAME)
            .await
            .expect("the testenv S3 Secret");
        for ns in [
            "default",
            "ml",
            "data",
            "full",
            BASELINE,
            RESTRICTED,
            kubernetes::gang::BLOCKED,
            NO_JOBS,
        ] {
            // Pod Security Admission enforces what the namespace's labels say.
            let labels = match ns {
                BASELINE => serde_json::json!({"pod-security.kubernetes.io/enforce": "baseline"}),
                RESTRICTED => {
                    serde_json::json!({"pod-security.kubernetes.io/enforce": "restricted"})
                }
                _ => serde_json::json!({}),
            };
            ensure(
                &Api::<Namespace>::all(admin.clone()),
                serde_json::json!({"metadata": {"name": ns, "labels": labels}}),
            )
            .await;
            let secrets = Api::<Secret>::namespaced(admin.clone(), ns);
            ensure(
                &secrets,
                serde_json::json!({"metadata": {"name": kubestep_testenv::S3_SECRET_NAME},
                    "data": s3.data}),
            )
            .await;
            ensure(
                &secrets,
                serde_json::json!({"metadata": {"name": "aws-creds"},
                    "stringData": {"EXAMPLE_TOKEN": "t"}}),
            )
            .await;
            // What the private registry of `custom_image` really asks for.
            ensure(
                &secrets,
                serde_json::json!({"metadata": {"name": "regcred"},
                    "type": "kubernetes.io/dockerconfigjson",
                    "stringData": {".dockerconfigjson": kubestep_testenv::pull_secret_json()}}),
            )
            .await;
            for sa in ["trainer", "sorter"] {
                ensure(
                    &Api::<ServiceAccount>::namespaced(admin.clone(), ns),
                    serde_json::json!({"metadata": {"name": sa}}),
                )
                .await;
            }
        }
        for (ns, claim) in [
            ("default", "datasets"),
            ("default", "checkpoints"),
            ("ml", "datasets"),
        ] {
            ensure(
                &Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns),
                serde_json::json!({"metadata": {"name": claim}, "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}),
            )
            .await;
        }
        // A namespace whose quota allows no pod: the Job controller cannot create one.
        ensure(
            &Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(admin.clone(), "full"),
            serde_json::json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}),
        )
        .await;
        // A namespace whose quota allows no Job: a dry run is refused.
        ensure(
            &Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(admin.clone(), NO_JOBS),
            serde_json::json!({"metadata": {"name": "no-jobs"},
                "spec": {"hard": {"count/jobs.batch": "0"}}}),
        )
        .await;
        // Where a gang's control member cannot start.
        env.apply(kubernetes::gang::HOLD_CONTROL_MEMBER)
            .await
            .expect("the admission policy applies");
        // The Role and RoleBinding `kubernetes rbac` prints, for every namespace the examples
        // use, applied as they are printed.
        let user = kubestep_testenv::RESTRICTED_USER;
        for (example, with) in [
            ("basic", "kubernetes"),
            ("all_parameters", "kubernetes"),
            ("custom_image", "kubernetes"),
            ("kubernetes_failures", "work/kubernetes:namespace=full"),
            ("basic", "kubernetes:namespace=psa-baseline"),
            ("pod_effects", "kubernetes"),
            ("allreduce", "reduce/kubernetes:namespace=gang-blocked"),
            ("basic", "kubernetes:namespace=no-jobs"),
        ] {
            let out = common::run(
                example,
                &["kubernetes", "rbac", "--user", user, "--with", with],
                &[],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            env.apply(&String::from_utf8(out.stdout).unwrap())
                .await
                .expect("the printed RBAC applies");
        }
        env.restricted_exports()
    })
    .await
}

/// A namespace whose quota allows no Job at all.
const NO_JOBS: &str = "no-jobs";

/// A namespace whose Pod Security Admission enforces the `baseline` level.
const BASELINE: &str = "psa-baseline";
/// A namespace whose Pod Security Admission enforces the `restricted` level.
const RESTRICTED: &str = "psa-restricted";

fn root() -> String {
    format!("s3://kubestep/k8s-{}", std::process::id())
}

/// Runs `example` with `run --with kubernetes` on the S3 emulator; returns the output and the
/// run id.
async fn run(example: &str, args: &[&str], extra: &[(&str, &str)]) -> (Output, String) {
    let args = [&["--with", "kubernetes"][..], args].concat();
    run_program(common::example(example), &args, extra).await
}

/// Runs the flow program at `program` with `run` on the S3 emulator, as the test user, with
/// `args` and the `extra` environment; returns the output and the run id.
async fn run_program(
    program: std::path::PathBuf,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (Output, String) {
    let env = setup().await;
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = program.file_name().unwrap().to_string_lossy().into_owned();
    let id_file = std::env::temp_dir().join(format!(
        "kubestep-k8s-{}-{name}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let root = root();
    let mut all = vec![
        "run",
        "--datastore",
        "s3",
        "--datastore-root",
        &root,
        "--run-id-file",
        id_file.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.extend_from_slice(extra);
    let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run_program(&program, &args, &vars)
    })
    .await
    .unwrap();
    let run_id = std::fs::read_to_string(&id_file).unwrap_or_default();
    let _ = std::fs::remove_file(&id_file);
    (out, run_id)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn client(flow: &str) -> Client {
    Client::open_with(Kind::S3, &root(), flow, setup().await.clone()).unwrap()
}

/// Runs `example` to success and checks the last step's output.
async fn succeeds<T: DeserializeOwned + PartialEq + Debug + 'static>(
    example: &str,
    flow: &str,
    args: &[&str],
    last: &str,
    expected: T,
) {
    let (out, run_id) = run(example, args, &[]).await;
    assert!(out.status.success(), "{example}: {}", text(&out));
    let client = client(flow).await;
    assert_eq!(
        client.output::<T>(&run_id, last, "0").await.unwrap(),
        expected,
        "{example}"
    );
}

#[tokio::test]
async fn basic_foreach_runs_every_task_in_a_pod() {
    succeeds("basic", "squares", &[], "end", 30u64).await;
}

/// kubestep's default rendering passes the `baseline` Pod Security level that production
/// clusters enforce, and the level is really enforced there: a privileged pod is refused.
#[tokio::test]
async fn the_default_rendering_runs_under_baseline_pod_security() {
    succeeds(
        "basic",
        "squares",
        &["--with", "kubernetes:namespace=psa-baseline"],
        "end",
        30u64,
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(kubestep_testenv::shared().client().await, BASELINE);
    let privileged = serde_json::json!({"metadata": {"name": "privileged"}, "spec": {"containers": [{
        "name": "main", "image": "busybox", "securityContext": {"privileged": true}}]}});
    let refused = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(privileged).unwrap(),
        )
        .await
        .expect_err("a privileged pod is refused under baseline");
    assert!(
        refused
            .to_string()
            .contains("violates PodSecurity \"baseline"),
        "{refused}"
    );
}

/// A step whose pods a namespace's Pod Security level refuses: the dry run's warning says so
/// before anything is launched, and the step fails naming the refusal.
#[tokio::test]
async fn pod_security_refusals_are_said_before_launch() {
    let (out, _) = run(
        "basic",
        &["--with", &format!("kubernetes:namespace={RESTRICTED}")],
        &[],
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let warned = all
        .find("kubestep: step `start`: the API server warns about its Job: would violate PodSecurity \"restricted:latest\"")
        .unwrap_or_else(|| panic!("no warning: {all}"));
    let launched = all.find("[start/0]").unwrap_or(usize::MAX);
    assert!(warned < launched, "warned after the launch: {all}");
    // The refusal ends the step when the Job's Events say it, not at the scheduling timeout.
    assert!(
        all.contains("the namespace's Pod Security level refuses its pods: FailedCreate: ")
            && all.contains("violates PodSecurity"),
        "{all}"
    );
}

#[tokio::test]
async fn gpu_steps_land_on_the_gpu_node_and_gpu_0_avoids_it() {
    succeeds("gpu", "gpu-training", &[], "evaluate", true).await;
}

#[tokio::test]
async fn custom_image_namespace_and_service_account() {
    succeeds(
        "custom_image",
        "custom-image",
        &[],
        "sort",
        vec![1u32, 2, 3],
    )
    .await;
}

#[tokio::test]
async fn every_shape_runs_on_kubernetes() {
    succeeds("flow_shapes", "shapes", &[], "gather", 4 * (2 + 3u64)).await;
}

#[tokio::test]
async fn labels_and_annotations() {
    succeeds("labels_annotations", "labelled", &[], "score", 10u32).await;
}

#[tokio::test]
async fn node_selectors_and_compute_pool() {
    succeeds("node_selector", "node-selection", &[], "on_ssd", 16u64).await;
}

#[tokio::test]
async fn persistent_volumes_and_tmpfs() {
    succeeds("persistent_volumes", "volumes", &[], "preprocess", 15usize).await;
}

#[tokio::test]
async fn security_context() {
    succeeds("security_context", "secure", &[], "locked_down", 1u8).await;
}

#[tokio::test]
async fn tolerations() {
    succeeds(
        "tolerations",
        "tolerations",
        &[],
        "shout",
        "HELLO".to_string(),
    )
    .await;
}

#[tokio::test]
async fn all_parameters_at_once() {
    succeeds("all_parameters", "all-parameters", &[], "train", 3.0f32).await;
}

#[tokio::test]
async fn parameters_reach_the_pods() {
    succeeds(
        "parameters",
        "parameters",
        &["--alpha", "0.5", "--n", "4"],
        "end",
        3.0f64,
    )
    .await;
}

#[tokio::test]
async fn a_large_output_moves_through_s3() {
    succeeds("large_output", "large", &[], "end", {
        let n = 64 * 1024 * 1024 / 8;
        (0..n).map(|i| (i % 1000) as f64 * 0.001).sum::<f64>()
    })
    .await;
}

/// An ndarray model (with an Arrow history inside) and an Arrow table, each step in a pod,
/// handed over through the S3 emulator and read back through the client.
#[tokio::test]
async fn arrays_and_tables_move_through_s3() {
    let (out, run_id) = run("arrays", &[], &[]).await;
    assert!(out.status.success(), "arrays: {}", text(&out));
    let summary: kubestep::arrow::Table = client("arrays")
        .await
        .output(&run_id, "summary", "0")
        .await
        .unwrap();
    assert_eq!(summary.num_rows(), 100);
    let totals = common::f64_column(&summary, "total");
    // Row 7 of the transposed scores: column 7 of the 1000 x 100 weights, plus its bias 3.5.
    let expected = (0..1000).map(|i| f64::from(i * 100 + 7)).sum::<f64>() + 1000.0 * 3.5;
    assert_eq!(totals.value(7), expected);
}

#[tokio::test]
async fn the_runtime_override_applies_to_every_step_and_one() {
    let (out, run_id) = run(
        "runtime_override",
        &[
            "--with",
            "kubernetes:cpu=2",
            "--with",
            "train/kubernetes:memory=3000",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let client = client("override").await;
    assert_eq!(
        client
            .output::<String>(&run_id, "report", "0")
            .await
            .unwrap(),
        "total 6"
    );
    // The pods ran with the overridden requests.
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(kubestep_testenv::shared().client().await, "default");
    let list = pods
        .list(&kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    for p in &list.items {
        let step = &p.metadata.labels.as_ref().unwrap()[STEP];
        let requests = p.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .clone()
            .unwrap();
        assert_eq!(requests["cpu"].0, "2", "{step}");
        // The API server normalises 3000M to 3G.
        let memory = if step == "train" { "3G" } else { "4096M" };
        assert_eq!(requests["memory"].0, memory, "{step}");
    }
}

/// The README's "Your own flow" crate, built fresh from its text, runs as the README says: `run`
/// sends `square` (#[kubernetes]) to the cluster, ten pods, and keeps `start` and `end` here.
#[tokio::test]
async fn the_readmes_own_flow_runs_on_the_cluster() {
    let exe = tokio::task::spawn_blocking(common::getting_started)
        .await
        .unwrap();
    let (out, run_id) = run_program(exe, &[], &[]).await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[end/0] sum of squares: 385"), "{all}");
    let tasks = client("hello").await.tasks(&run_id).await.unwrap();
    assert_eq!(tasks.len(), 12);
    for t in &tasks {
        let in_pod = t.attempts.iter().all(|a| a.pod.is_some());
        assert_eq!(in_pod, t.step == "square", "{t:?}");
    }
}

/// `report` of run `run_id` of `example`: the page's HTML.
async fn report_of(example: &str, run_id: &str) -> String {
    let env = setup().await;
    let page =
        std::env::temp_dir().join(format!("kubestep-k8s-{}-{run_id}.html", std::process::id()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root = root();
    let args = [
        "report",
        run_id,
        "--output",
        page.to_str().unwrap(),
        "--datastore",
        "s3",
        "--datastore-root",
        &root,
    ];
    let out = common::run(example, &args, &vars);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_file(&page);
    html
}

/// Runs `kubernetes_failures`, which must fail; returns the one-line cause it failed with, and
/// its run id. [`fails_with_output`] also gives everything it printed.
async fn fails(args: &[&str], extra: &[(&str, &str)]) -> (String, String) {
    let (cause, _, run_id) = fails_with_output(args, extra).await;
    (cause, run_id)
}

async fn fails_with_output(args: &[&str], extra: &[(&str, &str)]) -> (String, String, String) {
    let (out, run_id) = run("kubernetes_failures", args, extra).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let cause = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {all}"))
        .to_string();
    (cause, all, run_id)
}

#[tokio::test]
async fn oom_names_the_limit_and_keeps_the_last_lines() {
    let (cause, run_id) = fails(&["--fail", "oom"], &[]).await;
    assert!(
        cause.contains("OOMKilled") && cause.contains("256M") && cause.contains("memory="),
        "{cause}"
    );
    let client = client("k8s-failures").await;
    let log = client.log(&run_id, "work", "0", 0).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("work starts in mode oom"),
        "the log of the OOM-killed pod was saved"
    );
}

/// A step that overruns its pod's disk limit is evicted by the kubelet: its own failure, named
/// with the limit, not an infrastructure loss retried on a new pod. (Disk is a limit in a
/// Guaranteed pod; a Burstable one has only the request, as Metaflow's.)
#[tokio::test]
async fn a_disk_overrun_is_the_steps_failure() {
    let (cause, run_id) = fails(
        &[
            "--fail",
            "disk",
            "--with",
            "work/kubernetes:disk=64,qos=Guaranteed",
        ],
        &[],
    )
    .await;
    assert!(
        cause.contains("evicted for its disk use") && cause.contains("64M"),
        "{cause}"
    );
    let task = client("k8s-failures")
        .await
        .task(&run_id, "work", "0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.attempts.len(), 1, "not retried: {:?}", task.attempts);
}

/// The private registry's image without its pull Secret fails at once, naming the image.
#[tokio::test]
async fn a_private_image_without_its_secret_fails_naming_it() {
    let (cause, _) = fails(
        &[
            "--with",
            "work/kubernetes:image=registry.example.com/acme/sorter:1.4",
        ],
        &[],
    )
    .await;
    assert!(
        cause.contains("registry.example.com/acme/sorter:1.4") && cause.contains("pull"),
        "{cause}"
    );
}

#[tokio::test]
async fn an_exit_code_is_the_cause() {
    let (cause, run_id) = fails(&["--fail", "exit"], &[]).await;
    assert!(cause.contains("exit code 3"), "{cause}");
    let log = client("k8s-failures")
        .await
        .log(&run_id, "work", "0", 0)
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&log).contains("work gives up"));
}

/// The step stops itself at its `#[timeout]`, counted from its own start (the pod's deadline,
/// which counts the image pull and the binary's fetch too, is only a backstop).
#[tokio::test]
async fn a_timeout_is_enforced_by_the_step_itself() {
    let (cause, run_id) = fails(&["--fail", "hang"], &[]).await;
    assert!(
        cause.contains("timed out after 45 s (#[timeout] of step `work`)"),
        "{cause}"
    );
    let log = client("k8s-failures")
        .await
        .log(&run_id, "work", "0", 0)
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("kubestep: timed out after 45 s"),
        "the step's own timer stopped it"
    );
}

/// A glibc binary in an image without its loader (busybox is static) cannot be executed: the
/// runtime's StartError (exit 128, no log) is named with its likely cause.
#[tokio::test]
async fn a_binary_that_cannot_start_names_the_likely_cause() {
    let (cause, _) = fails(&["--with", "work/kubernetes:image=busybox"], &[]).await;
    assert!(
        cause.contains("the step could not start in image `busybox`")
            && cause.contains("lacks the binary's loader"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_missing_image_fails_fast_and_names_it() {
    let (cause, run_id) = fails(&["--with", "work/kubernetes:image=no-such-image:1"], &[]).await;
    assert!(
        cause.contains("cannot pull image `no-such-image:1`"),
        "{cause}"
    );
    no_job_left(&run_id, Some("work")).await;
}

#[tokio::test]
async fn a_missing_secret_fails_fast_and_names_it() {
    let (cause, run_id) = fails(
        &["--with", "work/kubernetes:secrets=[\"no-such-secret\"]"],
        &[],
    )
    .await;
    assert!(
        cause.contains("CreateContainerConfigError") && cause.contains("no-such-secret"),
        "{cause}"
    );
    no_job_left(&run_id, Some("work")).await;
}

#[tokio::test]
async fn an_unschedulable_pod_is_explained_then_times_out() {
    let (_, all, run_id) = fails_with_output(
        &["--with", "work/kubernetes:gpu=4"],
        &[("KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT", "3")],
    )
    .await;
    assert!(
        all.contains("[work/0] pending: Unschedulable: 0/4 nodes are available")
            && all.contains("Insufficient nvidia.com/gpu"),
        "{all}"
    );
    assert!(
        all.contains("not scheduled after 3 s (KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT)"),
        "{all}"
    );
    no_job_left(&run_id, Some("work")).await;
    // The record keeps the scheduler's reason as the watch brought it; the report shows it.
    let task = client("k8s-failures")
        .await
        .task(&run_id, "work", "0")
        .await
        .unwrap()
        .unwrap();
    let pod = task.attempts[0].pod.clone().expect("the attempt's pod");
    assert_eq!(pod.node, None);
    let stages: Vec<PodStage> = pod.marks.iter().map(|m| m.stage).collect();
    assert_eq!(stages.first(), Some(&PodStage::Created), "{pod:?}");
    assert!(
        pod.marks.iter().any(|m| m.stage == PodStage::Pending
            && m.note
                .as_deref()
                .is_some_and(|n| n.starts_with("Unschedulable: 0/4 nodes"))),
        "{pod:?}"
    );
    let html = report_of("kubernetes_failures", &run_id).await;
    assert!(
        html.contains("pending: Unschedulable: 0/4 nodes are available"),
        "{html}"
    );
    assert!(
        html.contains(&pod.name) && html.contains("(never scheduled)"),
        "{html}"
    );
}

#[tokio::test]
async fn a_job_without_a_pod_is_explained_by_its_events() {
    let (_, all, _) = fails_with_output(
        &["--with", "work/kubernetes:namespace=full"],
        &[("KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT", "15")],
    )
    .await;
    assert!(
        all.contains("[work/0] pending: FailedCreate:") && all.contains("exceeded quota"),
        "{all}"
    );
    assert!(
        all.contains("not scheduled after 15 s") && all.contains("exceeded quota: no-pods"),
        "{all}"
    );
}

/// What the API server would refuse of a step's Job (here a quota on Jobs) is said before the
/// run launches anything, by a server-side dry run.
#[tokio::test]
async fn a_refused_job_is_named_before_anything_is_launched() {
    let (out, run_id) = run("basic", &["--with", "kubernetes:namespace=no-jobs"], &[]).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("step `start`: the API server refuses its Job (a server-side dry run, before anything was launched): ")
            && all.contains("exceeded quota: no-jobs"),
        "{all}"
    );
    assert!(!all.contains("[start/0]"), "nothing ran: {all}");
    let admin = kubestep_testenv::shared().client().await;
    assert_no_job_in(admin, NO_JOBS).await;
    assert!(
        run_id.is_empty()
            || client("squares")
                .await
                .tasks(&run_id)
                .await
                .unwrap()
                .is_empty()
    );
}

/// A Secret's value reaches the pod through `envFrom` and nowhere else: not the run's output,
/// its records or logs, `render`, `show`, `logs` or `kubernetes list`; nor does a presigned URL.
#[tokio::test]
async fn a_secrets_value_and_the_binarys_url_appear_nowhere_kubestep_writes() {
    let value = format!("kubestep-secret-value-{}", std::process::id());
    let admin = kubestep_testenv::shared().client().await;
    ensure(
        &Api::<Secret>::namespaced(admin, "default"),
        serde_json::json!({"metadata": {"name": "leak-check"},
            "stringData": {"LEAK_CHECK_TOKEN": value}}),
    )
    .await;
    let with = "kubernetes:secrets=[\"leak-check\"]";
    let (out, run_id) = run("basic", &["--with", with], &[]).await;
    let mut seen = text(&out);
    assert!(out.status.success(), "{seen}");
    let env = setup().await;
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root = root();
    let store = ["--datastore", "s3", "--datastore-root", root.as_str()];
    for args in [
        vec!["render", "--with", "kubernetes", "--with", with],
        vec![
            "render",
            "--explain",
            "--with",
            "kubernetes",
            "--with",
            with,
        ],
        vec!["show", "--with", "kubernetes", "--with", with],
        [&["logs", &format!("{run_id}/square")][..], &store[..]].concat(),
        [&["logs", &format!("{run_id}/end")][..], &store[..]].concat(),
        vec!["kubernetes", "list", "--run-id", run_id.as_str()],
    ] {
        let out = common::run("basic", &args, &vars);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        seen.push_str(&text(&out));
    }
    let client = client("squares").await;
    seen.push_str(&format!("{:?}", client.run(&run_id).await.unwrap()));
    for t in client.tasks(&run_id).await.unwrap() {
        seen.push_str(&format!("{t:?}"));
        for a in &t.attempts {
            let log = client
                .log(&run_id, &t.step, &t.task_id, a.attempt)
                .await
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&log.unwrap_or_default()));
        }
    }
    // The Secret is named (that is how pods get it); its value is not.
    assert!(seen.contains("leak-check"), "{seen}");
    assert!(!seen.contains(&value), "the Secret's value leaked: {seen}");
    assert!(
        !seen.contains("X-Amz-Signature"),
        "a presigned URL leaked: {seen}"
    );
}

/// With one verb taken out of the Role `kubernetes rbac` prints, a run stops before it uploads
/// or creates anything, naming the permission it lacks.
#[tokio::test]
async fn a_missing_permission_is_named_before_anything_is_launched() {
    let ns = "rbac-partial";
    let env = kubestep_testenv::shared();
    let admin = env.client().await;
    ensure(
        &Api::<Namespace>::all(admin.clone()),
        serde_json::json!({"metadata": {"name": ns}}),
    )
    .await;
    let with = format!("kubernetes:namespace={ns}");
    let printed = common::run(
        "basic",
        &[
            "kubernetes",
            "rbac",
            "--user",
            kubestep_testenv::RESTRICTED_USER,
            "--with",
            &with,
        ],
        &[],
    );
    let printed = String::from_utf8(printed.stdout).unwrap();
    let without_watch: Vec<&str> = printed.lines().filter(|l| l.trim() != "- watch").collect();
    assert_eq!(
        printed.lines().count(),
        without_watch.len() + 1,
        "{printed}"
    );
    env.apply(&without_watch.join("\n"))
        .await
        .expect("the Role without watch applies");
    let (out, _) = run("basic", &["--with", &with], &[]).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "the Kubernetes user of this run may not watch pods in namespace {ns}; `kubernetes rbac --user NAME`"
        )),
        "{all}"
    );
    assert_no_job_in(admin, ns).await;
}

/// `ns` holds no Job at all: nothing was launched there.
async fn assert_no_job_in(admin: kube::Client, ns: &str) {
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin, ns);
    let found = jobs.list(&Default::default()).await.unwrap().items;
    assert!(found.is_empty(), "Jobs in {ns}: {found:?}");
}

/// Waits (bounded) until the run (or its `step`) has no Job and no pod.
async fn no_job_left(run_id: &str, step: Option<&str>) {
    let admin = kubestep_testenv::shared().client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin, "default");
    let mut selector = format!("{RUN_ID}={run_id}");
    if let Some(step) = step {
        selector.push_str(&format!(",{STEP}={step}"));
    }
    let lp = kube::api::ListParams::default().labels(&selector);
    for _ in 0..100 {
        let (j, p) = (
            jobs.list(&lp).await.unwrap().items.len(),
            pods.list(&lp).await.unwrap().items.len(),
        );
        if j == 0 && p == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("run {run_id} still has Jobs or pods");
}

/// Starts `kubernetes_failures --fail sleep` in the background: a run whose step takes a few
/// seconds, long enough to disturb; returns the process and its run-id file.
async fn sleeping(name: &str) -> (std::process::Child, std::path::PathBuf) {
    let env = setup().await.clone();
    let id_file = std::env::temp_dir().join(format!("kubestep-k8s-{name}-{}", std::process::id()));
    let child = std::process::Command::new(common::example("kubernetes_failures"))
        .args([
            "run",
            "--with",
            "kubernetes",
            "--datastore",
            "s3",
            "--datastore-root",
            &root(),
            "--fail",
            "sleep",
            "--run-id-file",
            id_file.to_str().unwrap(),
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, id_file)
}

/// Evicts the running pod of a sleeping run with this grace period (a drain); the run
/// succeeds on its retry. Returns its id.
async fn drained(name: &str, grace: u32) -> String {
    let (child, id_file) = sleeping(name).await;
    let pod = common::running_pod(&id_file, "work").await;
    assert!(
        kubestep_testenv::shared()
            .evict("default", &pod, Some(grace))
            .await
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::read_to_string(&id_file).unwrap()
}

#[tokio::test]
async fn an_eviction_is_retried_without_spending_retry() {
    // A 1-second grace period: the step is killed mid-run.
    let run_id = drained("evict", 1).await;
    let client = client("k8s-failures").await;
    let task: TaskRecord = client.task(&run_id, "work", "0").await.unwrap().unwrap();
    assert_eq!(task.status, Status::Succeeded);
    assert_eq!(task.attempts.len(), 2, "{task:?}");
    let cause = task.attempts[0].cause.clone().unwrap();
    assert!(
        cause.contains("EvictionByEvictionAPI") && cause.contains("(infrastructure)"),
        "{cause}"
    );
    // Each attempt's pod went through its stages (the evicted one was running when it went),
    // with what it asked for; the report links the retry to the evicted attempt.
    for a in &task.attempts {
        let pod = a.pod.as_ref().expect("the attempt's pod");
        let stages: Vec<PodStage> = pod.marks.iter().map(|m| m.stage).collect();
        for stage in [
            PodStage::Created,
            PodStage::Scheduled,
            PodStage::Initialized,
            PodStage::Started,
        ] {
            assert!(stages.contains(&stage), "attempt {}: {stages:?}", a.attempt);
        }
        assert!(
            pod.resources
                .as_deref()
                .is_some_and(|r| r.starts_with("requests cpu=")),
            "{pod:?}"
        );
    }
    let html = report_of("kubernetes_failures", &run_id).await;
    for a in &task.attempts {
        let pod = a.pod.as_ref().unwrap();
        assert!(
            html.contains(&format!(
                "pod default/{} (uid {}) on node {}",
                pod.name,
                pod.uid,
                pod.node.as_deref().unwrap()
            )),
            "{html}"
        );
    }
    assert!(
        html.contains("href=\"#attempt-work-0-0\">retry of #0"),
        "{html}"
    );
    assert!(
        html.matches("class=\"span k-running\"").count() >= 2,
        "{html}"
    );
}

/// A drain with the usual 30-second grace period: the step process, PID 1 of its container,
/// stops at once on SIGTERM and says so in its log (without a handler the kernel would have it
/// ignore SIGTERM and the pod would linger until the SIGKILL 30 s later, with no such line).
#[tokio::test]
async fn a_drained_pod_stops_its_step_on_sigterm() {
    let run_id = drained("sigterm", 30).await;
    let client = client("k8s-failures").await;
    let log = client.log(&run_id, "work", "0", 0).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&log)
            .trim_end()
            .ends_with("kubestep: stopped by SIGTERM (its pod was deleted or its node drained)"),
        "{}",
        String::from_utf8_lossy(&log)
    );
}

/// `kubernetes kill` stops a live run: without its mark in the datastore the deleted pod would
/// read as lost and be launched again; with it the run ends as killed, with no second attempt.
#[tokio::test]
async fn kubernetes_kill_stops_a_live_run() {
    let (child, id_file) = sleeping("kill").await;
    common::running_pod(&id_file, "work").await;
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    kill("kubernetes_failures", &run_id).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("killed by `kubernetes kill`"), "{all}");
    let client = client("k8s-failures").await;
    let task = client.task(&run_id, "work", "0").await.unwrap().unwrap();
    assert_eq!(task.attempts.len(), 1, "launched again: {task:?}");
    let run = client.run(&run_id).await.unwrap().unwrap();
    assert_eq!(run.status, Status::Killed);
    no_job_left(&run_id, None).await;
}

#[tokio::test]
async fn ctrl_c_deletes_every_job_and_pod_of_the_run() {
    let (child, id_file) = sleeping("ctrlc").await;
    common::running_pod(&id_file, "work").await;
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc_kill(child.id() as i32, 2) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    // The orchestrator waited for the pods to go before it exited.
    let admin = kubestep_testenv::shared().client().await;
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id}"));
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin, "default");
    assert!(jobs.list(&lp).await.unwrap().items.is_empty());
    assert!(pods.list(&lp).await.unwrap().items.is_empty());
    let client = client("k8s-failures").await;
    let task = client.task(&run_id, "work", "0").await.unwrap().unwrap();
    assert_eq!(
        task.status,
        Status::Failed,
        "the task is recorded as interrupted"
    );
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test]
async fn a_failing_foreach_item_cancels_its_siblings_jobs() {
    let (out, run_id) = run("failing_foreach", &[], &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("item 2 is broken"), "{all}");
    // The siblings' 30-second pods were deleted with their Jobs, not left to run.
    no_job_left_but(&run_id, "2").await;
}

/// Waits until the run's only Jobs are those of `start` and of task `keep` of the foreach.
async fn no_job_left_but(run_id: &str, keep: &str) {
    let admin = kubestep_testenv::shared().client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin, "default");
    let lp = kube::api::ListParams::default().labels(&format!("{RUN_ID}={run_id},{STEP}=work"));
    for _ in 0..100 {
        let left: Vec<String> = jobs
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .map(|j| j.metadata.labels.as_ref().unwrap()[TASK_ID].clone())
            .collect();
        if left.iter().all(|t| t == keep) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the cancelled siblings' Jobs of run {run_id} are still there");
}

#[tokio::test]
async fn kubernetes_list_and_kill_find_a_runs_pods() {
    let env = setup().await.clone();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (out, run_id) = run("labels_annotations", &[], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let list = common::run(
        "labels_annotations",
        &["kubernetes", "list", "--run-id", &run_id],
        &vars,
    );
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{}", text(&list));
    assert_eq!(listed.lines().count(), 3, "a header and two pods: {listed}");
    assert!(listed.contains("\tscore\t0\t0\tSucceeded"), "{listed}");
    kill("labels_annotations", &run_id).await;
    no_job_left(&run_id, None).await;
}

/// `kubernetes kill --run-id` of one of `example`'s runs, as the restricted user; it succeeds.
async fn kill(example: &str, run_id: &str) {
    let env = setup().await;
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root = root();
    let args = [
        "kubernetes",
        "kill",
        "--run-id",
        run_id,
        "--datastore-root",
        &root,
    ];
    let out = common::run(example, &args, &vars);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn a_flow_runs_on_the_azure_emulator() {
    let root = format!("az://kubestep/k8s-{}", std::process::id());
    let env = setup().await;
    let mut vars: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "KUBESTEP_KUBERNETES_SECRETS")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.push((
        "KUBESTEP_KUBERNETES_SECRETS",
        kubestep_testenv::AZURE_SECRET_NAME,
    ));
    let id_file = std::env::temp_dir().join(format!("kubestep-k8s-az-{}", std::process::id()));
    let out = common::run(
        "basic",
        &[
            "run",
            "--with",
            "kubernetes",
            "--datastore",
            "azure",
            "--datastore-root",
            &root,
            "--run-id-file",
            id_file.to_str().unwrap(),
        ],
        &vars,
    );
    assert!(out.status.success(), "{}", text(&out));
    let run_id = std::fs::read_to_string(&id_file).unwrap();
    let client = Client::open_with(Kind::Azure, &root, "squares", env.clone()).unwrap();
    assert_eq!(client.output::<u64>(&run_id, "end", "0").await.unwrap(), 30);
}

#[tokio::test]
async fn a_tokio_program_awaits_a_step_run_in_a_pod() {
    let env = setup().await.clone();
    let out = tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run("embedded", &[], &vars)
    })
    .await
    .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("3 squared is 9, 4 squared is 16"), "{all}");
    assert!(
        all.contains("] squaring 3 in pod embedded-square-"),
        "{all}"
    );
}

/// Every name and label kubestep derives from a flow's, run's, step's and task's names passes
/// the API server's own validation, for 300 random inputs of any characters and lengths: Jobs
/// (with their pods' labels and container), a gang's Job and Service, sent as dry runs.
#[tokio::test]
async fn generated_names_and_labels_pass_the_api_servers_validation() {
    use kubestep::core::labels::FLOW;
    use kubestep::core::names::{gang_name, job_name, to_dns_label, to_label_value};
    use proptest::strategy::{Strategy, ValueTree};
    let admin = kubestep_testenv::shared().client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin.clone(), "default");
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(admin, "default");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let inputs = (
        ".{0,80}",
        ".{0,80}",
        ".{0,80}",
        ".{0,40}",
        0u32..1_000_000,
        1u32..1000,
    );
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut refused = Vec::new();
    for _ in 0..300 {
        let (flow, run, step, task, attempt, size) =
            inputs.new_tree(&mut runner).unwrap().current();
        let labels = serde_json::json!({
            FLOW: to_label_value(&flow), RUN_ID: to_label_value(&run),
            STEP: to_label_value(&step), TASK_ID: to_label_value(&task),
        });
        let job = |name: &str, indexed: bool| {
            serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "completionMode": if indexed { "Indexed" } else { "NonIndexed" },
                    "completions": if indexed { size } else { 1 },
                    "parallelism": if indexed { size } else { 1 },
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "subdomain": if indexed { Some(name) } else { None },
                            "containers": [{"name": to_dns_label(&step), "image": "busybox"}],
                        },
                    },
                },
            })
        };
        let lone = job_name(&flow, &run, &step, &task, attempt);
        let gang = gang_name(&flow, &run, &step, attempt, size);
        for (name, indexed) in [(&lone, false), (&gang, true)] {
            let obj = serde_json::from_value(job(name, indexed)).unwrap();
            if let Err(e) = jobs.create(&dry, &obj).await {
                refused.push(format!(
                    "Job {name:?} from {flow:?}/{run:?}/{step:?}/{task:?}: {e}"
                ));
            }
        }
        let service = serde_json::json!({
            "metadata": {"name": gang, "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels},
        });
        if let Err(e) = services
            .create(&dry, &serde_json::from_value(service).unwrap())
            .await
        {
            refused.push(format!("Service {gang:?}: {e}"));
        }
    }
    assert!(refused.is_empty(), "{refused:#?}");
}

/// A step binary in the datastore that is not the one the run hashed: one of the same size (a
/// replaced or damaged upload) is refused by every pod that fetches it, which names both
/// hashes; one of another size (cut short) is uploaded again by the next run.
#[tokio::test]
async fn a_replaced_binary_is_refused_and_a_short_one_uploaded_again() {
    use kubestep::datastore::{Datastore, Key};
    // A copy of the example with bytes of its own, so its key is this test's alone.
    let exe = std::env::temp_dir().join(format!("kubestep-replaced-{}", std::process::id()));
    let mut bytes = std::fs::read(common::example("basic")).unwrap();
    bytes.extend_from_slice(format!("kubestep-replaced-{}", std::process::id()).as_bytes());
    std::fs::write(&exe, &bytes).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sha = |path: &std::path::Path| {
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_string()
    };
    let expected = sha(&exe);
    let ds = Datastore::open_with(Kind::S3, &root(), "squares", setup().await.clone()).unwrap();
    let zeros = std::env::temp_dir().join(format!("kubestep-zeros-{}", std::process::id()));
    std::fs::write(&zeros, vec![0u8; bytes.len()]).unwrap();
    ds.put_bytes(&Key::Binary(expected.clone()), vec![0u8; bytes.len()])
        .await
        .unwrap();
    let (out, _) = run_program(exe.clone(), &["--with", "kubernetes"], &[]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "the step binary fetched from the datastore has sha256 {}, expected {expected}",
            sha(&zeros)
        )),
        "{all}"
    );
    ds.put_bytes(&Key::Binary(expected), vec![0u8; 100])
        .await
        .unwrap();
    let (out, _) = run_program(exe, &["--with", "kubernetes"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
}

/// Credentials the API server no longer accepts (an expired or revoked token) are named, with
/// the fix, before anything is uploaded or launched.
#[tokio::test]
async fn refused_credentials_are_named_before_anything_is_launched() {
    setup().await;
    let restricted = &kubestep_testenv::shared().restricted_kubeconfig;
    let expired = std::env::temp_dir().join(format!("kubestep-expired-{}", std::process::id()));
    std::fs::write(
        &expired,
        std::fs::read_to_string(restricted)
            .unwrap()
            .replace(kubestep_testenv::RESTRICTED_TOKEN, "a-token-that-expired"),
    )
    .unwrap();
    // `run_program`'s own KUBECONFIG is replaced: the later value wins.
    let (out, _) = run_program(
        common::example("basic"),
        &[],
        &[("KUBECONFIG", expired.to_str().unwrap())],
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("refused this user's credentials (HTTP 401 Unauthorized)")
            && all.contains(
                "log in again, or refresh the credentials KUBECONFIG's current context gives"
            )
            && all.trim_end().lines().count() == 1,
        "{all}"
    );
}
