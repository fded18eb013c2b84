//! Every `#[kubernetes]` parameter proven by its effect: one run of `pod_effects`, whose steps
//! each report what their process sees (cgroup limits, mounts, `/proc/self/status`, variables,
//! the image's own marker file), checked against the parameter and against the Pod and Job as
//! they were live (watched during the run). Each test fails if its parameter were dropped from
//! the rendered Job.

use crate::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What one step saw (the example's `Seen`).
type Seen = BTreeMap<String, String>;

/// One run of `pod_effects`: what each step saw, its Pod and Job as last seen live, and the
/// Events of its pod.
struct Effects {
    run_id: String,
    seen: BTreeMap<String, Seen>,
    records: BTreeMap<String, TaskRecord>,
    pods: BTreeMap<String, Pod>,
    jobs: BTreeMap<String, Job>,
    events: BTreeMap<String, Vec<Event>>,
}

impl Effects {
    fn seen(&self, step: &str, key: &str) -> Option<&str> {
        self.seen[step].get(key).map(String::as_str)
    }

    fn pod(&self, step: &str) -> &Pod {
        self.pods
            .get(step)
            .unwrap_or_else(|| panic!("no pod of step {step} was seen"))
    }

    fn node(&self, step: &str) -> &str {
        self.pod(step)
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default()
    }

    /// The live pod's node selector for `key`.
    fn selector(&self, step: &str, key: &str) -> Option<&str> {
        let spec = self.pod(step).spec.as_ref()?;
        spec.node_selector.as_ref()?.get(key).map(String::as_str)
    }

    /// The step's container (the pod's only container).
    fn container(&self, step: &str) -> &k8s_openapi::api::core::v1::Container {
        &self.pod(step).spec.as_ref().unwrap().containers[0]
    }

    fn qos(&self, step: &str) -> &str {
        let status = self.pod(step).status.as_ref().unwrap();
        status.qos_class.as_deref().unwrap_or_default()
    }
}

/// Keeps the latest version of every object of `K` labelled with the example's flow, by step.
fn collect<K>(admin: kube::Client) -> (Arc<Mutex<BTreeMap<String, K>>>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let into = seen.clone();
    let config =
        watcher::Config::default().labels(&format!("{}=pod-effects", kubestep::core::labels::FLOW));
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(Api::<K>::all(admin), config).applied_objects());
        while let Some(next) = stream.next().await {
            if let Ok(obj) = next
                && let Some(step) = obj.labels().get(STEP).cloned()
            {
                into.lock().unwrap().insert(step, obj);
            }
        }
    });
    (seen, task)
}

const STEPS: [&str; 17] = [
    "start",
    "sized",
    "burstable",
    "best_effort",
    "on_gpu",
    "off_gpu",
    "own_image",
    "elsewhere",
    "by_string",
    "by_map",
    "in_pool",
    "tolerant",
    "writer",
    "reader",
    "scratch",
    "privileged",
    "non_root",
];

/// The one run every test here reads (a failed run fails each test with its cause, once).
async fn effects() -> &'static Effects {
    static EFFECTS: OnceCell<Result<Effects, String>> = OnceCell::const_new();
    let effects = EFFECTS
        .get_or_init(|| async {
            let admin = kubestep_testenv::shared().client().await;
            let (pods, pod_watch) = collect::<Pod>(admin.clone());
            let (jobs, job_watch) = collect::<Job>(admin.clone());
            let (out, run_id) = run("pod_effects", &[], &[]).await;
            if !out.status.success() {
                pod_watch.abort();
                job_watch.abort();
                return Err(format!("pod_effects failed: {}", text(&out)));
            }
            // The last changes reach the watches within moments of the run's end.
            tokio::time::sleep(Duration::from_secs(2)).await;
            pod_watch.abort();
            job_watch.abort();
            let client = client("pod-effects").await;
            let (mut seen, mut records) = (BTreeMap::new(), BTreeMap::new());
            for step in STEPS {
                let s: Seen = client.output(&run_id, step, "0").await.unwrap();
                seen.insert(step.to_string(), s);
                let record = client.task(&run_id, step, "0").await.unwrap().unwrap();
                records.insert(step.to_string(), record);
            }
            let pods = std::mem::take(&mut *pods.lock().unwrap());
            let mut events = BTreeMap::new();
            for (step, pod) in &pods {
                let ns = pod.metadata.namespace.as_deref().unwrap();
                let name = pod.metadata.name.as_deref().unwrap();
                let lp =
                    kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
                let list = Api::<Event>::namespaced(admin.clone(), ns)
                    .list(&lp)
                    .await
                    .unwrap();
                events.insert(step.clone(), list.items);
            }
            let jobs = std::mem::take(&mut *jobs.lock().unwrap());
            Ok(Effects {
                run_id,
                seen,
                records,
                pods,
                jobs,
                events,
            })
        })
        .await;
    effects.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn cpu_is_the_containers_cgroup_quota() {
    let e = effects().await;
    // cpu.max is "quota period": 2 cores are two periods' worth (a Guaranteed pod's limit).
    assert_eq!(e.seen("sized", "cgroup.cpu.max"), Some("200000 100000"));
    // A Burstable pod's cpu is a request only: no quota.
    assert_eq!(e.seen("burstable", "cgroup.cpu.max"), Some("max 100000"));
}

#[tokio::test]
async fn memory_is_the_containers_cgroup_limit() {
    let e = effects().await;
    // memory = 1024 (MB, as Metaflow's) is 1024M: 1,024,000,000 bytes.
    assert_eq!(e.seen("sized", "cgroup.memory.max"), Some("1024000000"));
    assert_eq!(e.seen("burstable", "cgroup.memory.max"), Some("512000000"));
}

#[tokio::test]
async fn disk_is_the_ephemeral_storage_limit_on_the_live_pod() {
    let e = effects().await;
    let limits = e
        .container("sized")
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref();
    assert_eq!(
        limits.unwrap()["ephemeral-storage"].0,
        "2048M",
        "the kubelet enforces disk as the container's ephemeral-storage limit"
    );
}

#[tokio::test]
async fn a_gpu_is_allocated_and_visible_to_the_step() {
    let e = effects().await;
    let devices = e
        .seen("on_gpu", "env.NVIDIA_VISIBLE_DEVICES")
        .unwrap_or_default();
    assert!(devices.starts_with("GPU-"), "{devices:?}");
    assert!(e.node("on_gpu").starts_with("gpu-"), "{}", e.node("on_gpu"));
    assert_eq!(e.seen("start", "env.NVIDIA_VISIBLE_DEVICES"), None);
}

#[tokio::test]
async fn gpu_0_keeps_the_pod_off_the_untainted_gpu_node() {
    let e = effects().await;
    let affinity =
        serde_json::to_string(&e.pod("off_gpu").spec.as_ref().unwrap().affinity).unwrap();
    assert!(
        affinity.contains("nvidia.com/gpu.present") && affinity.contains("NotIn"),
        "{affinity}"
    );
    assert!(
        !e.node("off_gpu").starts_with("gpu-"),
        "{}",
        e.node("off_gpu")
    );
}

#[tokio::test]
async fn image_is_the_one_the_step_runs_in() {
    let e = effects().await;
    assert_eq!(e.seen("own_image", "image"), Some("ghcr.io/acme/train:1.4"));
    assert_eq!(
        e.seen("start", "image"),
        None,
        "the default image has no marker"
    );
}

/// `by_string` ran `ghcr.io/acme/train:1.4` on `node-a` before, so only `Always` pulls it again
/// there (IfNotPresent would say "already present on machine").
#[tokio::test]
async fn image_pull_policy_always_pulls_again() {
    let e = effects().await;
    assert_eq!(e.node("own_image"), "node-a");
    let messages: Vec<&str> = e.events["own_image"]
        .iter()
        .filter_map(|ev| ev.message.as_deref())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Successfully pulled image \"ghcr.io/acme/train:1.4\"")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_private_image_pulls_with_its_secret() {
    let e = effects().await;
    assert_eq!(
        e.seen("elsewhere", "image"),
        Some("registry.example.com/acme/sorter:1.4")
    );
}

#[tokio::test]
async fn namespace_and_service_account_are_the_pods() {
    let e = effects().await;
    assert_eq!(
        e.seen("elsewhere", "env.KUBESTEP_KUBERNETES_POD_NAMESPACE"),
        Some("data")
    );
    assert_eq!(
        e.seen("elsewhere", "env.KUBESTEP_KUBERNETES_SERVICE_ACCOUNT_NAME"),
        Some("sorter")
    );
    let pod = e.pod("elsewhere");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("data"));
    assert_eq!(
        pod.spec.as_ref().unwrap().service_account_name.as_deref(),
        Some("sorter")
    );
}

#[tokio::test]
async fn secrets_arrive_as_variables() {
    let e = effects().await;
    assert_eq!(e.seen("sized", "env.EXAMPLE_TOKEN"), Some("t"));
    assert_eq!(e.seen("start", "env.EXAMPLE_TOKEN"), None);
}

/// Where the pod landed, and the selector on the live pod that put it there: a pod without the
/// parameter could land on the same node by chance, never with the selector.
#[tokio::test]
async fn node_selectors_place_the_pod_on_the_only_matching_node() {
    let e = effects().await;
    assert_eq!(e.node("by_string"), "node-a", "disktype=ssd");
    assert_eq!(e.selector("by_string", "disktype"), Some("ssd"));
    assert_eq!(
        e.node("by_map"),
        "gpu-open",
        "kubernetes.io/hostname: gpu-open"
    );
    assert_eq!(
        e.selector("by_map", "kubernetes.io/hostname"),
        Some("gpu-open")
    );
}

#[tokio::test]
async fn a_compute_pool_places_the_pod_in_the_pool() {
    let e = effects().await;
    assert_eq!(e.node("in_pool"), "gpu-node");
    assert_eq!(
        e.selector("in_pool", kubestep::core::labels::COMPUTE_POOL),
        Some("a100")
    );
}

#[tokio::test]
async fn a_toleration_lets_the_pod_onto_a_tainted_node() {
    assert_eq!(effects().await.node("tolerant"), "spot-node");
}

/// kubestep's tolerations of a lost node's taints are on the live pod, so admission added no
/// 300-second ones of its own.
#[tokio::test]
async fn a_lost_nodes_pods_are_evicted_after_30_s_not_300() {
    let e = effects().await;
    let all = e
        .pod("sized")
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .as_ref()
        .unwrap();
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let seconds: Vec<_> = all
            .iter()
            .filter(|t| t.key.as_deref() == Some(taint))
            .map(|t| t.toleration_seconds)
            .collect();
        assert_eq!(seconds, [Some(30)], "{taint}: {all:?}");
    }
}

#[tokio::test]
async fn labels_and_annotations_are_on_the_live_pod_and_job() {
    let e = effects().await;
    let job = &e.jobs["sized"];
    for meta in [&e.pod("sized").metadata, &job.metadata] {
        assert_eq!(meta.labels.as_ref().unwrap()["team"], "ml");
        assert_eq!(
            meta.annotations.as_ref().unwrap()["owner"],
            "ana@example.com"
        );
    }
}

#[tokio::test]
async fn the_pod_variables_are_the_live_pods() {
    let e = effects().await;
    for step in STEPS {
        let pod = e.pod(step);
        let var = |name: &str| e.seen(step, &format!("env.KUBESTEP_KUBERNETES_{name}"));
        assert_eq!(var("WORKLOAD"), Some("1"), "{step}");
        assert_eq!(var("POD_NAME"), pod.metadata.name.as_deref(), "{step}");
        assert_eq!(
            var("POD_NAMESPACE"),
            pod.metadata.namespace.as_deref(),
            "{step}"
        );
        assert_eq!(var("POD_ID"), pod.metadata.uid.as_deref(), "{step}");
        let host_ip = pod.status.as_ref().and_then(|s| s.host_ip.as_deref());
        assert!(host_ip.is_some(), "{step}");
        assert_eq!(var("NODE_IP"), host_ip, "{step}");
    }
}

#[tokio::test]
async fn a_claim_carries_a_file_from_one_pod_to_the_next() {
    let e = effects().await;
    let writer = e.pod("writer").metadata.name.as_deref();
    assert_ne!(writer, e.pod("reader").metadata.name.as_deref());
    assert_eq!(e.seen("reader", "read"), writer);
}

#[tokio::test]
async fn shared_memory_sizes_dev_shm() {
    let e = effects().await;
    let shm = |step| {
        e.seen(step, "mount./dev/shm")
            .unwrap_or_default()
            .to_string()
    };
    assert!(shm("sized").contains("size=131072k"), "{}", shm("sized"));
    assert!(
        shm("start").contains("size=65536k"),
        "the kubelet's 64 MiB without shared_memory: {}",
        shm("start")
    );
}

#[tokio::test]
async fn a_tmpfs_of_its_size_at_its_path_is_the_temp_dir() {
    let e = effects().await;
    let mount = e.seen("scratch", "mount./scratch").unwrap_or_default();
    assert!(
        mount.starts_with("tmpfs ") && mount.contains("size=65536k"),
        "{mount}"
    );
    assert_eq!(e.seen("scratch", "env.TMPDIR"), Some("/scratch"));
    assert_eq!(e.seen("scratch", "temp_dir"), Some("/scratch"));
    assert_eq!(e.seen("start", "mount./scratch"), None);
}

#[tokio::test]
async fn the_port_is_on_the_live_pod() {
    let e = effects().await;
    let ports = e.container("sized").ports.clone().unwrap_or_default();
    assert_eq!(ports.first().map(|p| p.container_port), Some(8080));
}

#[tokio::test]
async fn qos_is_the_pods_class() {
    let e = effects().await;
    assert_eq!(e.qos("sized"), "Guaranteed");
    assert_eq!(e.qos("burstable"), "Burstable");
    assert_eq!(e.qos("best_effort"), "BestEffort");
}

/// kubestep's defaults: no capabilities, no privilege escalation, the runtime's seccomp filter.
#[tokio::test]
async fn a_step_runs_without_capabilities_under_seccomp_by_default() {
    let e = effects().await;
    assert_eq!(e.seen("start", "status.CapEff"), Some("0000000000000000"));
    assert_eq!(e.seen("start", "status.CapBnd"), Some("0000000000000000"));
    assert_eq!(e.seen("start", "status.NoNewPrivs"), Some("1"));
    assert_eq!(e.seen("start", "status.Seccomp"), Some("2"), "filter mode");
}

#[tokio::test]
async fn a_privileged_step_has_every_capability() {
    let e = effects().await;
    let eff = e.seen("privileged", "status.CapEff").unwrap_or_default();
    let all = u64::from_str_radix(eff, 16).unwrap();
    // CAP_SYS_ADMIN (21) and CAP_NET_ADMIN (12) among all the kernel's capabilities.
    assert!(all & (1 << 21) != 0 && all & (1 << 12) != 0, "{eff}");
    assert_eq!(e.seen("privileged", "status.Seccomp"), Some("0"));
}

/// `run_as_user`/`run_as_group` with `run_as_non_root` run in the `restricted` namespace, whose
/// admission refuses any container that keeps a capability or may escalate.
#[tokio::test]
async fn a_non_root_step_runs_under_restricted_pod_security() {
    let e = effects().await;
    assert_eq!(
        e.seen("non_root", "status.Uid"),
        Some("1000\t1000\t1000\t1000")
    );
    assert_eq!(
        e.seen("non_root", "status.Gid"),
        Some("1000\t1000\t1000\t1000")
    );
    assert_eq!(
        e.pod("non_root").metadata.namespace.as_deref(),
        Some(RESTRICTED)
    );
    assert_eq!(e.seen("start", "status.Uid"), Some("0\t0\t0\t0"));
}

/// Each attempt's record keeps the pod it ran in, as the live object said, and `logs` says it.
#[tokio::test]
async fn task_records_keep_each_attempts_pod() {
    let e = effects().await;
    for step in STEPS {
        let pod = e.pod(step);
        let attempts = &e.records[step].attempts;
        assert_eq!(attempts.len(), 1, "{step}");
        let kept = attempts[0]
            .pod
            .clone()
            .unwrap_or_else(|| panic!("{step}: no pod"));
        assert_eq!(Some(kept.name), pod.metadata.name.clone(), "{step}");
        assert_eq!(
            Some(kept.namespace),
            pod.metadata.namespace.clone(),
            "{step}"
        );
        assert_eq!(Some(kept.uid), pod.metadata.uid.clone(), "{step}");
        assert_eq!(kept.node.as_deref(), Some(e.node(step)), "{step}");
    }
    let env = setup().await;
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root = root();
    let path = format!("{}/tolerant", e.run_id);
    let logs = common::run(
        "pod_effects",
        &[
            "logs",
            &path,
            "--datastore",
            "s3",
            "--datastore-root",
            &root,
        ],
        &vars,
    );
    let text = text(&logs);
    let pod = e.pod("tolerant");
    let header = format!(
        "== tolerant/0 attempt 0 in pod default/{} (uid {}) on node spot-node",
        pod.metadata.name.as_deref().unwrap(),
        pod.metadata.uid.as_deref().unwrap()
    );
    assert!(text.contains(&header), "{text}");
}
