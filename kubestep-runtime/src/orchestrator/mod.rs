//! The orchestrator: walks the flow's stages, fans tasks out and in, retries failed attempts,
//! and hands every attempt to an executor. It moves values between steps as encoded bytes
//! (see `codec`) without knowing their types.

use crate::codec;
use crate::datastore::{
    Attempt, Datastore, Key, KillMark, Prefix, RunRecord, Status, TaskPath, TaskRecord, now_ms,
};
use crate::executor::{Executor, GangEnded, GangSpec, Outcome, RunContext, TaskSpec};
use crate::flow::{Flow, StageKind};
use crate::report::report;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kubestep_core::StepDecl;
use kubestep_core::spec::StepSpec;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task failed after its last attempt.
    #[error("step `{step}` task {task} failed after {attempts} attempt(s): {cause}")]
    Task {
        /// The step.
        step: String,
        /// The task.
        task: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's cause.
        cause: String,
    },
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] crate::datastore::Error),
    /// Stopped because another task of its stage failed.
    #[error("{CANCELLED}")]
    Cancelled,
    /// `kubernetes kill` marked the run: nothing more is launched.
    #[error("{KILLED}")]
    Killed,
    /// A step's decorators break a rule (a step description not checked by the macro).
    #[error("step `{step}`: {message}")]
    Decorators {
        /// The step.
        step: String,
        /// The rules broken.
        message: String,
    },
    /// A value could not be split or joined (a bug or a corrupted artifact).
    #[error("step `{step}`: {message}")]
    Values {
        /// The step.
        step: String,
        /// What went wrong.
        message: String,
    },
}

/// The cause recorded for a run, and the attempt it stopped, after `kubernetes kill`.
const KILLED: &str = "killed by `kubernetes kill`";

/// The cause recorded for a task stopped because a sibling failed.
const CANCELLED: &str = "cancelled: another task of its stage failed";

/// The cause recorded for a run and its running tasks on Ctrl-C or SIGTERM.
const INTERRUPTED: &str = "interrupted (Ctrl-C or SIGTERM)";

/// What ends the cause of an attempt lost to the platform, not to its own code.
const INFRASTRUCTURE: &str = " (infrastructure)";

/// The cause recorded for an attempt in flight when its orchestrator stopped, when its executor
/// cannot take it over (a local process).
const ORPHANED: &str =
    "its orchestrator stopped before it ended; `run --recover` launched it again";

/// How many times an attempt lost to the platform (eviction, preemption, a lost node) is
/// retried before the task fails; these retries do not spend `#[retry]` attempts.
pub const LOST_RETRIES: u32 = 3;

/// A run in progress: what its executors share, and where its attempts go.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// Datastore, run id, output.
    pub ctx: &'a RunContext,
    /// Runs the attempts.
    pub executor: &'a dyn Executor,
}

/// What a run takes over from an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: every task runs.
    #[default]
    Nothing,
    /// `resume`: reuse every task of this earlier run that succeeded on the same input.
    Resume(String),
    /// `run --recover`: this run itself, continued under its own id after its orchestrator
    /// stopped: finished tasks are kept, attempts still in flight are adopted where their
    /// executor can (a Kubernetes Job outlives its orchestrator), the rest launch.
    Recover,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most tasks at once.
    pub max_workers: usize,
    /// What the run takes over.
    pub prior: Prior,
    /// The encoded input of the start step (the flow's parameters); `()` when none.
    pub start_input: Option<Vec<u8>>,
    /// Where the run's Lease is, for the run record.
    pub orchestrator_namespace: Option<String>,
}

/// What the previous stage left: one output per task, and how a join combines them.
struct Produced {
    outputs: Vec<String>,
    branches: bool,
}

/// A step's retry policy and timeout, from its decorators.
struct Policy {
    /// `#[retry]` attempts after the first failure.
    retries: u32,
    /// Pause before each retry of a failed attempt.
    pause: Duration,
    /// `#[timeout]`.
    timeout: Option<Duration>,
}

impl Policy {
    /// The policy of `decl`; a decorator that breaks a rule is an error, never a silent default.
    fn of(decl: &StepDecl) -> Result<Policy, Error> {
        let spec =
            StepSpec::from_decorators(decl.decorators).map_err(|errors| Error::Decorators {
                step: decl.name.into(),
                message: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        let (retries, pause) = spec.retry.map_or((0, Duration::ZERO), |r| {
            (
                r.times,
                Duration::from_secs_f64(r.minutes_between_retries * 60.0),
            )
        });
        Ok(Policy {
            retries,
            pause,
            timeout: spec.timeout.map(|t| Duration::from_secs(t.seconds)),
        })
    }
}

/// What runs through attempts as one: a task, or the gang of a multi-node step, whose members
/// (tasks `0..n`) start, fail and retry together.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Work {
    /// One task, by id.
    Task(String),
    /// A gang of this many members.
    Gang(u32),
}

impl Work {
    /// The task ids it records.
    fn ids(&self) -> Vec<String> {
        match self {
            Work::Task(id) => vec![id.clone()],
            Work::Gang(n) => (0..*n).map(|i| i.to_string()).collect(),
        }
    }

    /// How messages name it.
    fn label(&self) -> String {
        match self {
            Work::Task(id) => id.clone(),
            Work::Gang(n) => format!("0-{}", n.saturating_sub(1)),
        }
    }
}

/// Runs one task (or one gang) through its attempts; records each in the datastore. Returns the
/// output of every task it ran, in task order. A gang takes one worker slot: its members must
/// start together.
async fn run_task(
    run: &Run<'_>,
    slots: &Semaphore,
    prior: &Prior,
    mut cancel: watch::Receiver<bool>,
    decl: &'static StepDecl,
    work: Work,
    mut input: String,
) -> Result<Vec<String>, Error> {
    let ids = work.ids();
    if let Prior::Resume(origin) = prior
        && let Some(reused) = reuse(run, origin, decl, &ids, &input).await?
    {
        return Ok(reused);
    }
    let Policy {
        retries,
        pause,
        timeout,
    } = Policy::of(decl)?;
    let ctx = run.ctx;
    let keys: Vec<Key> = ids
        .iter()
        .map(|id| Key::Task(TaskPath::new(&ctx.run_id, decl.name, id)))
        .collect();
    let mut records: Vec<TaskRecord> = ids
        .iter()
        .map(|id| TaskRecord {
            step: decl.name.into(),
            task_id: id.clone(),
            status: Status::Running,
            input: input.clone(),
            output: None,
            attempts: Vec::new(),
            reused_from: None,
        })
        .collect();
    let (mut failed, mut lost) = (0u32, 0u32);
    let (mut first, mut adopt) = (0, false);
    if *prior == Prior::Recover
        && let Some(found) = recorded(run, decl, &ids).await?
    {
        match found {
            Recorded::Done(outputs) => return Ok(outputs),
            Recorded::Started(found) => {
                records = found;
                let continued = continue_records(run, decl, &mut records);
                (first, adopt) = (continued.next_attempt, continued.adopt);
                (failed, lost) = (continued.failed, continued.lost);
                // The inputs are content-addressed: the recorded one is the run's own.
                input = records[0].input.clone();
            }
        }
    }
    let me = instance();
    for attempt in first.. {
        // Waiting (for the pause or a slot) ends early when a sibling failed.
        let mut queued_ms = None;
        let ready = async {
            if failed > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            queued_ms = Some(now_ms());
            slots.acquire().await.expect("semaphore is never closed")
        };
        let (_slot, started_ms) = tokio::select! {
            slot = ready => (slot, now_ms()),
            _ = cancel.wait_for(|c| *c) => {
                // A task stopped between attempts failed; one never started has no record.
                end_records(ctx, &keys, &mut records).await?;
                return Err(Error::Cancelled);
            }
        };
        // `kubernetes kill` deletes the pods, which would read as lost and be launched again:
        // its mark in the datastore is checked before every launch.
        if ctx
            .datastore
            .get_record::<KillMark>(&Key::Killed(ctx.run_id.clone()))
            .await?
            .is_some()
        {
            end_records(ctx, &keys, &mut records).await?;
            return Err(Error::Killed);
        }
        let adopting = adopt && attempt == first;
        for (key, record) in keys.iter().zip(&mut records) {
            if adopting {
                let last = record.attempts.last_mut().expect("an attempt in flight");
                last.adopted_by = Some(me.clone());
            } else {
                record.attempts.push(Attempt {
                    attempt,
                    queued_ms,
                    started_ms,
                    finished_ms: None,
                    cause: None,
                    pod: None,
                    orchestrator: Some(me.clone()),
                    adopted_by: None,
                });
            }
            ctx.datastore.put_record(key, record).await?;
            ctx.progress.started(decl.name);
        }
        // Dropping the attempt's future stops it (its process group or its Job).
        let launched = async {
            match &work {
                Work::Task(id) => {
                    let spec = TaskSpec {
                        step: decl,
                        task_id: id.clone(),
                        attempt,
                        input: input.clone(),
                        timeout,
                    };
                    // An adopted attempt that wrote its output before its orchestrator
                    // stopped is done: launching it again would run it twice.
                    // Only an adopted attempt is looked up: a fresh one has written nothing.
                    let written = if adopting {
                        run.ctx.attempt_result(&spec).await.ok().flatten()
                    } else {
                        None
                    };
                    let ended = match written {
                        // The pod it ran in: as the stopped orchestrator saw it, or as the pod
                        // wrote it.
                        Some(result) => crate::executor::Ended {
                            outcome: Outcome::Succeeded(result.output),
                            pod: records[0]
                                .attempts
                                .last()
                                .and_then(|a| a.pod.clone())
                                .or(result.pod),
                        },
                        None => run.executor.run(&spec).await,
                    };
                    GangEnded {
                        outcome: ended.outcome.clone(),
                        members: vec![ended],
                    }
                }
                Work::Gang(size) => {
                    let gang = GangSpec {
                        step: decl,
                        size: *size,
                        attempt,
                        input: input.clone(),
                        timeout,
                    };
                    run.executor.run_gang(&gang).await
                }
            }
        };
        let ended = tokio::select! {
            ended = launched => ended,
            _ = cancel.wait_for(|c| *c) => GangEnded::failed(ids.len(), CANCELLED.into()),
        };
        let cancelled = *cancel.borrow();
        let finished_ms = now_ms();
        if let Outcome::Succeeded(_) = ended.outcome {
            let mut outputs = Vec::with_capacity(ids.len());
            for ((key, record), member) in keys.iter().zip(&mut records).zip(ended.members) {
                let last = record.attempts.last_mut().expect("pushed above");
                last.finished_ms = Some(finished_ms);
                last.pod = member.pod;
                let Outcome::Succeeded(output) = member.outcome else {
                    unreachable!("a gang succeeds only when every member did")
                };
                ctx.progress.ended(decl.name, true, true);
                record.status = Status::Succeeded;
                record.output = Some(output.clone());
                ctx.datastore.put_record(key, record).await?;
                outputs.push(output);
            }
            return Ok(outputs);
        }
        let (cause, again) = match ended.outcome {
            Outcome::Succeeded(_) => unreachable!("handled above"),
            Outcome::Failed(cause) => {
                failed += 1;
                let left = (retries + 1).saturating_sub(failed);
                (cause, (left > 0).then(|| format!("retrying ({left} left)")))
            }
            Outcome::Lost(cause) => {
                lost += 1;
                let left = (LOST_RETRIES + 1).saturating_sub(lost);
                let cause = format!("{cause}{INFRASTRUCTURE}");
                (
                    cause,
                    (left > 0).then(|| {
                        format!("retrying without spending a #[retry] attempt ({left} left)")
                    }),
                )
            }
        };
        let last_one = again.is_none() || cancelled;
        for (record, member) in records.iter_mut().zip(ended.members) {
            let last = record.attempts.last_mut().expect("pushed above");
            last.finished_ms = Some(finished_ms);
            last.pod = member.pod;
            // A lone task's cause says how it was lost; a member's says its own part.
            last.cause = Some(match (&work, member.outcome) {
                (Work::Task(_), _) => cause.clone(),
                (Work::Gang(_), Outcome::Failed(c) | Outcome::Lost(c)) => c,
                (Work::Gang(_), Outcome::Succeeded(_)) => {
                    "succeeded, but its gang failed".to_string()
                }
            });
            ctx.progress.ended(decl.name, false, last_one);
        }
        if last_one {
            end_records(ctx, &keys, &mut records).await?;
            if cancelled {
                return Err(Error::Cancelled);
            }
            return Err(Error::Task {
                step: decl.name.into(),
                task: work.label(),
                attempts: attempt + 1,
                cause,
            });
        }
        // The failed attempt is on record before the pause, not only when the next one starts.
        for (key, record) in keys.iter().zip(&records) {
            ctx.datastore.put_record(key, record).await?;
        }
        if ctx.echo {
            let note = format!(
                "[{}/{}] attempt {attempt} failed: {cause}; {}",
                decl.name,
                work.label(),
                again.unwrap_or_default()
            );
            ctx.progress.println(&note, true);
        }
    }
    unreachable!("attempts end in a return")
}

/// Records tasks that end without succeeding as failed; tasks never started have no record.
async fn end_records(
    ctx: &RunContext,
    keys: &[Key],
    records: &mut [TaskRecord],
) -> Result<(), Error> {
    for (key, record) in keys.iter().zip(records) {
        if !record.attempts.is_empty() {
            record.status = Status::Failed;
            ctx.datastore.put_record(key, record).await?;
        }
    }
    Ok(())
}

/// Runs one task of `decl` on `input` (an artifact) through its attempts, as a flow's task
/// runs: retries, lost-attempt retries and records included. Returns the output artifact.
pub async fn run_one(
    run: &Run<'_>,
    decl: &'static StepDecl,
    task_id: String,
    input: String,
) -> Result<String, Error> {
    let slots = Semaphore::new(1);
    let (_cancel, cancelled) = watch::channel(false);
    run.ctx.progress.planned(decl.name, 1);
    let mut outputs = run_task(
        run,
        &slots,
        &Prior::Nothing,
        cancelled,
        decl,
        Work::Task(task_id),
        input,
    )
    .await?;
    Ok(outputs.remove(0))
}

/// This orchestrator instance, as the records name it: the host (a pod's name, in a pod) and
/// the process id.
pub fn instance() -> String {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host} pid {}", std::process::id())
        })
        .clone()
}

/// What a recovered run finds of one piece of work.
enum Recorded {
    /// Every task succeeded: their outputs.
    Done(Vec<String>),
    /// It started: the records, a missing member's made from another's.
    Started(Vec<TaskRecord>),
}

/// The records of `ids` in this run, if any was written.
async fn recorded(
    run: &Run<'_>,
    decl: &'static StepDecl,
    ids: &[String],
) -> Result<Option<Recorded>, Error> {
    let ds = &run.ctx.datastore;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let key = Key::Task(TaskPath::new(&run.ctx.run_id, decl.name, id));
        found.push(ds.get_record::<TaskRecord>(&key).await?);
    }
    let Some(template) = found.iter().flatten().next().cloned() else {
        return Ok(None);
    };
    let records: Vec<TaskRecord> = found
        .into_iter()
        .zip(ids)
        .map(|(r, id)| {
            r.unwrap_or_else(|| TaskRecord {
                task_id: id.clone(),
                status: Status::Running,
                output: None,
                ..template.clone()
            })
        })
        .collect();
    let outputs: Option<Vec<String>> = records
        .iter()
        .map(|r| r.output.clone().filter(|_| r.status == Status::Succeeded))
        .collect();
    let Some(outputs) = outputs else {
        return Ok(Some(Recorded::Started(records)));
    };
    for _ in &outputs {
        run.ctx.progress.started(decl.name);
        run.ctx.progress.ended(decl.name, true, true);
    }
    Ok(Some(Recorded::Done(outputs)))
}

/// Where a recovered task's attempts go on.
struct Continued {
    next_attempt: u32,
    /// Whether the attempt `next_attempt` is in flight and its executor takes it over.
    adopt: bool,
    failed: u32,
    lost: u32,
}

/// Counts a recovered task's attempts; one in flight is taken over when its executor can, or
/// else recorded as ended by its orchestrator's stop (not spending a `#[retry]`).
fn continue_records(
    run: &Run<'_>,
    decl: &'static StepDecl,
    records: &mut [TaskRecord],
) -> Continued {
    let adopts = run.executor.adopts(decl.name);
    let mut continued = Continued {
        next_attempt: 0,
        adopt: false,
        failed: 0,
        lost: 0,
    };
    for record in records.iter_mut() {
        record.status = Status::Running;
        let Some(last) = record.attempts.last_mut() else {
            continue;
        };
        continued.next_attempt = last.attempt + 1;
        if last.finished_ms.is_none() {
            if adopts {
                continued.next_attempt = last.attempt;
                continued.adopt = true;
            } else {
                last.finished_ms = Some(now_ms());
                last.cause = Some(format!("{ORPHANED}{INFRASTRUCTURE}"));
            }
        }
    }
    // Members of a gang share their attempts: the first one's say how many failed.
    for a in records.first().map_or(&[][..], |r| &r.attempts[..]) {
        match &a.cause {
            Some(c) if c.ends_with(INFRASTRUCTURE) => continued.lost += 1,
            Some(_) => continued.failed += 1,
            None => {}
        }
    }
    continued
}

/// The outputs of the same tasks in `origin` if every one succeeded there on the same input,
/// recorded in this run as reused; a gang is reused whole or run again. Content addressing
/// makes "same input" exact.
async fn reuse(
    run: &Run<'_>,
    origin: &str,
    decl: &'static StepDecl,
    ids: &[String],
    input: &str,
) -> Result<Option<Vec<String>>, Error> {
    let ds = &run.ctx.datastore;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(prev) = ds
            .get_record::<TaskRecord>(&Key::Task(TaskPath::new(origin, decl.name, id)))
            .await?
        else {
            return Ok(None);
        };
        match (&prev.status, &prev.output) {
            (Status::Succeeded, Some(_)) if prev.input == input => found.push(prev),
            _ => return Ok(None),
        }
    }
    let mut outputs = Vec::with_capacity(found.len());
    for prev in found {
        // The run that really ran it, which holds its logs, even across several resumes.
        let record = TaskRecord {
            reused_from: prev
                .reused_from
                .clone()
                .or_else(|| Some(origin.to_string())),
            ..prev
        };
        let key = Key::Task(TaskPath::new(&run.ctx.run_id, decl.name, &record.task_id));
        ds.put_record(&key, &record).await?;
        run.ctx.progress.started(decl.name);
        run.ctx.progress.ended(decl.name, true, true);
        if run.ctx.echo {
            run.ctx.progress.println(
                &format!(
                    "[{}/{}] reused from run {origin}",
                    decl.name, record.task_id
                ),
                true,
            );
        }
        outputs.push(record.output.clone().expect("checked above"));
    }
    Ok(Some(outputs))
}

/// Runs work (step, task or gang, input) concurrently within the worker limit; the first
/// failure ends the stage (the other processes are killed as their futures drop). The outputs
/// come in order, a gang's members in rank order.
async fn run_all(
    run: &Run<'_>,
    slots: &Semaphore,
    prior: &Prior,
    work: Vec<(&'static StepDecl, Work, String)>,
) -> Result<Vec<String>, Error> {
    let mut outputs = vec![Vec::new(); work.len()];
    let (cancel, cancelled) = watch::channel(false);
    let mut running: FuturesUnordered<_> = work
        .into_iter()
        .enumerate()
        .map(|(i, (decl, w, input))| {
            let cancelled = cancelled.clone();
            async move {
                (
                    i,
                    run_task(run, slots, prior, cancelled, decl, w, input).await,
                )
            }
        })
        .collect();
    // The first failure cancels the rest of the stage; they end and record why before it returns.
    let mut first = None;
    while let Some((i, result)) = running.next().await {
        match result {
            Ok(out) => outputs[i] = out,
            Err(Error::Cancelled) => {}
            Err(e) => {
                let _ = cancel.send(true);
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(outputs.into_iter().flatten().collect()),
    }
}

async fn payloads(ds: &Datastore, ids: &[String]) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(ds.get_artifact(id).await?.to_vec());
    }
    Ok(out)
}

/// Runs the flow to its end; returns the last step's output artifact.
pub async fn run(flow: &Flow, run: &Run<'_>, options: &Options) -> Result<String, Error> {
    let ds = &run.ctx.datastore;
    let run_key = Key::Run(run.ctx.run_id.clone());
    let earlier = match options.prior {
        Prior::Recover => ds.get_record::<RunRecord>(&run_key).await?,
        _ => None,
    };
    let mut record = RunRecord {
        flow: flow.name().into(),
        run_id: run.ctx.run_id.clone(),
        status: Status::Running,
        started_ms: earlier.map_or_else(now_ms, |r| r.started_ms),
        finished_ms: None,
        cause: None,
        orchestrator_namespace: options.orchestrator_namespace.clone(),
    };
    ds.put_record(&run_key, &record).await?;
    let result = walk(flow, run, options).await;
    record.finished_ms = Some(now_ms());
    match &result {
        Ok(_) => record.status = Status::Succeeded,
        Err(e) => {
            record.status = match e {
                Error::Killed => Status::Killed,
                _ => Status::Failed,
            };
            record.cause = Some(report(e));
        }
    }
    ds.put_record(&run_key, &record).await?;
    result
}

async fn walk(flow: &Flow, run: &Run<'_>, options: &Options) -> Result<String, Error> {
    let ds = &run.ctx.datastore;
    let slots = Semaphore::new(options.max_workers.max(1));
    let first = options
        .start_input
        .clone()
        .unwrap_or_else(|| codec::encode(&()).expect("() encodes"));
    let mut unit = ds.put_artifact(first).await?;
    // A recovered run goes on with the parameters it started with, whatever these are.
    if options.prior == Prior::Recover
        && let Some(stage) = flow.stages().first()
        && let Some(start) = ds
            .get_record::<TaskRecord>(&Key::Task(TaskPath::new(
                &run.ctx.run_id,
                stage.steps[0].name,
                "0",
            )))
            .await?
    {
        unit = start.input;
    }
    let mut prev = Produced {
        outputs: vec![unit],
        branches: false,
    };
    for stage in flow.stages() {
        let step = stage.steps[0];
        let values = |message: String| Error::Values {
            step: step.name.into(),
            message,
        };
        let task = |id: String| Work::Task(id);
        let tasks: Vec<(&'static StepDecl, Work, String)> = match stage.kind {
            StageKind::Start | StageKind::Then => {
                vec![(step, task("0".into()), prev.outputs[0].clone())]
            }
            StageKind::Foreach => {
                let split = stage
                    .split
                    .ok_or_else(|| values("a foreach stage without a split".into()))?;
                let whole = ds.get_artifact(&prev.outputs[0]).await?;
                let items = split(&whole).map_err(|e| {
                    values(format!("cannot split the previous output into items: {e}"))
                })?;
                let mut tasks = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    tasks.push((step, task(i.to_string()), ds.put_artifact(item).await?));
                }
                tasks
            }
            StageKind::EachThen => prev
                .outputs
                .iter()
                .enumerate()
                .map(|(i, o)| (step, task(i.to_string()), o.clone()))
                .collect(),
            StageKind::Branch => stage
                .steps
                .iter()
                .map(|d| (*d, task("0".into()), prev.outputs[0].clone()))
                .collect(),
            StageKind::Parallel(n) => vec![(step, Work::Gang(n), prev.outputs[0].clone())],
            StageKind::Join => {
                let parts = payloads(ds, &prev.outputs).await?;
                let joined = if prev.branches {
                    codec::tuple(&parts)
                } else {
                    codec::join(&parts)
                };
                vec![(step, task("0".into()), ds.put_artifact(joined).await?)]
            }
        };
        for (decl, w, _) in &tasks {
            run.ctx.progress.planned(decl.name, w.ids().len() as u64);
        }
        let outputs = run_all(run, &slots, &options.prior, tasks).await?;
        prev = Produced {
            outputs,
            branches: stage.kind == StageKind::Branch,
        };
    }
    Ok(prev.outputs.into_iter().next().unwrap_or_default())
}

/// Records an interrupted run as failed (its tasks' processes are gone with their futures).
pub async fn mark_interrupted(ctx: &RunContext) -> Result<(), Error> {
    close(&ctx.datastore, &ctx.run_id, Status::Failed, INTERRUPTED).await
}

/// Records a run that `kubernetes kill` stopped as killed, if its orchestrator (stopped first)
/// left it running.
pub async fn record_killed(ds: &Datastore, run_id: &str) -> Result<(), Error> {
    match ds.get_record::<RunRecord>(&Key::Run(run_id.into())).await? {
        Some(r) if r.status == Status::Running => close(ds, run_id, Status::Killed, KILLED).await,
        _ => Ok(()),
    }
}

/// Ends the records of a run whose orchestrator is gone: the run and its running tasks, with
/// `status` and `cause`.
async fn close(ds: &Datastore, run_id: &str, status: Status, cause: &str) -> Result<(), Error> {
    let run_key = Key::Run(run_id.into());
    // Tasks that were running end with the run, and say so.
    for key in ds.list(&Prefix::Run(run_id.into())).await? {
        if !matches!(key, Key::Task(_)) {
            continue;
        }
        if let Some(mut task) = ds.get_record::<TaskRecord>(&key).await?
            && task.status == Status::Running
        {
            task.status = status;
            if let Some(last) = task.attempts.last_mut() {
                last.finished_ms.get_or_insert_with(now_ms);
                last.cause.get_or_insert_with(|| cause.into());
            }
            ds.put_record(&key, &task).await?;
        }
    }
    if let Some(mut record) = ds.get_record::<RunRecord>(&run_key).await? {
        record.status = status;
        record.finished_ms = Some(now_ms());
        record.cause = Some(cause.into());
        ds.put_record(&run_key, &record).await?;
    }
    Ok(())
}

/// A run id: milliseconds since the epoch, then this process's id, so ids sort by start time
/// and two runs started in the same millisecond differ.
pub fn new_run_id() -> String {
    format!("{}{:07}", now_ms(), std::process::id() % 10_000_000)
}

#[cfg(test)]
mod tests;
