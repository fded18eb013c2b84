//! The test cluster against its own promises: a real control plane, and real nodes running
//! real containers from the cluster's own images. Each test works in a namespace of its own.

mod common;

use common::{create, phase, pod, setup, state, unschedulable, wait_for};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, LogParams};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_job_runs_and_its_log_streams_through_the_api_server() {
    let client = setup("t-echo").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "t-echo");
    create(&jobs, json!({"metadata": {"name": "echo"}, "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "debian:bookworm-slim", "command": ["sh", "-c", "echo first; sleep 1; echo from $POD_NAME"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}}))
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "t-echo");
    let pod_name = loop {
        let list = pods.list(&Default::default()).await.unwrap();
        if let Some(p) = list.items.into_iter().find(|p| phase(p) == "Running") {
            break p.metadata.name.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Follow from while it runs: the stream ends when the container does.
    let stream = pods
        .log_stream(
            &pod_name,
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<String> = stream.lines().try_collect().await.unwrap();
    assert_eq!(lines, vec!["first".to_string(), format!("from {pod_name}")]);
    wait_for(&jobs, "echo", 30, |j| {
        j.status.as_ref().and_then(|s| s.succeeded) == Some(1)
    })
    .await;
    let tail = pods
        .logs(
            &pod_name,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, format!("from {pod_name}\n"));
}

/// The pods' gateway keeps its hardware address while pods' veths join and leave the bridge (a
/// bridge left to choose takes its lowest port's, and pods that cached the old one lost every
/// host service until their neighbour entry expired).
#[tokio::test]
async fn the_gateway_keeps_its_address_as_pods_come_and_go() {
    let client = setup("t-bridge").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "t-bridge");
    let sys = |file: &str| {
        let path = format!("/sys/class/net/{}/{file}", kubestep_testenv::BRIDGE);
        std::fs::read_to_string(&path).unwrap().trim().to_string()
    };
    for i in 0..3 {
        let name = format!("short-{i}");
        create(
            &pods,
            json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}),
        )
        .await;
        wait_for(&pods, &name, 60, |p| phase(p) == "Succeeded").await;
        assert_eq!(sys("address"), kubestep_testenv::BRIDGE_MAC, "with {name}");
        pods.delete(&name, &Default::default()).await.unwrap();
    }
    let mut gone = false;
    for _ in 0..300 {
        if pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the pods were not deleted in 30 s");
    assert_eq!(sys("address"), kubestep_testenv::BRIDGE_MAC);
    // Set, not derived from the ports (NET_ADDR_SET): the kernel never recomputes it, whichever
    // veths other tests' pods add or remove meanwhile.
    assert_eq!(sys("addr_assign_type"), "3");
}

#[tokio::test]
async fn memory_overrun_is_oomkilled_with_137() {
    let client = setup("t-oom").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-oom");
    create(
        &pods,
        pod(
            "hog",
            json!({"name": "main", "image": "debian:bookworm-slim",
        "command": ["bash", "-c", "x=$(head -c 300M /dev/zero | tr '\\0' a)"],
        "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}),
        ),
    )
    .await;
    let p = wait_for(&pods, "hog", 60, |p| phase(p) == "Failed").await;
    assert_eq!(state(&p)["terminated"]["reason"], "OOMKilled");
    assert_eq!(state(&p)["terminated"]["exitCode"], 137);
}

#[tokio::test]
async fn an_image_the_registry_lacks_backs_off() {
    let client = setup("t-image").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-image");
    create(
        &pods,
        pod(
            "bad",
            json!({"name": "main", "image": "kubestep-testenv/nope:1"}),
        ),
    )
    .await;
    let p = wait_for(&pods, "bad", 60, |p| {
        state(p)["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    assert!(
        state(&p)["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("kubestep-testenv/nope:1")
    );
    assert_eq!(phase(&p), "Pending");
}

#[tokio::test]
async fn the_private_registry_needs_the_pull_secret() {
    let client = setup("t-private").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "t-private");
    create(
        &secrets,
        json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": kubestep_testenv::pull_secret_json()}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "t-private");
    let image = format!("{}/acme/sorter:1.4", kubestep_testenv::PRIVATE_REGISTRY);
    let mut with = pod(
        "with-secret",
        json!({"name": "main", "image": image, "command": ["cat", "/etc/kubestep-image"]}),
    );
    with["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    create(&pods, with).await;
    create(
        &pods,
        pod(
            "without",
            json!({"name": "main", "image": image, "command": ["true"]}),
        ),
    )
    .await;
    wait_for(&pods, "with-secret", 60, |p| phase(p) == "Succeeded").await;
    assert_eq!(
        pods.logs("with-secret", &LogParams::default())
            .await
            .unwrap(),
        format!("{image}\n")
    );
    let p = wait_for(&pods, "without", 60, |p| {
        state(p)["waiting"]["reason"] == "ErrImagePull"
            || state(p)["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    let message = state(&p)["waiting"]["message"].to_string();
    assert!(
        message.contains("401") || message.contains("nauthorized"),
        "{message}"
    );
}

#[tokio::test]
async fn active_deadline_ends_the_pod_as_deadline_exceeded() {
    let client = setup("t-deadline").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-deadline");
    let mut spec = pod(
        "slow",
        json!({"name": "main", "image": "busybox", "command": ["sleep", "60"]}),
    );
    spec["spec"]["activeDeadlineSeconds"] = json!(2);
    // `sleep` as PID 1 ignores SIGTERM: without a short grace period the kubelet would wait
    // the default 30 s before SIGKILL.
    spec["spec"]["terminationGracePeriodSeconds"] = json!(1);
    create(&pods, spec).await;
    let p = wait_for(&pods, "slow", 60, |p| phase(p) == "Failed").await;
    assert_eq!(
        p.status.as_ref().unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_container_config_error() {
    let client = setup("t-secret").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-secret");
    create(&pods, pod("needy", json!({"name": "main", "image": "busybox", "command": ["true"], "envFrom": [{"secretRef": {"name": "absent"}}]}))).await;
    let p = wait_for(&pods, "needy", 30, |p| {
        state(p)["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(
        state(&p)["waiting"]["message"],
        "secret \"absent\" not found"
    );
}

#[tokio::test]
async fn empty_dir_tmpfs_and_claim_are_mounted_at_their_paths() {
    let client = setup("t-volumes").await;
    // Bound by the real PV controller to one of the environment's hostPath volumes.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "t-volumes");
    create(&claims, json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})).await;
    let pods: Api<Pod> = Api::namespaced(client, "t-volumes");
    let script = "echo x > /scratch/a && echo y > /data/b && grep ' /fast ' /proc/mounts | cut -d' ' -f3 && cat /scratch/a /data/b";
    create(&pods, json!({"metadata": {"name": "mounts"}, "spec": {"restartPolicy": "Never",
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "fast", "mountPath": "/fast"}, {"name": "data", "mountPath": "/data"}]}]}}))
    .await;
    wait_for(&pods, "mounts", 60, |p| phase(p) == "Succeeded").await;
    let log = pods.logs("mounts", &LogParams::default()).await.unwrap();
    assert_eq!(log, "tmpfs\nx\ny\n");
}

#[tokio::test]
async fn a_job_without_retries_fails_when_its_pod_exits_3() {
    let client = setup("t-fail").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "t-fail");
    create(&jobs, json!({"metadata": {"name": "three"}, "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]}}}}))
    .await;
    let j = wait_for(&jobs, "three", 60, |j| {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await;
    assert_eq!(j.status.unwrap().failed, Some(1));
    let pods: Api<Pod> = Api::namespaced(client, "t-fail");
    let list = pods.list(&Default::default()).await.unwrap();
    assert_eq!(state(&list.items[0])["terminated"]["exitCode"], 3);
}

#[tokio::test]
async fn a_gpu_request_beyond_every_node_stays_pending_with_the_scheduler_message() {
    let client = setup("t-gpu").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-gpu");
    create(&pods, json!({"metadata": {"name": "greedy"}, "spec": {"restartPolicy": "Never",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "main", "image": "busybox", "command": ["true"], "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}))
    .await;
    let p = wait_for(&pods, "greedy", 30, unschedulable).await;
    let cond = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert!(
        cond.message
            .unwrap()
            .contains("Insufficient nvidia.com/gpu")
    );
}

/// The device plugin is real to the kubelet: it allocates the GPUs, each container is told which
/// it got, and two pods running at once get different ones.
#[tokio::test]
async fn the_kubelet_allocates_gpus_through_the_device_plugin() {
    let client = setup("t-gpus").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-gpus");
    for name in ["gpu-a", "gpu-b"] {
        create(
            &pods,
            json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": "gpu-node"},
            "containers": [{"name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES; sleep 3"],
                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}),
        )
        .await;
    }
    let mut seen = Vec::new();
    for name in ["gpu-a", "gpu-b"] {
        wait_for(&pods, name, 60, |p| phase(p) == "Succeeded").await;
        seen.push(pods.logs(name, &LogParams::default()).await.unwrap());
    }
    for ids in &seen {
        assert!(ids.trim().starts_with("GPU-gpu-node-"), "{seen:?}");
    }
    assert_ne!(seen[0], seen[1], "both pods got the same device");
}

#[tokio::test]
async fn tolerations_and_node_selectors_steer_pods() {
    let client = setup("t-steer").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-steer");
    create(
        &pods,
        json!({"metadata": {"name": "on-gpu"}, "spec": {"restartPolicy": "Never",
        "nodeSelector": {"kubestep.io/compute-pool": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}),
    )
    .await;
    create(
        &pods,
        pod(
            "plain",
            json!({"name": "main", "image": "busybox", "command": ["true"]}),
        ),
    )
    .await;
    create(&pods, json!({"metadata": {"name": "untolerated"}, "spec": {"restartPolicy": "Never",
        "nodeSelector": {"kubestep.io/compute-pool": "a100"}, "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}))
    .await;
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        node(&wait_for(&pods, "on-gpu", 30, |p| phase(p) == "Succeeded").await),
        "gpu-node"
    );
    // Anywhere but behind a taint it does not tolerate.
    let plain = node(&wait_for(&pods, "plain", 30, |p| phase(p) == "Succeeded").await);
    assert!(["node-a", "gpu-open"].contains(&plain.as_str()), "{plain}");
    let p = wait_for(&pods, "untolerated", 30, unschedulable).await;
    assert_eq!(node(&p), "");
}

#[tokio::test]
async fn cluster_dns_resolves_services_and_pod_hostnames_only_behind_a_headless_service() {
    let client = setup("t-dns").await;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "t-dns");
    create(
        &services,
        json!({"metadata": {"name": "train"}, "spec": {"clusterIP": "None",
        "publishNotReadyAddresses": true, "selector": {"app": "train"}}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "t-dns");
    // glibc's resolver (getent), as a program in the pod resolves, search path included.
    let lookup = |name: &str| format!("(getent hosts {name} >/dev/null && echo yes || echo no)");
    let script = [
        // The control member, through the headless Service (retried while it starts).
        format!("for i in $(seq 100); do {} | grep -q yes && break; sleep 0.2; done; {}",
            lookup("main-0.train.t-dns.svc.cluster.local"), lookup("main-0.train")),
        // A subdomain with no Service of that name does not resolve, as on a real cluster.
        lookup("lonely.nosvc.t-dns.svc.cluster.local"),
        // The API server's Service by its short name, and its IP answering on 443 through
        // kube-proxy's rules.
        lookup("kubernetes.default"),
        "(timeout 5 bash -c 'exec 3<>/dev/tcp/kubernetes.default/443' && echo reached || echo unreached)".to_string(),
        // Nothing outside the cluster resolves: no forwarding to outside resolvers.
        lookup("example.com"),
    ]
    .join("; ");
    for (name, cmd) in [("main-0", "sleep 20"), ("worker-1", script.as_str())] {
        create(&pods, json!({"metadata": {"name": name, "labels": {"app": "train"}}, "spec": {"restartPolicy": "Never", "hostname": name, "subdomain": "train",
            "containers": [{"name": "main", "image": "debian:bookworm-slim", "command": ["bash", "-c", cmd]}]}}))
        .await;
    }
    create(&pods, json!({"metadata": {"name": "lonely"}, "spec": {"restartPolicy": "Never", "hostname": "lonely", "subdomain": "nosvc",
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "20"]}]}}))
    .await;
    wait_for(&pods, "worker-1", 60, |p| phase(p) == "Succeeded").await;
    let log = pods.logs("worker-1", &LogParams::default()).await.unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "yes", "{log}");
    assert_eq!(lines[1], "no", "{log}");
    assert_eq!(lines[2], "yes", "{log}");
    assert_eq!(lines[3], "reached", "{log}");
    assert_eq!(lines[4], "no", "{log}");
}

#[tokio::test]
async fn faults_evict_and_hold() {
    let env = kubestep_testenv::shared();
    let client = setup("t-faults").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-faults");
    create(
        &pods,
        pod(
            "victim",
            json!({"name": "main", "image": "busybox", "command": ["sleep", "60"]}),
        ),
    )
    .await;
    wait_for(&pods, "victim", 60, |p| phase(p) == "Running").await;
    // As `kubectl drain --grace-period=1`: `sleep` as PID 1 ignores SIGTERM.
    assert!(env.evict("t-faults", "victim", Some(1)).await);
    // The Eviction API marks the pod as disrupted and deletes it gracefully.
    let mut disrupted = false;
    for _ in 0..300 {
        match pods.get_opt("victim").await.unwrap() {
            Some(p) => {
                disrupted |= p.status.and_then(|s| s.conditions).is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "DisruptionTarget"
                            && c.reason.as_deref() == Some("EvictionByEvictionAPI")
                    })
                });
            }
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(disrupted, "no DisruptionTarget condition was seen");
    assert!(pods.get_opt("victim").await.unwrap().is_none());

    env.hold_pending().await.unwrap();
    create(
        &pods,
        pod(
            "held",
            json!({"name": "main", "image": "busybox", "command": ["true"]}),
        ),
    )
    .await;
    let p = wait_for(&pods, "held", 30, unschedulable).await;
    let message = serde_json::to_string(&p.status).unwrap();
    assert!(message.contains("untolerated taint"), "{message}");
    env.release_pending().await.unwrap();
    wait_for(&pods, "held", 60, |p| phase(p) == "Succeeded").await;
}

#[tokio::test]
async fn deletion_sends_sigterm_then_sigkill_after_the_grace_period() {
    let client = setup("t-delete").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-delete");
    create(&pods, pod("polite", json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"]}))).await;
    create(&pods, pod("stubborn", json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}))).await;
    wait_for(&pods, "polite", 60, |p| phase(p) == "Running").await;
    wait_for(&pods, "stubborn", 60, |p| phase(p) == "Running").await;
    let grace = kube::api::DeleteParams {
        grace_period_seconds: Some(3),
        ..Default::default()
    };
    pods.delete("polite", &grace).await.unwrap();
    let asked = k8s_openapi::jiff::Timestamp::now();
    pods.delete("stubborn", &grace).await.unwrap();
    // The last container state each pod reported before it went.
    let last_state = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let mut last = None;
            while let Some(p) = pods.get_opt(name).await.unwrap() {
                let terminated = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .and_then(|c| c.into_iter().next())
                    .and_then(|c| c.state)
                    .and_then(|s| s.terminated);
                last = terminated.or(last);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last.unwrap_or_else(|| panic!("{name} went without a terminated state"))
        }
    };
    let (polite, stubborn) = tokio::join!(last_state("polite"), last_state("stubborn"));
    assert_eq!(polite.exit_code, 7, "SIGTERM ran the trap: {polite:?}");
    assert_eq!(stubborn.exit_code, 137, "SIGKILL ended it: {stubborn:?}");
    // Counted from the deletion, not from the polite pod's end: its kubelet may deliver SIGTERM
    // late on a loaded machine. `finishedAt` has whole seconds, so a 3 s grace shows as >= 2.
    let lived = stubborn.finished_at.clone().unwrap().0 - asked;
    assert!(
        lived.get_seconds() >= 2,
        "the one that ignored SIGTERM lived out its grace period (deleted at {asked}): {polite:?} {stubborn:?}"
    );
}

#[tokio::test]
async fn env_comes_from_the_downward_api_secrets_and_config_maps() {
    let client = setup("t-env").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "t-env");
    create(
        &secrets,
        json!({"metadata": {"name": "creds"}, "stringData": {"TOKEN": "s3cr3t", "USER": "ana"}}),
    )
    .await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "t-env");
    create(
        &maps,
        json!({"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "t-env");
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    create(&pods, json!({"metadata": {"name": "env"}, "spec": {"restartPolicy": "Never", "serviceAccountName": "default",
        "nodeSelector": {"kubernetes.io/hostname": "node-a"}, "containers": [{
        "name": "main", "image": "busybox", "command": ["sh", "-c", "echo $NAME $NS $NODE $SA $HOST_IP $TOKEN $USER $MODE $ALSO_MODE; test -n \"$UID_\" && test -n \"$POD_IP\""],
        "env": [field("NAME", "metadata.name"), field("NS", "metadata.namespace"), field("UID_", "metadata.uid"), field("NODE", "spec.nodeName"),
                field("SA", "spec.serviceAccountName"), field("HOST_IP", "status.hostIP"), field("POD_IP", "status.podIP"),
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
                {"name": "ALSO_MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}}],
        "envFrom": [{"secretRef": {"name": "creds"}}, {"configMapRef": {"name": "settings"}}]}]}}))
    .await;
    wait_for(&pods, "env", 30, |p| phase(p) == "Succeeded").await;
    assert_eq!(
        pods.logs("env", &LogParams::default()).await.unwrap(),
        format!(
            "env t-env node-a default {} s3cr3t ana fast fast\n",
            kubestep_testenv::node_ip(0)
        )
    );
}

#[tokio::test]
async fn faults_kill_a_container() {
    let env = kubestep_testenv::shared();
    let client = setup("t-kill").await;
    let pods: Api<Pod> = Api::namespaced(client, "t-kill");
    create(
        &pods,
        pod(
            "target",
            json!({"name": "main", "image": "busybox", "command": ["sleep", "60"]}),
        ),
    )
    .await;
    wait_for(&pods, "target", 30, |p| phase(p) == "Running").await;
    assert!(env.kill_container("t-kill", "target", "main").await);
    let p = wait_for(&pods, "target", 30, |p| phase(p) == "Failed").await;
    assert_eq!(state(&p)["terminated"]["exitCode"], 137);
}
