//! Executors run one task attempt somewhere and report how it ended; the orchestrator never
//! knows where. `local` runs it as a child process of this binary, `kubernetes` as a Job whose
//! pod re-launches this binary, and [`Routed`] sends each step to the one it asked for.

pub mod kubernetes;
pub mod local;

use crate::datastore::{AttemptPod, AttemptResult, Datastore, Key, TaskPath};
use crate::progress::Progress;
use crate::report::report;
use futures::future::BoxFuture;
use kubestep_core::StepDecl;
use kubestep_core::invocation::TaskInvocation;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One attempt of one task.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// The step.
    pub step: &'static StepDecl,
    /// The task id within the step.
    pub task_id: String,
    /// The attempt, from 0.
    pub attempt: u32,
    /// The input artifact.
    pub input: String,
    /// `#[timeout]`, if any.
    pub timeout: Option<Duration>,
}

/// One attempt of a multi-node (`.parallel`) step: its members, tasks `0..size` of the step,
/// start together on one input and end together.
#[derive(Clone, Debug)]
pub struct GangSpec {
    /// The step.
    pub step: &'static StepDecl,
    /// How many members.
    pub size: u32,
    /// The attempt, from 0 (every member's).
    pub attempt: u32,
    /// The input artifact (every member's).
    pub input: String,
    /// `#[timeout]`, if any.
    pub timeout: Option<Duration>,
}

impl GangSpec {
    /// The task of the member of rank `rank`.
    pub fn member(&self, rank: u32) -> TaskSpec {
        TaskSpec {
            step: self.step,
            task_id: rank.to_string(),
            attempt: self.attempt,
            input: self.input.clone(),
            timeout: self.timeout,
        }
    }
}

/// How a gang attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GangEnded {
    /// `Succeeded` (with the control member's output) when every member succeeded; otherwise
    /// the failure or loss of the member that ended the gang, naming it.
    pub outcome: Outcome,
    /// Each member's end, by rank; a member stopped because another failed says so.
    pub members: Vec<Ended>,
}

impl GangEnded {
    /// A gang of `size` members that all failed for one `cause` (it never started, or was
    /// cancelled as a whole).
    pub fn failed(size: usize, cause: String) -> GangEnded {
        let ended: Ended = Outcome::Failed(cause).into();
        GangEnded {
            outcome: ended.outcome.clone(),
            members: vec![ended; size],
        }
    }
}

/// Runs a gang's members side by side, each through `member(task, stop)`: the first member
/// that does not succeed ends the gang, and `stop` turns true so the others end (each saves what
/// it has) before this returns.
pub async fn run_members<F, Fut>(gang: &GangSpec, member: F) -> GangEnded
where
    F: Fn(TaskSpec, tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Ended>,
{
    use futures::StreamExt;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running: futures::stream::FuturesUnordered<_> = (0..gang.size)
        .map(|rank| {
            let fut = member(gang.member(rank), stopped.clone());
            async move { (rank, fut.await) }
        })
        .collect();
    let mut ends: Vec<Option<Ended>> = vec![None; gang.size as usize];
    let mut first: Option<(u32, Outcome)> = None;
    while let Some((rank, mut ended)) = running.next().await {
        if !matches!(ended.outcome, Outcome::Succeeded(_)) {
            match &first {
                None => {
                    first = Some((rank, ended.outcome.clone()));
                    let _ = stop.send(true);
                }
                Some((by, _)) => {
                    ended.outcome = Outcome::Failed(stopped_by(*by));
                }
            }
        }
        ends[rank as usize] = Some(ended);
    }
    let members: Vec<Ended> = ends.into_iter().map(Option::unwrap_or_default).collect();
    let outcome = match first {
        None => members.first().map_or_else(
            || Outcome::Failed("a gang of no members".into()),
            |m| m.outcome.clone(),
        ),
        Some((rank, failure)) => {
            failure.map_cause(|c| format!("member {rank} of {}: {c}", gang.size))
        }
    };
    GangEnded { outcome, members }
}

/// Resolves once `stop` (a gang member's) turns true; never without one.
pub async fn stopped(stop: Option<&mut tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(s) => {
            let _ = s.wait_for(|v| *v).await;
        }
        None => std::future::pending().await,
    }
}

/// The cause recorded for a member stopped because member `by` failed.
pub fn stopped_by(by: u32) -> String {
    format!("stopped: member {by} of its gang failed first")
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It wrote this output artifact.
    Succeeded(String),
    /// It failed, for this reason (one line); `#[retry]` may try again.
    Failed(String),
    /// The platform lost it (evicted, preempted, node lost): retried without spending an
    /// attempt of `#[retry]`, a bounded number of times.
    Lost(String),
}

impl Outcome {
    /// The cause of a failure or loss.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Outcome::Succeeded(_) => None,
            Outcome::Failed(cause) | Outcome::Lost(cause) => Some(cause),
        }
    }

    /// The same outcome with its cause (of a failure or loss) rewritten by `f`.
    pub fn map_cause(self, f: impl FnOnce(String) -> String) -> Outcome {
        match self {
            Outcome::Succeeded(output) => Outcome::Succeeded(output),
            Outcome::Failed(cause) => Outcome::Failed(f(cause)),
            Outcome::Lost(cause) => Outcome::Lost(f(cause)),
        }
    }
}

/// How an attempt ended, and the pod it ran in when it ran on Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Its outcome.
    pub outcome: Outcome,
    /// Its pod, once it had one.
    pub pod: Option<AttemptPod>,
}

impl Default for Ended {
    /// A member that never reported an end (it cannot happen: every member future ends).
    fn default() -> Ended {
        Outcome::Failed("it never ended".into()).into()
    }
}

impl From<Outcome> for Ended {
    fn from(outcome: Outcome) -> Ended {
        Ended { outcome, pod: None }
    }
}

/// What every executor of a run shares: where outputs and logs go, and where output is shown.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// Where tasks read and write.
    pub datastore: Datastore,
    /// The run.
    pub run_id: String,
    /// Print task output live.
    pub echo: bool,
    /// Where live output and progress go.
    pub progress: Arc<Progress>,
}

impl RunContext {
    /// How the attempt's process is told what to run (its `step` command line).
    pub fn invocation(&self, task: &TaskSpec) -> TaskInvocation {
        TaskInvocation {
            step: task.step.name.into(),
            run_id: self.run_id.clone(),
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            input: task.input.clone(),
            store: self.datastore.kind(),
            store_root: self.datastore.root().into(),
        }
    }

    /// Prints a task's line with its `[step/task]` prefix, when output is shown.
    pub fn say(&self, task: &TaskSpec, line: &str) {
        if self.echo {
            self.progress.println(
                &format!("[{}/{}] {line}", task.step.name, task.task_id),
                true,
            );
        }
    }
}

impl RunContext {
    fn task_path(&self, task: &TaskSpec) -> TaskPath {
        TaskPath::new(&self.run_id, task.step.name, &task.task_id)
    }

    /// Saves an attempt's output (stdout and stderr) beside its records.
    pub async fn save_log(&self, task: &TaskSpec, log: Vec<u8>) {
        let key = Key::AttemptLog(self.task_path(task), task.attempt);
        if let Err(e) = self.datastore.put_bytes(&key, log).await {
            self.say(
                task,
                &format!("kubestep: cannot save this task's log: {}", report(&e)),
            );
        }
    }

    /// The outcome of an attempt whose process exited 0: the output it recorded.
    pub async fn attempt_output(&self, task: &TaskSpec) -> Outcome {
        match self.attempt_result(task).await {
            Ok(Some(r)) => Outcome::Succeeded(r.output),
            Ok(None) => Outcome::Failed("the task exited 0 without writing its output".into()),
            Err(e) => Outcome::Failed(report(&e)),
        }
    }

    /// What the attempt recorded when it succeeded, if it did.
    pub async fn attempt_result(
        &self,
        task: &TaskSpec,
    ) -> Result<Option<AttemptResult>, crate::datastore::Error> {
        let key = Key::AttemptResult(self.task_path(task), task.attempt);
        self.datastore.get_record::<AttemptResult>(&key).await
    }
}

/// The cause of a task stopped by its step's `#[timeout]` of `seconds`.
pub fn timed_out(step: &str, seconds: u64) -> String {
    format!("timed out after {seconds} s (#[timeout] of step `{step}`)")
}

/// The last line a task printed that is not blank: what a failure's cause quotes.
pub fn last_line(log: &[u8]) -> Option<String> {
    String::from_utf8_lossy(log)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

/// Runs task attempts somewhere. Dropping the returned future stops the attempt (its process
/// or its Job is removed).
pub trait Executor: Send + Sync {
    /// Runs one attempt to its end.
    fn run<'a>(&'a self, task: &'a TaskSpec) -> BoxFuture<'a, Ended>;

    /// Runs one attempt of a multi-node step's gang to its end: every member starts, told its
    /// rank and the control member's address (`kubestep_core::parallel`); the first member that
    /// fails stops the others.
    fn run_gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded>;

    /// Whether an attempt of `step` outlives the orchestrator that launched it, so a recovered
    /// run takes it over by running the same attempt again (a Kubernetes Job, adopted by its
    /// name) rather than launching another beside it.
    fn adopts(&self, step: &str) -> bool {
        let _ = step;
        false
    }
}

/// Sends each step to its own executor, and every other step to a default one.
pub struct Routed {
    /// For steps not named in `steps`.
    pub default: Arc<dyn Executor>,
    /// Step name -> its executor.
    pub steps: HashMap<&'static str, Arc<dyn Executor>>,
}

impl Executor for Routed {
    fn run<'a>(&'a self, task: &'a TaskSpec) -> BoxFuture<'a, Ended> {
        self.steps
            .get(task.step.name)
            .unwrap_or(&self.default)
            .run(task)
    }

    fn run_gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
        self.steps
            .get(gang.step.name)
            .unwrap_or(&self.default)
            .run_gang(gang)
    }

    fn adopts(&self, step: &str) -> bool {
        self.steps.get(step).unwrap_or(&self.default).adopts(step)
    }
}
