//! The orchestrator's rules (retries, lost attempts, cancellation, resume, interrupts) against
//! a scripted executor: each attempt's outcome is written in the test, so a run takes
//! milliseconds and every path is reached on purpose.

use super::*;
use crate::datastore::{AttemptPod, Datastore};
use crate::executor::{Ended, GangEnded, GangSpec};
use crate::flow::{Stage, StageKind};
use crate::progress::Progress;
use crate::step::TaskError;
use bytes::Bytes;
use futures::future::BoxFuture;
use kubestep_core::{Arg, Decorator, DecoratorKind, Value};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// What one scripted attempt does.
enum Act {
    /// Succeeds with this value as its output.
    Ok(u64),
    /// Fails with this cause.
    Fail(&'static str),
    /// Is lost to the platform with this cause.
    Lose(&'static str),
    /// Is lost because `kubernetes kill` marked run `r` and deleted its pod.
    Killed,
    /// Never ends (until dropped).
    Hang,
    /// Waits for the notification, then acts.
    After(Arc<Notify>, Box<Act>),
    /// Notifies, then acts.
    Then(Arc<Notify>, Box<Act>),
    /// Acts, then notifies (before its outcome reaches the orchestrator).
    Done(Arc<Notify>, Box<Act>),
}

/// Runs attempts by their script; remembers every call and every attempt dropped unfinished.
struct Scripted {
    ds: Datastore,
    script: Mutex<HashMap<(String, String), VecDeque<Act>>>,
    calls: Mutex<Vec<TaskSpec>>,
    dropped: Arc<Mutex<Vec<(String, String, u32)>>>,
    /// Whether its attempts outlive their orchestrator (as Kubernetes Jobs do).
    adopts: bool,
}

/// Records an attempt dropped before it ended (how the orchestrator stops one).
struct Armed {
    dropped: Arc<Mutex<Vec<(String, String, u32)>>>,
    id: Option<(String, String, u32)>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.dropped.lock().unwrap().push(id);
        }
    }
}

impl Scripted {
    fn new(ds: &Datastore) -> Scripted {
        Scripted {
            ds: ds.clone(),
            script: Mutex::default(),
            calls: Mutex::default(),
            dropped: Arc::default(),
            adopts: false,
        }
    }

    /// Its attempts outlive their orchestrator, to be adopted by a recovered run.
    fn adopting(self) -> Scripted {
        Scripted {
            adopts: true,
            ..self
        }
    }

    /// The attempts of `step`'s task `task`, in order.
    fn script(self, step: &str, task: &str, acts: Vec<Act>) -> Scripted {
        self.script
            .lock()
            .unwrap()
            .insert((step.into(), task.into()), acts.into());
        self
    }

    /// The attempts made of `step`, in order, as (task, attempt).
    fn calls(&self, step: &str) -> Vec<(String, u32)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|t| t.step.name == step)
            .map(|t| (t.task_id.clone(), t.attempt))
            .collect()
    }

    fn play(&self, act: Act) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match act {
                Act::Ok(v) => {
                    let bytes = codec::encode(&v).unwrap();
                    Outcome::Succeeded(self.ds.put_artifact(bytes).await.unwrap())
                }
                Act::Fail(cause) => Outcome::Failed(cause.into()),
                Act::Lose(cause) => Outcome::Lost(cause.into()),
                Act::Killed => {
                    let mark = KillMark { killed_ms: 1 };
                    self.ds
                        .put_record(&Key::Killed("r".into()), &mark)
                        .await
                        .unwrap();
                    Outcome::Lost("pod deleted".into())
                }
                Act::Hang => std::future::pending().await,
                Act::After(n, act) => {
                    n.notified().await;
                    self.play(*act).await
                }
                Act::Then(n, act) => {
                    n.notify_one();
                    self.play(*act).await
                }
                Act::Done(n, act) => {
                    let outcome = self.play(*act).await;
                    n.notify_one();
                    outcome
                }
            }
        })
    }
}

impl Executor for Scripted {
    fn run<'a>(&'a self, task: &'a TaskSpec) -> BoxFuture<'a, Ended> {
        self.calls.lock().unwrap().push(task.clone());
        let id = (task.step.name.to_string(), task.task_id.clone());
        let act = self
            .script
            .lock()
            .unwrap()
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("unscripted attempt {}/{} #{}", id.0, id.1, task.attempt));
        Box::pin(async move {
            let mut armed = Armed {
                dropped: self.dropped.clone(),
                id: Some((id.0, id.1, task.attempt)),
            };
            let outcome = self.play(act).await;
            armed.id = None;
            // As a Kubernetes attempt says where it ran.
            let pod = AttemptPod {
                name: format!("{}-{}-{}", task.step.name, task.task_id, task.attempt),
                namespace: "ns".into(),
                uid: "uid".into(),
                node: Some("node-a".into()),
                resources: None,
                marks: Vec::new(),
            };
            Ended {
                outcome,
                pod: Some(pod),
            }
        })
    }

    fn run_gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
        self.gang(gang)
    }

    fn adopts(&self, _step: &str) -> bool {
        self.adopts
    }
}

impl Scripted {
    /// A gang as the executors run one: members side by side, the first failure stopping the
    /// rest (a stopped member's script step is dropped unfinished, as a deleted pod is).
    fn gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
        Box::pin(crate::executor::run_members(
            gang,
            move |t, mut stop| async move {
                tokio::select! {
                    ended = self.run(&t) => ended,
                    _ = stop.wait_for(|v| *v) => Outcome::Failed("stopped".into()).into(),
                }
            },
        ))
    }
}

fn never(_: Bytes) -> Pin<Box<dyn Future<Output = Result<Vec<Bytes>, TaskError>> + Send>> {
    unreachable!("a scripted executor runs no step")
}

fn decorator(kind: DecoratorKind, args: &[(&'static str, Value)]) -> Decorator {
    Decorator {
        kind,
        args: Cow::Owned(
            args.iter()
                .map(|(k, v)| Arg {
                    key: Cow::Borrowed(k),
                    value: v.clone(),
                })
                .collect(),
        ),
    }
}

/// `#[retry(times = n, minutes_between_retries = minutes)]`.
fn retry(times: i64, minutes: i64) -> Decorator {
    decorator(
        DecoratorKind::Retry,
        &[
            ("times", Value::Int(times)),
            ("minutes_between_retries", Value::Int(minutes)),
        ],
    )
}

fn step(name: &'static str, decorators: Vec<Decorator>) -> &'static StepDecl {
    Box::leak(Box::new(StepDecl {
        name,
        doc: "",
        input: "()",
        output: "u64",
        is_async: false,
        decorators: Box::leak(decorators.into_boxed_slice()),
    }))
}

fn stage(kind: StageKind, steps: &[&'static StepDecl]) -> Stage {
    Stage {
        kind,
        steps: steps.to_vec(),
        runners: vec![never; steps.len()],
        split: (kind == StageKind::Foreach).then_some(codec::split::<u64> as crate::step::SplitFn),
    }
}

/// A local datastore in a fresh directory of its own.
fn store(name: &str) -> Datastore {
    let dir = std::env::temp_dir().join(format!(
        "kubestep-orchestrator-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Datastore::local(&dir, "t").unwrap()
}

fn context(ds: &Datastore, run_id: &str) -> RunContext {
    RunContext {
        datastore: ds.clone(),
        run_id: run_id.into(),
        echo: false,
        progress: Arc::new(Progress::new(true)),
    }
}

fn options() -> Options {
    Options {
        max_workers: 4,
        prior: Prior::Nothing,
        start_input: None,
        orchestrator_namespace: None,
    }
}

async fn go(
    flow: &Flow,
    executor: &Scripted,
    run_id: &str,
    options: &Options,
) -> Result<u64, Error> {
    let ctx = context(&executor.ds, run_id);
    let id = run(
        flow,
        &Run {
            ctx: &ctx,
            executor,
        },
        options,
    )
    .await?;
    let bytes = executor.ds.get_artifact(&id).await.unwrap();
    Ok(codec::decode(&bytes).unwrap())
}

async fn task(ds: &Datastore, run: &str, step: &str, id: &str) -> TaskRecord {
    ds.get_record(&Key::Task(TaskPath::new(run, step, id)))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no record of {step}/{id} in run {run}"))
}

async fn run_record(ds: &Datastore, run: &str) -> RunRecord {
    ds.get_record(&Key::Run(run.into())).await.unwrap().unwrap()
}

fn causes(t: &TaskRecord) -> Vec<Option<String>> {
    t.attempts.iter().map(|a| a.cause.clone()).collect()
}

/// `start(s) -> a`.
fn two_steps(a: &'static StepDecl) -> Flow {
    let s = step("s", vec![]);
    Flow::from_stages(
        "t",
        vec![stage(StageKind::Start, &[s]), stage(StageKind::Then, &[a])],
    )
}

#[tokio::test]
async fn a_retry_succeeds_on_the_second_attempt() {
    let ds = store("retry-ok");
    let flow = two_steps(step("a", vec![retry(2, 0)]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", vec![Act::Fail("boom"), Act::Ok(7)]);
    assert_eq!(go(&flow, &ex, "r", &options()).await.unwrap(), 7);
    assert_eq!(ex.calls("a"), [("0".into(), 0), ("0".into(), 1)]);
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.status, Status::Succeeded);
    assert_eq!(causes(&a), [Some("boom".into()), None]);
    assert!(a.attempts.iter().all(|x| x.finished_ms.is_some()));
    assert_eq!(run_record(&ds, "r").await.status, Status::Succeeded);
}

#[tokio::test]
async fn retries_run_out_after_times_plus_one_attempts() {
    let ds = store("retry-out");
    let flow = two_steps(step("a", vec![retry(2, 0)]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "a",
            "0",
            vec![Act::Fail("1"), Act::Fail("2"), Act::Fail("3")],
        );
    let e = go(&flow, &ex, "r", &options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { step, task, attempts: 3, cause } if step == "a" && task == "0" && cause == "3"),
        "{e:?}"
    );
    assert_eq!(task(&ds, "r", "a", "0").await.status, Status::Failed);
    let run = run_record(&ds, "r").await;
    assert_eq!(run.status, Status::Failed);
    assert_eq!(
        run.cause.as_deref(),
        Some("step `a` task 0 failed after 3 attempt(s): 3")
    );
}

#[tokio::test]
async fn no_retry_is_one_attempt_and_a_bare_retry_is_three_more() {
    let ds = store("retry-default");
    let flow = two_steps(step("a", vec![]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", vec![Act::Fail("x")]);
    go(&flow, &ex, "r1", &options()).await.unwrap_err();
    assert_eq!(ex.calls("a").len(), 1);

    let bare = decorator(
        DecoratorKind::Retry,
        &[("minutes_between_retries", Value::Int(0))],
    );
    let flow = two_steps(step("a", vec![bare]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", (0..4).map(|_| Act::Fail("x")).collect());
    go(&flow, &ex, "r2", &options()).await.unwrap_err();
    assert_eq!(ex.calls("a").len(), 4);
}

#[tokio::test]
async fn a_lost_attempt_does_not_spend_a_retry() {
    let ds = store("lost-free");
    let flow = two_steps(step("a", vec![retry(1, 0)]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "a",
            "0",
            vec![
                Act::Lose("evicted"),
                Act::Fail("x"),
                Act::Lose("evicted"),
                Act::Ok(5),
            ],
        );
    assert_eq!(go(&flow, &ex, "r", &options()).await.unwrap(), 5);
    let attempts: Vec<u32> = ex.calls("a").into_iter().map(|(_, n)| n).collect();
    assert_eq!(attempts, [0, 1, 2, 3]);
    let pods: Vec<String> = task(&ds, "r", "a", "0")
        .await
        .attempts
        .iter()
        .map(|a| a.pod.as_ref().map(|p| p.name.clone()).unwrap_or_default())
        .collect();
    assert_eq!(
        pods,
        ["a-0-0", "a-0-1", "a-0-2", "a-0-3"],
        "each attempt's pod"
    );
    assert_eq!(
        causes(&task(&ds, "r", "a", "0").await),
        [
            Some("evicted (infrastructure)".into()),
            Some("x".into()),
            Some("evicted (infrastructure)".into()),
            None
        ]
    );
}

/// `kubernetes kill` deletes the pods, which the executor reports lost: the mark keeps the
/// orchestrator from launching them again, and the run ends killed.
#[tokio::test]
async fn a_killed_run_launches_nothing_more() {
    let ds = store("killed");
    let flow = two_steps(step("a", vec![retry(2, 0)]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", vec![Act::Killed]);
    let e = go(&flow, &ex, "r", &options()).await.unwrap_err();
    assert_eq!(e.to_string(), "killed by `kubernetes kill`");
    assert_eq!(ex.calls("a").len(), 1, "not launched again");
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.status, Status::Failed);
    assert_eq!(run_record(&ds, "r").await.status, Status::Killed);
}

#[tokio::test]
async fn lost_attempts_have_a_budget_of_their_own() {
    let ds = store("lost-limit");
    let flow = two_steps(step("a", vec![]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "a",
            "0",
            (0..=LOST_RETRIES).map(|_| Act::Lose("gone")).collect(),
        );
    let e = go(&flow, &ex, "r1", &options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { attempts, cause, .. } if *attempts == LOST_RETRIES + 1 && cause == "gone (infrastructure)"),
        "{e:?}"
    );

    let mut acts: Vec<Act> = (0..LOST_RETRIES).map(|_| Act::Lose("gone")).collect();
    acts.push(Act::Ok(1));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", acts);
    assert_eq!(go(&flow, &ex, "r2", &options()).await.unwrap(), 1);
}

/// `start(s) -> (b1 | b2) -> j`.
fn branches(b1: &'static StepDecl, b2: &'static StepDecl) -> Flow {
    Flow::from_stages(
        "t",
        vec![
            stage(StageKind::Start, &[step("s", vec![])]),
            stage(StageKind::Branch, &[b1, b2]),
            stage(StageKind::Join, &[step("j", vec![])]),
        ],
    )
}

#[tokio::test]
async fn a_failing_sibling_stops_the_others_without_retrying_them() {
    let ds = store("cancel");
    let flow = branches(step("b1", vec![]), step("b2", vec![retry(3, 0)]));
    let started = Arc::new(Notify::new());
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "b1",
            "0",
            vec![Act::After(started.clone(), Box::new(Act::Fail("bad")))],
        )
        .script("b2", "0", vec![Act::Then(started, Box::new(Act::Hang))]);
    let e = go(&flow, &ex, "r", &options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { step, .. } if step == "b1"),
        "{e:?}"
    );
    // b2's attempt was stopped (its future dropped), once, and never retried.
    assert_eq!(
        *ex.dropped.lock().unwrap(),
        [("b2".to_string(), "0".to_string(), 0)]
    );
    assert_eq!(ex.calls("b2").len(), 1);
    let b2 = task(&ds, "r", "b2", "0").await;
    assert_eq!(b2.status, Status::Failed);
    assert_eq!(causes(&b2), [Some(CANCELLED.into())]);
    // The join never ran: an attempt of `j` would have panicked, unscripted.
    assert!(ex.calls("j").is_empty());
}

#[tokio::test]
async fn a_task_stopped_during_its_retry_pause_is_recorded_as_failed() {
    let ds = store("cancel-pause");
    // b1 fails, then pauses 5 minutes; b2's failure stops it during the pause.
    let flow = branches(step("b1", vec![retry(1, 5)]), step("b2", vec![]));
    let failed = Arc::new(Notify::new());
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "b1",
            "0",
            vec![Act::Then(failed.clone(), Box::new(Act::Fail("first")))],
        )
        .script(
            "b2",
            "0",
            vec![Act::After(failed, Box::new(Act::Fail("bad")))],
        );
    let e = tokio::time::timeout(Duration::from_secs(30), go(&flow, &ex, "r", &options()))
        .await
        .expect("the pause is cut short")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Task { step, .. } if step == "b2"),
        "{e:?}"
    );
    assert_eq!(ex.calls("b1").len(), 1);
    let b1 = task(&ds, "r", "b1", "0").await;
    assert_eq!(b1.status, Status::Failed);
    assert_eq!(causes(&b1), [Some("first".into())]);
    assert!(b1.attempts[0].finished_ms.is_some());
}

#[tokio::test]
async fn resume_reuses_every_task_that_succeeded_on_the_same_input() {
    let ds = store("resume");
    let (a, c) = (step("a", vec![]), step("c", vec![]));
    let flow = Flow::from_stages(
        "t",
        vec![
            stage(StageKind::Start, &[step("s", vec![])]),
            stage(StageKind::Then, &[a]),
            stage(StageKind::Then, &[c]),
        ],
    );
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", vec![Act::Ok(2)])
        .script("c", "0", vec![Act::Fail("x")]);
    go(&flow, &ex, "r1", &options()).await.unwrap_err();

    let resume = |from: &str| Options {
        prior: Prior::Resume(from.into()),
        ..options()
    };
    // Only `c` is scripted: an attempt of `s` or `a` would panic.
    let ex = Scripted::new(&ds).script("c", "0", vec![Act::Ok(3)]);
    assert_eq!(go(&flow, &ex, "r2", &resume("r1")).await.unwrap(), 3);
    for name in ["s", "a"] {
        let t = task(&ds, "r2", name, "0").await;
        assert_eq!(t.status, Status::Succeeded);
        assert_eq!(t.reused_from.as_deref(), Some("r1"));
    }
    // A resume of the resume still names the run that did the work.
    let ex = Scripted::new(&ds);
    assert_eq!(go(&flow, &ex, "r3", &resume("r2")).await.unwrap(), 3);
    assert_eq!(
        task(&ds, "r3", "a", "0").await.reused_from.as_deref(),
        Some("r1")
    );
}

#[tokio::test]
async fn resume_reruns_only_the_failed_items_of_a_foreach() {
    let ds = store("resume-foreach");
    let s = step("s", vec![]);
    let flow = Flow::from_stages(
        "t",
        vec![
            stage(StageKind::Start, &[s]),
            stage(StageKind::Foreach, &[step("w", vec![])]),
            stage(StageKind::Join, &[step("j", vec![])]),
        ],
    );
    // The start step's output is the list the foreach splits.
    let list = codec::encode(&vec![1u64, 2, 3]).unwrap();
    let list_id = ds.put_artifact(list).await.unwrap();
    struct Listed(Scripted, String);
    impl Executor for Listed {
        fn run<'a>(&'a self, t: &'a TaskSpec) -> BoxFuture<'a, Ended> {
            if t.step.name == "s" {
                let id = self.1.clone();
                return Box::pin(async move { Outcome::Succeeded(id).into() });
            }
            self.0.run(t)
        }

        fn run_gang<'a>(&'a self, g: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
            self.0.run_gang(g)
        }
    }
    let run_with = |ex: Scripted, run_id: &'static str, options: Options| {
        let ds = ds.clone();
        let list_id = list_id.clone();
        let flow = flow.clone();
        async move {
            let ctx = context(&ds, run_id);
            let listed = Listed(ex, list_id);
            let r = run(
                &flow,
                &Run {
                    ctx: &ctx,
                    executor: &listed,
                },
                &options,
            )
            .await
            .map(|_| ());
            (r, listed.0)
        }
    };
    // Item 1 fails once the others are done, so the failure stops nothing.
    let (done0, done2) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let after_both = Act::After(
        done0.clone(),
        Box::new(Act::After(done2.clone(), Box::new(Act::Fail("x")))),
    );
    let ex = Scripted::new(&ds)
        .script("w", "0", vec![Act::Done(done0, Box::new(Act::Ok(10)))])
        .script("w", "1", vec![after_both])
        .script("w", "2", vec![Act::Done(done2, Box::new(Act::Ok(30)))]);
    let (r, _) = run_with(ex, "r1", options()).await;
    r.unwrap_err();
    let ex = Scripted::new(&ds)
        .script("w", "1", vec![Act::Ok(20)])
        .script("j", "0", vec![Act::Ok(60)]);
    let resume = Options {
        prior: Prior::Resume("r1".into()),
        ..options()
    };
    let (r, ex) = run_with(ex, "r2", resume).await;
    r.unwrap();
    assert_eq!(ex.calls("w"), [("1".into(), 0)]);
    // The join's input is the three items' outputs, in order.
    let join_input = {
        let calls = ex.calls.lock().unwrap();
        calls
            .iter()
            .find(|t| t.step.name == "j")
            .unwrap()
            .input
            .clone()
    };
    let parts: Vec<Vec<u8>> = [10u64, 20, 30]
        .iter()
        .map(|v| codec::encode(v).unwrap())
        .collect();
    let joined = ds.get_artifact(&join_input).await.unwrap();
    assert_eq!(joined.as_ref(), codec::join(&parts).as_slice());
}

#[tokio::test]
async fn the_timeout_attempt_and_input_reach_the_executor() {
    let ds = store("spec");
    let timeout = decorator(
        DecoratorKind::Timeout,
        &[("minutes", Value::Int(1)), ("seconds", Value::Int(30))],
    );
    let flow = two_steps(step("a", vec![retry(1, 0), timeout]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("a", "0", vec![Act::Fail("x"), Act::Ok(2)]);
    go(&flow, &ex, "r", &options()).await.unwrap();
    let s_out = task(&ds, "r", "s", "0").await.output.unwrap();
    let calls = ex.calls.lock().unwrap();
    for t in calls.iter() {
        if t.step.name == "s" {
            assert_eq!(t.timeout, None);
        } else {
            assert_eq!(t.timeout, Some(Duration::from_secs(90)));
            assert_eq!(t.input, s_out);
        }
    }
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn an_interrupted_run_drops_its_attempts_and_says_so_in_its_records() {
    let ds = store("interrupt");
    let flow = two_steps(step("a", vec![]));
    let running = Arc::new(Notify::new());
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script(
            "a",
            "0",
            vec![Act::Then(running.clone(), Box::new(Act::Hang))],
        );
    let opts = options();
    tokio::select! {
        _ = go(&flow, &ex, "r", &opts) => panic!("a hanging attempt ended"),
        () = running.notified() => {}
    }
    assert_eq!(
        *ex.dropped.lock().unwrap(),
        [("a".to_string(), "0".to_string(), 0)]
    );
    assert_eq!(task(&ds, "r", "a", "0").await.status, Status::Running);
    mark_interrupted(&context(&ds, "r")).await.unwrap();
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.status, Status::Failed);
    assert_eq!(causes(&a), [Some(INTERRUPTED.into())]);
    let run = run_record(&ds, "r").await;
    assert_eq!(
        (run.status, run.cause.as_deref()),
        (Status::Failed, Some(INTERRUPTED))
    );
}

#[tokio::test]
async fn a_step_whose_decorators_break_a_rule_fails_instead_of_losing_its_policy() {
    let ds = store("bad-spec");
    let bad = decorator(DecoratorKind::Retry, &[("times", Value::Int(-1))]);
    let flow = two_steps(step("a", vec![bad]));
    assert!(
        flow.problems().iter().any(|p| p.contains("step `a`")),
        "{:?}",
        flow.problems()
    );
    let ex = Scripted::new(&ds).script("s", "0", vec![Act::Ok(1)]);
    let e = go(&flow, &ex, "r", &options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Decorators { step, .. } if step == "a"),
        "{e:?}"
    );
    assert!(ex.calls("a").is_empty());
}

#[tokio::test]
async fn run_one_applies_the_same_policy() {
    let ds = store("run-one");
    let a = step("a", vec![retry(1, 0)]);
    let ex = Scripted::new(&ds).script(
        "a",
        "0",
        vec![Act::Lose("gone"), Act::Fail("x"), Act::Ok(1)],
    );
    let ctx = context(&ds, "r");
    let input = ds.put_artifact(codec::encode(&()).unwrap()).await.unwrap();
    let run = Run {
        ctx: &ctx,
        executor: &ex,
    };
    run_one(&run, a, "0".into(), input).await.unwrap();
    assert_eq!(task(&ds, "r", "a", "0").await.attempts.len(), 3);
}

/// `start(s) -> parallel(g, 3) -> join(j)`: j's scripted outputs stand for the join.
fn gang_flow(g: &'static StepDecl) -> Flow {
    Flow::from_stages(
        "t",
        vec![
            stage(StageKind::Start, &[step("s", vec![])]),
            stage(StageKind::Parallel(3), &[g]),
            stage(StageKind::Join, &[step("j", vec![])]),
        ],
    )
}

#[tokio::test]
async fn a_failing_member_fails_its_gang_and_a_retry_relaunches_the_whole_gang() {
    let ds = store("gang-retry");
    let flow = gang_flow(step("g", vec![retry(1, 0)]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("g", "0", vec![Act::Hang, Act::Ok(10)])
        .script("g", "1", vec![Act::Hang, Act::Ok(11)])
        .script("g", "2", vec![Act::Fail("exit code 3"), Act::Ok(12)])
        .script("j", "0", vec![Act::Ok(33)]);
    assert_eq!(go(&flow, &ex, "r", &options()).await.unwrap(), 33);
    let mut calls = ex.calls("g");
    calls.sort_by_key(|(id, a)| (*a, id.clone()));
    let all = |a| (0..3).map(move |i| (i.to_string(), a));
    assert_eq!(calls, all(0).chain(all(1)).collect::<Vec<_>>());
    // The members that were still running were stopped, not left running.
    let mut dropped = ex.dropped.lock().unwrap().clone();
    dropped.sort();
    assert_eq!(
        dropped,
        [("g".into(), "0".into(), 0), ("g".into(), "1".into(), 0)]
    );
    let stopped = crate::executor::stopped_by(2);
    for (id, cause) in [
        ("0", &stopped),
        ("1", &stopped),
        ("2", &"exit code 3".to_string()),
    ] {
        let t = task(&ds, "r", "g", id).await;
        assert_eq!(t.status, Status::Succeeded, "{id}");
        assert_eq!(causes(&t), [Some(cause.clone()), None], "{id}");
    }
    // The join got every member's output, in rank order.
    let j = task(&ds, "r", "j", "0").await;
    let joined: Vec<u64> = codec::decode(&ds.get_artifact(&j.input).await.unwrap()).unwrap();
    assert_eq!(joined, [10, 11, 12]);
}

#[tokio::test]
async fn a_gang_that_runs_out_of_retries_names_the_member_and_a_lost_member_costs_no_retry() {
    let ds = store("gang-out");
    let flow = gang_flow(step("g", vec![]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("g", "0", vec![Act::Hang, Act::Fail("boom")])
        .script("g", "1", vec![Act::Lose("node lost"), Act::Hang])
        .script("g", "2", vec![Act::Hang, Act::Hang]);
    let e = go(&flow, &ex, "r", &options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { step, task, attempts: 2, cause }
            if step == "g" && task == "0-2" && cause == "member 0 of 3: boom"),
        "{e:?}"
    );
    let t = task(&ds, "r", "g", "1").await;
    assert_eq!(t.status, Status::Failed);
    assert_eq!(
        causes(&t),
        [
            Some("node lost".into()),
            Some(crate::executor::stopped_by(0))
        ]
    );
}

#[tokio::test]
async fn resume_reuses_a_gang_only_whole() {
    let ds = store("gang-resume");
    let flow = gang_flow(step("g", vec![]));
    let ex = Scripted::new(&ds)
        .script("s", "0", vec![Act::Ok(1)])
        .script("g", "0", vec![Act::Ok(10)])
        .script("g", "1", vec![Act::Ok(11)])
        .script("g", "2", vec![Act::Ok(12)])
        .script("j", "0", vec![Act::Fail("later")]);
    go(&flow, &ex, "r1", &options()).await.unwrap_err();
    let resume = Options {
        prior: Prior::Resume("r1".into()),
        ..options()
    };
    let again = Scripted::new(&ds).script("j", "0", vec![Act::Ok(5)]);
    assert_eq!(go(&flow, &again, "r2", &resume).await.unwrap(), 5);
    assert!(again.calls("g").is_empty());
    // One member not reusable: the whole gang runs again.
    let key = Key::Task(TaskPath::new("r1", "g", "1"));
    let mut member = task(&ds, "r1", "g", "1").await;
    member.status = Status::Failed;
    ds.put_record(&key, &member).await.unwrap();
    let partial = Scripted::new(&ds)
        .script("g", "0", vec![Act::Ok(20)])
        .script("g", "1", vec![Act::Ok(21)])
        .script("g", "2", vec![Act::Ok(22)])
        .script("j", "0", vec![Act::Ok(6)]);
    assert_eq!(go(&flow, &partial, "r3", &resume).await.unwrap(), 6);
    assert_eq!(partial.calls("g").len(), 3);
}

/// `s -> a -> c`, run until `a`'s first attempt has started, then dropped: what a killed
/// orchestrator leaves (the run and `a` recorded as running, `s` succeeded).
async fn killed_mid_run(ds: &Datastore) -> Flow {
    let flow = Flow::from_stages(
        "t",
        vec![
            stage(StageKind::Start, &[step("s", vec![])]),
            stage(StageKind::Then, &[step("a", vec![])]),
            stage(StageKind::Then, &[step("c", vec![])]),
        ],
    );
    let started = Arc::new(Notify::new());
    let ex = Scripted::new(ds).script("s", "0", vec![Act::Ok(1)]).script(
        "a",
        "0",
        vec![Act::Then(started.clone(), Box::new(Act::Hang))],
    );
    let options = options();
    tokio::select! {
        r = go(&flow, &ex, "r", &options) => panic!("the run ended: {r:?}"),
        () = started.notified() => {}
    }
    assert_eq!(run_record(ds, "r").await.status, Status::Running);
    flow
}

fn recover() -> Options {
    Options {
        prior: Prior::Recover,
        ..options()
    }
}

#[tokio::test]
async fn recover_adopts_the_attempt_in_flight_and_keeps_what_finished() {
    let ds = store("recover-adopt");
    let flow = killed_mid_run(&ds).await;
    let started_ms = run_record(&ds, "r").await.started_ms;
    // Only `a` and `c` are scripted: an attempt of `s` would panic.
    let ex = Scripted::new(&ds)
        .adopting()
        .script("a", "0", vec![Act::Ok(2)])
        .script("c", "0", vec![Act::Ok(3)]);
    assert_eq!(go(&flow, &ex, "r", &recover()).await.unwrap(), 3);
    // The same attempt, run again to adopt its Job: not a second one.
    assert_eq!(ex.calls("a"), vec![("0".to_string(), 0)]);
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.status, Status::Succeeded);
    assert_eq!(a.attempts.len(), 1);
    assert_eq!(a.attempts[0].adopted_by, Some(instance()));
    assert!(a.attempts[0].orchestrator.is_some());
    let c = task(&ds, "r", "c", "0").await;
    assert_eq!(c.attempts[0].orchestrator, Some(instance()));
    assert_eq!(c.attempts[0].adopted_by, None);
    let r = run_record(&ds, "r").await;
    assert_eq!((r.status, r.started_ms), (Status::Succeeded, started_ms));
}

#[tokio::test]
async fn recover_does_not_launch_an_attempt_that_wrote_its_output() {
    let ds = store("recover-written");
    let flow = killed_mid_run(&ds).await;
    // `a` finished its work; its orchestrator died before it noticed.
    let output = ds
        .put_artifact(codec::encode(&2u64).unwrap())
        .await
        .unwrap();
    // The pod wrote where it ran; its orchestrator had not seen the pod yet.
    let pod = crate::datastore::AttemptPod {
        name: "flow-a-0".into(),
        namespace: "ml".into(),
        uid: "u1".into(),
        node: None,
        resources: None,
        marks: Vec::new(),
    };
    let result = crate::datastore::AttemptResult {
        output,
        finished_ms: None,
        pod: Some(pod.clone()),
    };
    ds.put_record(
        &Key::AttemptResult(TaskPath::new("r", "a", "0"), 0),
        &result,
    )
    .await
    .unwrap();
    let ex = Scripted::new(&ds)
        .adopting()
        .script("c", "0", vec![Act::Ok(3)]);
    assert_eq!(go(&flow, &ex, "r", &recover()).await.unwrap(), 3);
    assert!(ex.calls("a").is_empty(), "{:?}", ex.calls("a"));
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.status, Status::Succeeded);
    assert_eq!(
        a.attempts[0].pod,
        Some(pod),
        "the record names the pod that wrote the output"
    );
}

#[tokio::test]
async fn recover_relaunches_a_local_attempt_without_spending_a_retry() {
    let ds = store("recover-local");
    let flow = killed_mid_run(&ds).await;
    // `a` has no #[retry]: the orphaned attempt is the platform's loss, not a failure.
    let ex = Scripted::new(&ds)
        .script("a", "0", vec![Act::Ok(2)])
        .script("c", "0", vec![Act::Ok(3)]);
    assert_eq!(go(&flow, &ex, "r", &recover()).await.unwrap(), 3);
    assert_eq!(ex.calls("a"), vec![("0".to_string(), 1)]);
    let a = task(&ds, "r", "a", "0").await;
    assert_eq!(a.attempts.len(), 2);
    assert!(
        causes(&a)[0]
            .as_deref()
            .is_some_and(|c| c.starts_with(ORPHANED)),
        "{:?}",
        causes(&a)
    );
}
