//! Helpers shared by the test cluster's tests: a namespace per test, create, wait.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::time::Duration;

pub async fn setup(ns: &str) -> Client {
    let env = kubestep_testenv::shared();
    let client = env.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    // Pods need the namespace's default ServiceAccount, which a controller creates.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), ns);
    for _ in 0..300 {
        if sas.get_opt("default").await.unwrap().is_some() {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {ns} has no default ServiceAccount after 30 s")
}

pub async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(value).unwrap(),
    )
    .await
    .unwrap()
}

/// Polls `name` until `done` holds; fails the test with the last state after `secs`.
pub async fn wait_for<K>(api: &Api<K>, name: &str, secs: u64, done: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut last = None;
    for _ in 0..secs * 10 {
        if let Some(obj) = api.get_opt(name).await.unwrap() {
            if done(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not reach the expected state in {secs} s; last: {last:#?}");
}

pub fn pod(name: &str, container: serde_json::Value) -> serde_json::Value {
    json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [container]}})
}

pub fn state(p: &Pod) -> serde_json::Value {
    serde_json::to_value(
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.clone()),
    )
    .unwrap()
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The scheduler has said it cannot place the pod.
pub fn unschedulable(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
        })
}
