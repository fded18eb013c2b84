//! Multi-node steps on the cluster: the `allreduce` example's three members run as one Indexed
//! Job, reach the control member by its DNS name under the gang's headless Service and agree on
//! a sum; one member's failure relaunches the whole gang with a fresh Service; a control member
//! that cannot start makes the workers give up after `hostname_resolution_timeout`; a gang the
//! cluster cannot fit ends at the scheduling timeout with every member deleted.

use crate::*;
use common::{ALLREDUCE_SUM, Reduced};
use k8s_openapi::api::core::v1::Service;
use kubestep::core::names::gang_name;

/// The namespace where every gang's control member (rank 0) is held back.
pub const BLOCKED: &str = "gang-blocked";

/// A MutatingAdmissionPolicy, bound to [`BLOCKED`], that gives pods of rank 0 a scheduling gate
/// nobody lifts: a control member that never starts while its workers do, as when the cluster
/// has room for all but one member. (A pod refused at creation would not do: the Job controller
/// then creates none of the others either.)
pub const HOLD_CONTROL_MEMBER: &str = r#"apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata:
  name: kubestep-test-hold-control-member
spec:
  failurePolicy: Fail
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["pods"]
  matchConditions:
  - name: control-member
    expression: "has(object.metadata.annotations) && 'batch.kubernetes.io/job-completion-index' in object.metadata.annotations && object.metadata.annotations['batch.kubernetes.io/job-completion-index'] == '0'"
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: "Object{spec: Object.spec{schedulingGates: [Object.spec.schedulingGates{name: 'kubestep.io/test-hold'}]}}"
---
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: kubestep-test-hold-control-member
spec:
  policyName: kubestep-test-hold-control-member
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: gang-blocked
"#;

/// Runs `allreduce` (its `reduce` step is `#[kubernetes]`) with `args`.
async fn allreduce(args: &[&str], extra: &[(&str, &str)]) -> (Output, String) {
    run_program(common::example("allreduce"), args, extra).await
}

/// The causes of every attempt of member `rank`.
async fn causes(run_id: &str, rank: u32) -> Vec<Option<String>> {
    let t = client("allreduce")
        .await
        .task(run_id, "reduce", &rank.to_string())
        .await
        .unwrap()
        .expect("the member's record");
    t.attempts.iter().map(|a| a.cause.clone()).collect()
}

/// Waits (bounded) until `ns` has no object of kind `K` matching `selector`.
async fn none_left<K>(ns: &str, selector: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(kubestep_testenv::shared().client().await, ns);
    let lp = kube::api::ListParams::default().labels(selector);
    let mut left = Vec::new();
    for _ in 0..300 {
        left = api.list(&lp).await.unwrap().items;
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names: Vec<_> = left.iter().map(|o| o.meta().name.clone()).collect();
    panic!("{selector} in {ns} still has {names:?} after 60 s");
}

#[tokio::test]
async fn a_gang_reduces_over_tcp_by_dns_name_and_a_failing_member_relaunches_it_whole() {
    let (out, run_id) = allreduce(&["--fail-rank", "2"], &[]).await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("[reduce/0-2] attempt 0 failed: member 2 of 3: ")
            && all.contains("rank 2 fails its first attempt on purpose; retrying (1 left)"),
        "{all}"
    );
    let client = client("allreduce").await;
    assert_eq!(
        client.output::<u64>(&run_id, "gather", "0").await.unwrap(),
        ALLREDUCE_SUM
    );
    // Inside each pod: its rank is its completion index, its host name `<job>-<rank>`, and the
    // control member's DNS name reached it.
    let (first, second) = (
        gang_name("allreduce", &run_id, "reduce", 0, 3),
        gang_name("allreduce", &run_id, "reduce", 1, 3),
    );
    for rank in 0..3u32 {
        let m: Reduced = client
            .output(&run_id, "reduce", &rank.to_string())
            .await
            .unwrap();
        assert_eq!((m.rank, m.world_size, m.sum), (rank, 3, ALLREDUCE_SUM));
        assert_eq!(
            m.master_addr,
            format!("{second}-0.{second}.default.svc.cluster.local")
        );
        assert_eq!(m.master_port, 29500);
        assert_eq!(m.host, format!("{second}-{rank}"));
    }
    // Every member's attempts are on record; the failure is the member's own, the others say
    // who stopped them.
    let stopped = "stopped: member 2 of its gang failed first".to_string();
    assert_eq!(causes(&run_id, 0).await, [Some(stopped.clone()), None]);
    assert_eq!(causes(&run_id, 1).await, [Some(stopped), None]);
    let failed = causes(&run_id, 2).await;
    assert!(
        failed[0]
            .as_deref()
            .is_some_and(|c| c.ends_with("rank 2 fails its first attempt on purpose")),
        "{failed:?}"
    );
    // The failed gang is gone, its Service with it (its owner); the second attempt had a
    // fresh Service of its own, owned by its Job.
    let attempt = |a: u32| format!("{RUN_ID}={run_id},kubestep.io/attempt={a}");
    none_left::<k8s_openapi::api::batch::v1::Job>("default", &attempt(0)).await;
    none_left::<Service>("default", &attempt(0)).await;
    let admin = kubestep_testenv::shared().client().await;
    let svc = Api::<Service>::namespaced(admin, "default")
        .get(&second)
        .await
        .unwrap_or_else(|e| panic!("the second attempt's Service {second}: {e}"));
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let owner = &svc.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", second.as_str())
    );
    assert_ne!(first, second);
    // `logs RUN/STEP` shows every member's log of every attempt.
    let logs = common::run(
        "allreduce",
        &[
            "logs",
            &format!("{run_id}/reduce"),
            "--datastore",
            "s3",
            "--datastore-root",
            &root(),
        ],
        &setup()
            .await
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let logs = String::from_utf8_lossy(&logs.stdout);
    for rank in 0..3 {
        assert!(
            logs.contains(&format!(
                "== reduce/{rank} attempt 1 in pod default/{second}-{rank}-"
            )),
            "{logs}"
        );
        assert!(
            logs.contains(&format!("rank {rank} of 3 on {second}-{rank}: sum")),
            "{logs}"
        );
    }
    assert!(
        logs.contains("rank 2 fails its first attempt on purpose"),
        "{logs}"
    );
}

#[tokio::test]
async fn workers_give_up_on_a_control_member_that_cannot_start() {
    let with = format!("reduce/kubernetes:namespace={BLOCKED},hostname_resolution_timeout=15");
    let (out, run_id) = allreduce(&["--with", &with], &[]).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let gang = gang_name("allreduce", &run_id, "reduce", 1, 3);
    let last = all.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!(
            "the control member {gang}-0.{gang}.{BLOCKED}.svc.cluster.local did not resolve within 15 s (hostname_resolution_timeout)"
        )),
        "{last}"
    );
    // The cause says why the control member never came.
    assert!(
        last.contains("(member 0 was still pending: SchedulingGated"),
        "{last}"
    );
    assert!(all.contains("[reduce/0] pending: SchedulingGated"), "{all}");
    none_left::<k8s_openapi::api::core::v1::Pod>(BLOCKED, &format!("{RUN_ID}={run_id}")).await;
    none_left::<Service>(BLOCKED, &format!("{RUN_ID}={run_id}")).await;
}

#[tokio::test]
async fn a_gang_the_cluster_cannot_fit_ends_at_the_scheduling_timeout_with_every_member_deleted() {
    // Three members of 2 GPUs each; the cluster has 4.
    let (out, run_id) = allreduce(
        &["--with", "reduce/kubernetes:gpu=2"],
        &[("KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT", "15")],
    )
    .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let last = all.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "not scheduled after 15 s (KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT): Unschedulable:"
        ) && last.contains("Insufficient nvidia.com/gpu"),
        "{last}"
    );
    assert!(all.contains("pending: Unschedulable: "), "{all}");
    let run = format!("{RUN_ID}={run_id}");
    none_left::<k8s_openapi::api::core::v1::Pod>("default", &run).await;
    none_left::<k8s_openapi::api::batch::v1::Job>("default", &run).await;
}
