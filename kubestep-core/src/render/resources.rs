//! Requests and limits by QoS class, GPUs as vendor limits, and `gpu = 0` as node affinity.

use super::{Notes, POD};
use crate::resolve::{Resolved, Source};
use crate::spec::{GpuVendor, Qos};
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

const MAIN: &str = "spec.template.spec.containers[0].resources";

/// The main container's requests and limits.
///
/// Burstable: requests for cpu, memory and ephemeral-storage, and a memory limit equal to the
/// request, so an overrun is a clean OOMKilled of this container rather than a node-pressure
/// eviction. Guaranteed: limits equal requests. BestEffort: no cpu, memory or disk at all
/// (resolve rejects an explicit one).
pub(super) fn requirements(step: &Resolved, notes: &mut Notes) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let qos = step.qos.value;
    notes.note("(qos)", qos.name(), &step.qos.source);
    let mut put = |map: &mut BTreeMap<String, Quantity>,
                   which: &str,
                   name: &str,
                   value: &str,
                   source: &Source| {
        notes.note(format!("{MAIN}.{which}.{name}"), value, source);
        map.insert(name.to_string(), Quantity(value.to_string()));
    };
    let cpu = (step.cpu.value.quantity(), &step.cpu.source);
    let memory = (step.memory.value.quantity(), &step.memory.source);
    let disk = (step.disk.value.quantity(), &step.disk.source);
    match qos {
        Qos::Burstable | Qos::Guaranteed => {
            for (name, (value, source)) in [
                ("cpu", cpu),
                ("memory", memory),
                ("ephemeral-storage", disk),
            ] {
                put(&mut requests, "requests", name, value, source);
            }
            put(&mut limits, "limits", "memory", memory.0, memory.1);
            if qos == Qos::Guaranteed {
                put(&mut limits, "limits", "cpu", cpu.0, cpu.1);
                put(&mut limits, "limits", "ephemeral-storage", disk.0, disk.1);
            }
        }
        Qos::BestEffort => {}
    }
    if let Some(gpu) = step.gpu.as_ref().filter(|g| g.value > 0) {
        let resource = format!("{}.com/gpu", step.gpu_vendor.value.name());
        put(
            &mut limits,
            "limits",
            &resource,
            &gpu.value.to_string(),
            &gpu.source,
        );
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

/// The node label that marks GPU nodes of a vendor, as its device tooling sets it.
fn gpu_node_label(step: &Resolved) -> String {
    step.settings
        .gpu_node_label
        .clone()
        .unwrap_or_else(|| match step.gpu_vendor.value {
            GpuVendor::Nvidia => "nvidia.com/gpu.present".into(),
            GpuVendor::Amd => "feature.node.kubernetes.io/amd-gpu".into(),
        })
}

/// `gpu = 0` keeps the pod off GPU nodes (Metaflow renders a zero limit, which does not).
pub(super) fn affinity(step: &Resolved, notes: &mut Notes) -> Option<Affinity> {
    let gpu = step.gpu.as_ref().filter(|g| g.value == 0)?;
    let label = gpu_node_label(step);
    notes.note(
        format!("{POD}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"),
        format!("{label} NotIn [true]"),
        &gpu.source,
    );
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: label,
                        operator: "NotIn".into(),
                        values: Some(vec!["true".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    })
}
