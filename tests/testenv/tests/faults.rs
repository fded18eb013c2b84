//! Faults that disturb the whole environment, so they get one of their own: the API server
//! restarting under the kubelets, and a node lost.

mod common;

use common::{create, phase, pod, setup, unschedulable, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

async fn watches_survive_an_api_server_restart() {
    let env = kubestep_testenv::shared();
    let client = setup("t-restart").await;
    drop(client);
    env.restart_apiserver().await.unwrap();
    // The kubelets' and controllers' watches must resume: a pod created after the restart runs.
    let client = env.client().await;
    let pods_after: Api<Pod> = Api::namespaced(client, "t-restart");
    create(
        &pods_after,
        pod(
            "after",
            json!({"name": "main", "image": "busybox", "command": ["true"]}),
        ),
    )
    .await;
    wait_for(&pods_after, "after", 60, |p| phase(p) == "Succeeded").await;
}

async fn a_lost_node_is_tainted_unreachable_and_pods_wait() {
    let env = kubestep_testenv::shared();
    let client = setup("t-notready").await;
    env.lose_node("gpu-node").await.unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    // The node lifecycle controller notices the silence after its 20 s grace period.
    let n = wait_for(&nodes, "gpu-node", 60, |n| {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/unreachable"))
    })
    .await;
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "Unknown");
    let pods: Api<Pod> = Api::namespaced(client, "t-notready");
    create(
        &pods,
        json!({"metadata": {"name": "gpu-bound"}, "spec": {"restartPolicy": "Never",
        "nodeSelector": {"kubernetes.io/hostname": "gpu-node"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}),
    )
    .await;
    wait_for(&pods, "gpu-bound", 30, unschedulable).await;
    env.restore_node("gpu-node").await.unwrap();
    wait_for(&pods, "gpu-bound", 90, |p| phase(p) == "Succeeded").await;
}

/// In sequence: a restarting API server would break the other fault's calls.
#[tokio::test]
async fn faults_that_disturb_the_whole_environment() {
    a_lost_node_is_tainted_unreachable_and_pods_wait().await;
    watches_survive_an_api_server_restart().await;
}
