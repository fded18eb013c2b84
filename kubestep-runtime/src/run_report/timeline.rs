//! An attempt's time, cut into the spans a timeline draws: queued for a worker slot, creating
//! its Job, pending (with Kubernetes' reason), fetching the binary, pulling the image and
//! starting the container, running, and the orchestrator noticing the end. Pure: from the task
//! record alone.

use crate::datastore::{Attempt, PodStage};

/// What a span of an attempt was spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Waiting for a worker slot (`--max-workers`).
    Queued,
    /// Creating the Job, until its controller created the pod.
    Launching,
    /// The pod waits for a node, or for the reason its note gives.
    Pending,
    /// The init container pulls its image and fetches the step binary.
    Fetching,
    /// The step's image is pulled and its container created.
    Starting,
    /// The step runs.
    Running,
    /// The step ended; the orchestrator notices and reads its output.
    Noticing,
}

impl Kind {
    /// Its name in the legend (and, prefixed `k-`, its CSS class).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Queued => "queued",
            Kind::Launching => "launching",
            Kind::Pending => "pending",
            Kind::Fetching => "fetching",
            Kind::Starting => "starting",
            Kind::Running => "running",
            Kind::Noticing => "noticing",
        }
    }

    /// What it means, for the legend.
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Queued => "waiting for a worker slot (--max-workers)",
            Kind::Launching => "creating the Job, until its pod exists",
            Kind::Pending => "the pod waits for a node (or the reason shown)",
            Kind::Fetching => "the init container fetches the step binary",
            Kind::Starting => "pulling the step's image and starting its container",
            Kind::Running => "the step runs",
            Kind::Noticing => "the step ended; the orchestrator notices and reads its output",
        }
    }

    /// Every kind, in the order an attempt goes through them.
    pub const ALL: [Kind; 7] = [
        Kind::Queued,
        Kind::Launching,
        Kind::Pending,
        Kind::Fetching,
        Kind::Starting,
        Kind::Running,
        Kind::Noticing,
    ];
}

/// One span of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, in milliseconds since the epoch.
    pub from_ms: u64,
    /// End, in milliseconds since the epoch.
    pub to_ms: u64,
    /// What it was spent on.
    pub kind: Kind,
    /// Kubernetes' reason, for a pending span.
    pub note: Option<String>,
}

/// The spans of `attempt`, in order and without overlap; an attempt still going ends at `now_ms`.
pub fn spans(attempt: &Attempt, now_ms: u64) -> Vec<Span> {
    let end = attempt
        .finished_ms
        .unwrap_or(now_ms)
        .max(attempt.started_ms);
    let mut cuts: Vec<(u64, Kind, Option<String>)> = Vec::new();
    if let Some(q) = attempt.queued_ms {
        cuts.push((q, Kind::Queued, None));
    }
    match attempt.pod.as_ref().filter(|p| !p.marks.is_empty()) {
        None => cuts.push((attempt.started_ms, Kind::Running, None)),
        Some(pod) => {
            cuts.push((attempt.started_ms, Kind::Launching, None));
            // Without an init container (the binary baked into the image) nothing is fetched.
            let fetches = pod.marks.iter().any(|m| m.stage == PodStage::Initialized);
            for m in &pod.marks {
                let kind = match m.stage {
                    PodStage::Created | PodStage::Pending => Kind::Pending,
                    PodStage::Scheduled if fetches => Kind::Fetching,
                    PodStage::Scheduled => Kind::Starting,
                    PodStage::Initialized => Kind::Starting,
                    PodStage::Started => Kind::Running,
                    PodStage::Finished => Kind::Noticing,
                };
                cuts.push((m.at_ms, kind, m.note.clone()));
            }
        }
    }
    // Kubernetes' whole seconds may fall before the attempt's own start: never go back.
    let mut out: Vec<Span> = Vec::new();
    let mut at = cuts.first().map_or(attempt.started_ms, |c| c.0);
    for (i, (from, kind, note)) in cuts.iter().enumerate() {
        let from = (*from).max(at).min(end);
        let to = cuts.get(i + 1).map_or(end, |c| c.0).max(from).min(end);
        at = to;
        if to > from || (i + 1 == cuts.len() && out.is_empty()) {
            out.push(Span {
                from_ms: from,
                to_ms: to,
                kind: *kind,
                note: note.clone(),
            });
        }
    }
    out
}

/// Milliseconds as `850 ms`, `12.3 s`, `4 min 05 s` or `2 h 03 min`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::{AttemptPod, PodMark};

    fn attempt(pod: Option<Vec<(u64, PodStage)>>) -> Attempt {
        Attempt {
            attempt: 0,
            queued_ms: Some(1_000),
            started_ms: 1_500,
            finished_ms: Some(20_000),
            cause: None,
            pod: pod.map(|marks| AttemptPod {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into(),
                node: None,
                resources: None,
                marks: marks
                    .into_iter()
                    .map(|(at_ms, stage)| PodMark {
                        at_ms,
                        stage,
                        note: (stage == PodStage::Pending).then(|| "Unschedulable".into()),
                    })
                    .collect(),
            }),
            orchestrator: None,
            adopted_by: None,
        }
    }

    fn kinds(spans: &[Span]) -> Vec<(u64, u64, Kind)> {
        spans.iter().map(|s| (s.from_ms, s.to_ms, s.kind)).collect()
    }

    #[test]
    fn a_local_attempt_queues_then_runs() {
        assert_eq!(
            kinds(&spans(&attempt(None), 0)),
            [(1_000, 1_500, Kind::Queued), (1_500, 20_000, Kind::Running)]
        );
    }

    #[test]
    fn a_pods_stages_become_spans_and_its_seconds_never_go_back() {
        let marks = vec![
            // Created at a whole second before the attempt's own start.
            (1_000, PodStage::Created),
            (3_000, PodStage::Pending),
            (5_000, PodStage::Scheduled),
            (7_000, PodStage::Initialized),
            (9_000, PodStage::Started),
            (19_000, PodStage::Finished),
        ];
        let s = spans(&attempt(Some(marks)), 0);
        assert_eq!(
            kinds(&s),
            [
                (1_000, 1_500, Kind::Queued),
                (1_500, 3_000, Kind::Pending),
                (3_000, 5_000, Kind::Pending),
                (5_000, 7_000, Kind::Fetching),
                (7_000, 9_000, Kind::Starting),
                (9_000, 19_000, Kind::Running),
                (19_000, 20_000, Kind::Noticing),
            ]
        );
        assert_eq!(s[2].note.as_deref(), Some("Unschedulable"));
    }

    #[test]
    fn a_pod_without_an_init_container_fetches_nothing() {
        let marks = vec![
            (2_000, PodStage::Created),
            (3_000, PodStage::Scheduled),
            (4_000, PodStage::Started),
        ];
        assert_eq!(
            kinds(&spans(&attempt(Some(marks)), 0))[2..],
            [
                (2_000, 3_000, Kind::Pending),
                (3_000, 4_000, Kind::Starting),
                (4_000, 20_000, Kind::Running),
            ]
        );
    }

    #[test]
    fn an_attempt_still_going_ends_now_and_a_lost_pod_at_its_last_stage() {
        let mut a = attempt(Some(vec![
            (2_000, PodStage::Created),
            (4_000, PodStage::Started),
        ]));
        a.finished_ms = None;
        assert_eq!(
            kinds(&spans(&a, 30_000)),
            [
                (1_000, 1_500, Kind::Queued),
                (1_500, 2_000, Kind::Launching),
                (2_000, 4_000, Kind::Pending),
                (4_000, 30_000, Kind::Running),
            ]
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 min 05 s");
        assert_eq!(duration(7_380_000), "2 h 03 min");
    }
}
