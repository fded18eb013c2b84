//! `status [RUN_ID] [--json]`: where a run is, from anywhere. The run and its tasks come from
//! the datastore (state, attempts, the orchestrator instances that ran them); while the run
//! runs, its live pods come from the cluster (which pod and node a running task is on, and the
//! pod's phase), since a task's record names its pod only once the attempt ends.

use super::run::DatastoreArgs;
use super::{Error, WithArgs};
use crate::datastore::layout::check_segment;
use crate::datastore::{Status, TaskRecord};
use crate::executor::kubernetes::cluster::{Cluster, ConnectError};
use crate::flow::Flow;
use crate::report::report;
use kubestep_core::resolve::Defaults;
use std::collections::HashMap;
use std::io::Write;

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The run (default: the latest).
    #[arg(value_parser = |s: &str| check_segment("run id", s).map(|()| s.to_string()))]
    run_id: Option<String>,
    /// Print one JSON document, for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: DatastoreArgs,
    #[command(flatten)]
    with: WithArgs,
}

/// What `status --json` prints.
#[derive(Debug, serde::Serialize)]
struct RunStatus {
    flow: String,
    run_id: String,
    /// `running`, `succeeded`, `failed` or `killed`.
    state: String,
    started_ms: u64,
    finished_ms: Option<u64>,
    cause: Option<String>,
    /// Why the live pods are not in it, when they are not (the run has ended, no cluster is
    /// configured, or the cluster did not answer).
    cluster: Option<String>,
    tasks: Vec<TaskStatus>,
}

/// One task in [`RunStatus`].
#[derive(Debug, serde::Serialize)]
struct TaskStatus {
    step: String,
    task: String,
    state: String,
    /// Its latest attempt, from 0.
    attempt: Option<u32>,
    pod: Option<String>,
    node: Option<String>,
    /// The live pod's phase, while the run runs.
    phase: Option<String>,
    /// The orchestrator instance that launched its latest attempt, and the one that took it
    /// over if its launcher stopped.
    orchestrator: Option<String>,
    adopted_by: Option<String>,
    /// Why its latest attempt failed, when it did.
    cause: Option<String>,
}

fn state(s: &Status) -> String {
    format!("{s:?}").to_lowercase()
}

/// A live pod, as `status` shows it: name, node, phase.
type Live = (String, Option<String>, Option<String>);

/// The run's pods on the cluster, by (step, task, attempt).
async fn live_pods(
    flow: &Flow,
    defaults: &Defaults,
    with: &WithArgs,
    run_id: &str,
) -> Result<HashMap<(String, String, String), Live>, String> {
    let settings = defaults.settings().map_err(|e| report(&e))?;
    let cluster = match Cluster::connect(settings.api_qps).await {
        Ok(c) => c,
        Err(ConnectError::NotConfigured) => return Err("no cluster is configured".into()),
        Err(e) => return Err(report(&e)),
    };
    let namespaces: std::collections::BTreeSet<String> =
        super::kubernetes::step_namespaces(flow, defaults, with)
            .map_err(|e| report(&e))?
            .into_iter()
            .collect();
    let selector = super::kubernetes::selector(flow, Some(run_id));
    let mut pods = HashMap::new();
    for ns in namespaces {
        for p in cluster
            .list_pods(&ns, &selector)
            .await
            .map_err(|e| report(&e))?
        {
            let [_, step, task, attempt] = super::kubernetes::pod_task(&p);
            let status = p.status.as_ref();
            pods.insert(
                (step, task, attempt),
                (
                    p.metadata.name.clone().unwrap_or_default(),
                    p.spec.as_ref().and_then(|s| s.node_name.clone()),
                    status.and_then(|s| s.phase.clone()),
                ),
            );
        }
    }
    Ok(pods)
}

fn task_status(t: TaskRecord, live: &HashMap<(String, String, String), Live>) -> TaskStatus {
    let last = t.attempts.last();
    let pod =
        last.and_then(|a| live.get(&(t.step.clone(), t.task_id.clone(), a.attempt.to_string())));
    let recorded = last.and_then(|a| a.pod.as_ref());
    TaskStatus {
        state: state(&t.status),
        attempt: last.map(|a| a.attempt),
        pod: pod
            .map(|p| p.0.clone())
            .or_else(|| recorded.map(|p| p.name.clone())),
        node: pod
            .and_then(|p| p.1.clone())
            .or_else(|| recorded.and_then(|p| p.node.clone())),
        phase: pod.and_then(|p| p.2.clone()),
        orchestrator: last.and_then(|a| a.orchestrator.clone()),
        adopted_by: last.and_then(|a| a.adopted_by.clone()),
        cause: last.and_then(|a| a.cause.clone()),
        step: t.step,
        task: t.task_id,
    }
}

/// Prints the run's status.
pub(super) async fn status(
    flow: &Flow,
    defaults: &Defaults,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), Error> {
    super::check_overrides(flow, &args.with.with)?;
    let ds = args.store.open(flow)?;
    let client = crate::client::Client::new(ds.clone());
    let bad = |e: crate::client::Error| Error::Unsupported(report(&e));
    let record = match &args.run_id {
        Some(id) => client.run(id).await.map_err(bad)?.ok_or_else(|| {
            Error::Unsupported(format!(
                "flow `{}` has no run {id} in {}",
                flow.name(),
                ds.root()
            ))
        })?,
        None => client.latest_run().await.map_err(bad)?.ok_or_else(|| {
            Error::Unsupported(format!(
                "flow `{}` has no run in {}",
                flow.name(),
                ds.root()
            ))
        })?,
    };
    let mut tasks = client.tasks(&record.run_id).await.map_err(bad)?;
    // In the flow's order, then by task number.
    let order: Vec<&str> = flow.steps().map(|d| d.name).collect();
    tasks.sort_by_key(|t| {
        (
            order.iter().position(|s| *s == t.step),
            t.task_id.parse::<u64>().unwrap_or(u64::MAX),
        )
    });
    let (live, cluster) = if record.status == Status::Running {
        match live_pods(flow, defaults, &args.with, &record.run_id).await {
            Ok(live) => (live, None),
            Err(why) => (HashMap::new(), Some(format!("live pods not read: {why}"))),
        }
    } else {
        (HashMap::new(), Some("the run has ended".into()))
    };
    let status = RunStatus {
        flow: record.flow,
        run_id: record.run_id,
        state: state(&record.status),
        started_ms: record.started_ms,
        finished_ms: record.finished_ms,
        cause: record.cause,
        cluster,
        tasks: tasks.into_iter().map(|t| task_status(t, &live)).collect(),
    };
    if args.json {
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| Error::Unsupported(format!("cannot print JSON: {e}")))?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    let took = status
        .finished_ms
        .unwrap_or_else(crate::datastore::now_ms)
        .saturating_sub(status.started_ms);
    writeln!(
        out,
        "run {} of flow `{}`: {} ({:.0} s{}){}",
        status.run_id,
        status.flow,
        status.state,
        took as f64 / 1000.0,
        if status.finished_ms.is_some() {
            ""
        } else {
            " so far"
        },
        status
            .cause
            .as_ref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default()
    )?;
    if status.state == "running"
        && let Some(why) = &status.cluster
    {
        writeln!(out, "({why})")?;
    }
    writeln!(out, "STEP\tTASK\tSTATE\tATTEMPT\tPOD\tNODE\tPHASE")?;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for t in &status.tasks {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.step,
            t.task,
            t.state,
            t.attempt.map_or("-".into(), |a| a.to_string()),
            dash(&t.pod),
            dash(&t.node),
            dash(&t.phase)
        )?;
    }
    Ok(())
}
