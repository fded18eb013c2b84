//! One Kubernetes attempt as a state machine: where it stands ([`State`]), what can happen to
//! it ([`Event`]: a pod state from the watch, the Job's Events, the scheduling timeout, the
//! watch stopping), and [`fold`], a pure function from one to the next that also says what the
//! executor should do ([`Effect`]: print a pending note, start following the log). The executor
//! only waits for the next event and carries the effects out, so every transition is tested
//! here without a cluster, as kube-runtime folds watcher events.

use super::diagnose::{self, End, Limits, Phase};
use super::watch::Seen;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;
use std::time::Duration;

/// Where an attempt stands.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running yet: no pod, or a pod waiting for a node or its containers.
    Waiting {
        /// The latest pod, once there is one.
        pod: Option<Arc<Pod>>,
        /// A node has it: the scheduling timeout no longer applies.
        placed: bool,
        /// The latest reason Kubernetes gave (the scheduler's message, a Job event).
        note: Option<String>,
    },
    /// The step's container runs; its log is followed.
    Running,
    /// The pod ended, this way.
    Ended(End, Arc<Pod>),
    /// It never ran and never will (stuck, not scheduled in time, no watch): the cause.
    Abandoned(String),
}

impl State {
    /// Where every attempt starts: its Job created, nothing seen.
    pub const START: State = State::Waiting {
        pod: None,
        placed: false,
        note: None,
    };

    /// Whether nothing more can happen to it.
    pub fn is_over(&self) -> bool {
        matches!(self, State::Ended(..) | State::Abandoned(_))
    }

    /// Whether the scheduling timeout runs: no node has the pod yet.
    pub fn awaits_a_node(&self) -> bool {
        matches!(self, State::Waiting { placed: false, .. })
    }

    /// Whether the Job has no pod yet (its Events may say why).
    pub fn has_no_pod(&self) -> bool {
        matches!(self, State::Waiting { pod: None, .. })
    }
}

/// What can happen to an attempt.
#[derive(Clone, Debug)]
pub enum Event {
    /// The watch brought the pod's latest state.
    Seen(Seen),
    /// The Job's Events were read (a Job without a pod): the latest, if any.
    Events(Option<String>),
    /// No node took the pod within the scheduling timeout.
    NotScheduled {
        /// How long it waited.
        waited: Duration,
        /// The Job's latest Event, read when there was no pod.
        job_event: Option<String>,
        /// The watch's last error, if it has one.
        watch_error: Option<String>,
    },
    /// The watch ended.
    WatchStopped,
}

/// What the executor does on a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Print `pending: <note>` for the task.
    Pending(String),
    /// Start following the step container's log in this pod.
    FollowLog(String),
}

/// The next state of an attempt in `state` after `event`, and what to do about it.
pub fn fold(state: State, event: Event, limits: &Limits) -> (State, Vec<Effect>) {
    if state.is_over() {
        return (state, Vec::new());
    }
    let logs_started = matches!(state, State::Running);
    let mut effects = Vec::new();
    let follow = |pod: &Pod, effects: &mut Vec<Effect>| {
        if !logs_started && let Some(name) = &pod.metadata.name {
            effects.push(Effect::FollowLog(name.clone()));
        }
    };
    let next = match event {
        Event::Seen(Seen::None) => state,
        Event::Seen(Seen::Gone(pod)) => match diagnose::phase(&pod, limits, None) {
            Phase::Ended(end) => {
                if diagnose::step_started(&pod) {
                    follow(&pod, &mut effects);
                }
                State::Ended(end, pod)
            }
            _ => State::Ended(
                End::Lost(format!(
                    "pod {} was deleted before it finished (its node was lost, or someone deleted it)",
                    pod.metadata.name.as_deref().unwrap_or("?")
                )),
                pod,
            ),
        },
        Event::Seen(Seen::Pod(pod)) => match diagnose::phase(&pod, limits, None) {
            Phase::Waiting(now) => match state {
                State::Waiting { placed, note, .. } => {
                    let placed = placed || pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
                    let note = match now {
                        Some(n) if note.as_ref() != Some(&n) => {
                            effects.push(Effect::Pending(n.clone()));
                            Some(n)
                        }
                        // Kubernetes says nothing now: the old reason no longer holds.
                        same => same,
                    };
                    State::Waiting {
                        pod: Some(pod),
                        placed,
                        note,
                    }
                }
                // A running pod reported waiting again (a container restarting) still runs.
                other => other,
            },
            Phase::Stuck(cause) => State::Abandoned(cause),
            Phase::Running => {
                follow(&pod, &mut effects);
                State::Running
            }
            Phase::Ended(end) => {
                if diagnose::step_started(&pod) {
                    follow(&pod, &mut effects);
                }
                State::Ended(end, pod)
            }
        },
        Event::Events(event) => match (state, event) {
            // Pod Security refuses every pod of the Job alike, however long it waits.
            (State::Waiting { .. }, Some(e)) if e.contains("violates PodSecurity") => {
                State::Abandoned(format!(
                    "the namespace's Pod Security level refuses its pods: {e}"
                ))
            }
            (State::Waiting { pod, placed, .. }, Some(e)) => {
                effects.push(Effect::Pending(e.clone()));
                State::Waiting {
                    pod,
                    placed,
                    note: Some(e),
                }
            }
            (state, _) => state,
        },
        Event::NotScheduled {
            waited,
            job_event,
            watch_error,
        } => match state {
            State::Waiting {
                pod, note, placed, ..
            } if !placed => {
                let why = job_event
                    .or(note)
                    .or_else(|| pod.as_deref().and_then(diagnose::waiting_reason))
                    .or_else(|| watch_error.map(|e| format!("the pod watch fails: {e}")))
                    .unwrap_or_else(|| "no pod was created for its Job".into());
                State::Abandoned(format!(
                    "not scheduled after {} s (KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT): {why}",
                    waited.as_secs()
                ))
            }
            other => other,
        },
        Event::WatchStopped => State::Abandoned("the pod watch stopped".into()),
    };
    (next, effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: Option<&str>, status: serde_json::Value) -> Arc<Pod> {
        let mut spec = json!({"containers": [{"name": "train", "image": "debian"}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "spec": spec,
                "status": status,
            }))
            .unwrap(),
        )
    }

    fn unschedulable() -> Arc<Pod> {
        pod(
            None,
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]}),
        )
    }

    fn running() -> Arc<Pod> {
        pod(
            Some("node-a"),
            json!({"phase": "Running", "containerStatuses": [{"name": "train", "ready": true,
            "restartCount": 0, "image": "debian", "imageID": "", "state": {"running": {}}}]}),
        )
    }

    fn exited(code: i32) -> Arc<Pod> {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        pod(
            Some("node-a"),
            json!({"phase": phase, "containerStatuses": [{"name": "train", "ready": false,
            "restartCount": 0, "image": "debian", "imageID": "",
            "state": {"terminated": {"exitCode": code, "reason": "Completed"}}}]}),
        )
    }

    fn limits() -> Limits {
        Limits {
            step: "train".into(),
            ..Limits::default()
        }
    }

    /// Folds the events in order from the start; the final state and every effect.
    fn run(events: Vec<Event>) -> (State, Vec<Effect>) {
        let mut state = State::START;
        let mut all = Vec::new();
        for e in events {
            let (next, effects) = fold(state, e, &limits());
            state = next;
            all.extend(effects);
        }
        (state, all)
    }

    fn not_scheduled() -> Event {
        Event::NotScheduled {
            waited: Duration::from_secs(3),
            job_event: None,
            watch_error: None,
        }
    }

    #[test]
    fn a_pending_note_is_said_once_and_names_the_timeout_cause() {
        let (state, effects) = run(vec![
            Event::Seen(Seen::Pod(unschedulable())),
            Event::Seen(Seen::Pod(unschedulable())),
            not_scheduled(),
        ]);
        assert_eq!(effects.len(), 1, "{effects:?}");
        assert!(matches!(&effects[0], Effect::Pending(n) if n.starts_with("Unschedulable: 0/4")));
        let State::Abandoned(cause) = state else {
            panic!("{state:?}")
        };
        assert!(
            cause.starts_with(
                "not scheduled after 3 s (KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT): Unschedulable"
            ),
            "{cause}"
        );
    }

    #[test]
    fn a_placed_pod_is_past_the_scheduling_timeout() {
        let initializing = pod(
            Some("node-a"),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "fetch-binary",
            "ready": false, "restartCount": 0, "image": "curl", "imageID": "",
            "state": {"running": {}}}]}),
        );
        let (state, _) = run(vec![Event::Seen(Seen::Pod(initializing))]);
        assert!(!state.awaits_a_node(), "{state:?}");
        let (state, _) = fold(state, not_scheduled(), &limits());
        assert!(
            matches!(state, State::Waiting { placed: true, .. }),
            "{state:?}"
        );
    }

    #[test]
    fn running_starts_the_log_once_and_the_end_is_the_pods() {
        let (state, effects) = run(vec![
            Event::Seen(Seen::Pod(running())),
            Event::Seen(Seen::Pod(running())),
            Event::Seen(Seen::Pod(exited(0))),
        ]);
        assert_eq!(effects, [Effect::FollowLog("p".into())]);
        assert!(
            matches!(state, State::Ended(End::Succeeded, _)),
            "{state:?}"
        );
    }

    #[test]
    fn a_pod_first_seen_ended_still_has_its_log_read() {
        let (state, effects) = run(vec![Event::Seen(Seen::Pod(exited(3)))]);
        assert_eq!(effects, [Effect::FollowLog("p".into())]);
        assert!(
            matches!(state, State::Ended(End::Failed(_), _)),
            "{state:?}"
        );
    }

    #[test]
    fn a_pod_deleted_while_it_ran_is_lost() {
        let (state, _) = run(vec![
            Event::Seen(Seen::Pod(running())),
            Event::Seen(Seen::Gone(running())),
        ]);
        let State::Ended(End::Lost(cause), _) = state else {
            panic!("{state:?}")
        };
        assert!(cause.contains("was deleted before it finished"), "{cause}");
    }

    #[test]
    fn a_pod_deleted_after_it_ended_keeps_its_end() {
        let (state, _) = run(vec![Event::Seen(Seen::Gone(exited(0)))]);
        assert!(
            matches!(state, State::Ended(End::Succeeded, _)),
            "{state:?}"
        );
    }

    #[test]
    fn a_bad_image_abandons_the_attempt_at_once() {
        let stuck = pod(
            Some("node-a"),
            json!({"phase": "Pending", "containerStatuses": [{"name": "train", "ready": false,
            "restartCount": 0, "image": "nope:1", "imageID": "",
            "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}),
        );
        let (state, _) = run(vec![Event::Seen(Seen::Pod(stuck))]);
        assert!(
            matches!(&state, State::Abandoned(c) if c.starts_with("cannot pull image `debian`")),
            "{state:?}"
        );
    }

    #[test]
    fn a_job_without_a_pod_is_explained_by_its_events() {
        let quota = "FailedCreate: pods \"x\" is forbidden: exceeded quota: no-pods".to_string();
        let (state, effects) = run(vec![
            Event::Events(Some(quota.clone())),
            Event::NotScheduled {
                waited: Duration::from_secs(15),
                job_event: Some(quota.clone()),
                watch_error: None,
            },
        ]);
        assert_eq!(effects, [Effect::Pending(quota)]);
        assert!(
            matches!(&state, State::Abandoned(c) if c.starts_with("not scheduled after 15 s") && c.ends_with("exceeded quota: no-pods")),
            "{state:?}"
        );
        let (state, _) = run(vec![not_scheduled()]);
        assert!(
            matches!(&state, State::Abandoned(c) if c.ends_with("no pod was created for its Job")),
            "{state:?}"
        );
    }

    #[test]
    fn a_pod_security_refusal_abandons_the_attempt_at_once() {
        let refused = "FailedCreate: pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true".to_string();
        let (state, _) = run(vec![Event::Events(Some(refused))]);
        assert!(
            matches!(&state, State::Abandoned(c) if c.starts_with("the namespace's Pod Security level refuses its pods: FailedCreate") && c.ends_with("runAsNonRoot != true")),
            "{state:?}"
        );
    }

    #[test]
    fn a_stopped_watch_abandons_and_nothing_follows_the_end() {
        let (state, _) = run(vec![Event::WatchStopped]);
        assert_eq!(state, State::Abandoned("the pod watch stopped".into()));
        let (state, effects) = run(vec![
            Event::Seen(Seen::Pod(exited(0))),
            Event::Seen(Seen::Pod(running())),
            Event::WatchStopped,
        ]);
        assert_eq!(effects.len(), 1);
        assert!(
            matches!(state, State::Ended(End::Succeeded, _)),
            "{state:?}"
        );
    }
}
