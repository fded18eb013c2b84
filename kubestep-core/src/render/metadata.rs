//! Job and pod metadata: kubestep's own labels (selectable, sanitised) and the user's.

use super::{Notes, Task};
use crate::labels;
use crate::names::to_label_value;
use crate::resolve::Resolved;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The labels kubestep selects on: who made the object and which task attempt it runs.
pub fn system_labels(task: &Task) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    let inv = &task.invocation;
    l.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    l.insert(labels::FLOW.into(), to_label_value(&task.flow));
    l.insert(labels::RUN_ID.into(), to_label_value(&inv.run_id));
    l.insert(labels::STEP.into(), to_label_value(&inv.step));
    // A gang's pods are its members' tasks: each is labelled with its rank by the Job
    // controller (`labels::COMPLETION_INDEX`), not here.
    if task.gang.is_none() {
        l.insert(labels::TASK_ID.into(), to_label_value(&inv.task_id));
    }
    l.insert(labels::ATTEMPT.into(), inv.attempt.to_string());
    l
}

/// Notes where the user's labels and annotations came from.
pub(super) fn explain(step: &Resolved, notes: &mut Notes) {
    for (k, v) in &step.labels {
        notes.note(format!("metadata.labels.{k}"), &v.value, &v.source);
    }
    for (k, v) in &step.annotations {
        notes.note(format!("metadata.annotations.{k}"), &v.value, &v.source);
    }
}

/// The user's labels and annotations plus kubestep's own.
pub(super) fn object_meta(step: &Resolved, task: &Task) -> ObjectMeta {
    let mut labels: BTreeMap<String, String> = step
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    // The spec rejects user keys under kubestep's prefixes, so nothing here overwrites theirs.
    labels.extend(system_labels(task));
    let mut annotations: BTreeMap<String, String> = step
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    // Label values may be sanitised; the annotations keep the exact names.
    for (k, v) in labels::annotations(&task.flow, &task.invocation) {
        if !(k == labels::TASK_ID && task.gang.is_some()) {
            annotations.insert(k.into(), v.into());
        }
    }
    ObjectMeta {
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}
