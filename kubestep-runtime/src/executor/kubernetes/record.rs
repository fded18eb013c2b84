//! What a task record keeps of an attempt's pod: where it ran, what it asked for, and the
//! stages it went through, read from the last pod object the watch brought and the pending
//! reasons seen on the way. `report` draws its timeline from these; no API request is made for
//! them.

use super::diagnose;
use crate::datastore::{AttemptPod, PodMark, PodStage};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The record of the attempt's pod `pod` (its last state), with the pending reasons the watch
/// brought, each with when it was seen (`notes`, milliseconds since the epoch).
pub fn attempt_pod(pod: &Pod, notes: &[(u64, String)]) -> AttemptPod {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let container = spec.and_then(|s| s.containers.first());
    AttemptPod {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        node: spec.and_then(|s| s.node_name.clone()),
        resources: container.and_then(resources),
        marks: marks(pod, notes),
    }
}

fn ms(t: &Time) -> u64 {
    u64::try_from(t.0.as_millisecond()).unwrap_or(0)
}

/// The pod's stages in time order: created, each pending reason, scheduled, initialized,
/// started, finished, as far as it got.
fn marks(pod: &Pod, notes: &[(u64, String)]) -> Vec<PodMark> {
    let mark = |at_ms, stage| PodMark {
        at_ms,
        stage,
        note: None,
    };
    let mut out = Vec::new();
    if let Some(t) = &pod.metadata.creation_timestamp {
        out.push(mark(ms(t), PodStage::Created));
    }
    out.extend(notes.iter().map(|(at, note)| PodMark {
        at_ms: *at,
        stage: PodStage::Pending,
        note: Some(note.clone()),
    }));
    let status = pod.status.as_ref();
    let condition = |kind: &str| {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")?
            .last_transition_time
            .as_ref()
            .map(ms)
    };
    if let Some(at) = condition("PodScheduled") {
        out.push(mark(at, PodStage::Scheduled));
    }
    // Without init containers `Initialized` is set at scheduling: nothing to show then.
    let has_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| !c.is_empty());
    if has_init && let Some(at) = condition("Initialized") {
        out.push(mark(at, PodStage::Initialized));
    }
    let step = diagnose::step_container(pod);
    let state = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == step))
        .and_then(|c| c.state.as_ref());
    if let Some(state) = state {
        let started = state
            .running
            .as_ref()
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| state.terminated.as_ref()?.started_at.as_ref());
        if let Some(t) = started {
            out.push(mark(ms(t), PodStage::Started));
        }
        if let Some(t) = state
            .terminated
            .as_ref()
            .and_then(|t| t.finished_at.as_ref())
        {
            out.push(mark(ms(t), PodStage::Finished));
        }
    }
    // The marks are in the order of the pod's life; Kubernetes keeps whole seconds and the
    // notes have milliseconds, so a stage stamped before the note that preceded it starts when
    // that note came.
    let mut at = 0;
    for m in &mut out {
        m.at_ms = m.at_ms.max(at);
        at = m.at_ms;
    }
    out
}

/// `requests cpu=1, memory=4Gi; limits memory=4Gi`, as the container asks.
fn resources(c: &Container) -> Option<String> {
    let r = c.resources.as_ref()?;
    let list = |name: &str, q: &Option<std::collections::BTreeMap<String, _>>| {
        let q: &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        > = q.as_ref()?;
        (!q.is_empty()).then(|| {
            let items: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
            format!("{name} {}", items.join(", "))
        })
    };
    let parts: Vec<String> = [list("requests", &r.requests), list("limits", &r.limits)]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pods_life_becomes_its_stages_in_order() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "creationTimestamp": "2026-11-29T10:00:00Z"},
            "spec": {"nodeName": "node-a",
                "initContainers": [{"name": "fetch-binary"}],
                "containers": [{"name": "train", "resources": {
                    "requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}}]},
            "status": {
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-29T10:00:05Z"},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-29T10:00:07Z"},
                    {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-29T10:00:20Z"}],
                "containerStatuses": [{"name": "train", "ready": false, "restartCount": 0,
                    "image": "debian", "imageID": "", "state": {"terminated": {"exitCode": 0,
                    "startedAt": "2026-11-29T10:00:09Z", "finishedAt": "2026-11-29T10:00:20Z"}}}]}
        }))
        .unwrap();
        let at = |s: u64| 1_795_946_400_000 + s * 1000;
        // The second note came 400 ms after the whole second the scheduling is stamped with.
        let record = attempt_pod(
            &pod,
            &[
                (at(2) + 300, "Unschedulable: 0/4 nodes".into()),
                (at(5) + 400, "Unschedulable: 0/4 nodes, again".into()),
            ],
        );
        assert_eq!(record.node.as_deref(), Some("node-a"));
        assert_eq!(
            record.resources.as_deref(),
            Some("requests cpu=1, memory=4Gi; limits memory=4Gi")
        );
        let stages: Vec<(u64, PodStage)> =
            record.marks.iter().map(|m| (m.at_ms, m.stage)).collect();
        assert_eq!(
            stages,
            [
                (at(0), PodStage::Created),
                (at(2) + 300, PodStage::Pending),
                (at(5) + 400, PodStage::Pending),
                (at(5) + 400, PodStage::Scheduled),
                (at(7), PodStage::Initialized),
                (at(9), PodStage::Started),
                (at(20), PodStage::Finished),
            ]
        );
        assert_eq!(
            record.marks[1].note.as_deref(),
            Some("Unschedulable: 0/4 nodes")
        );
    }

    #[test]
    fn a_pod_that_never_ran_has_only_its_waiting() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-11-29T10:00:00Z"},
            "spec": {"containers": [{"name": "train"}]},
            "status": {"phase": "Pending"}
        }))
        .unwrap();
        let record = attempt_pod(&pod, &[]);
        assert_eq!(record.resources, None);
        assert_eq!(record.marks.len(), 1);
        assert_eq!(record.marks[0].stage, PodStage::Created);
    }
}
