//! `run` and `resume`: the whole flow, each task a child process of this binary, or for a
//! `#[kubernetes]` step (or one `--with` names) a Job whose pod runs this binary; and `logs`.

use super::Error;
use crate::datastore::layout::check_segment;
use crate::datastore::{Datastore, Kind};
use crate::executor::kubernetes::{KubernetesExecutor, lease};
use crate::executor::local::LocalExecutor;
use crate::executor::{Executor, Routed, RunContext};
use crate::flow::Flow;
use crate::orchestrator;
use crate::report::report;
use kubestep_core::resolve::{self, Defaults};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the datastore is: options of `run`, `resume`, `logs` and `render`.
#[derive(Debug, clap::Args)]
pub(super) struct DatastoreArgs {
    /// Which datastore holds the outputs (default from KUBESTEP_DATASTORE, as Metaflow's
    /// METAFLOW_DEFAULT_DATASTORE).
    #[arg(long, env = "KUBESTEP_DATASTORE", default_value = "local", value_parser = store_kind())]
    datastore: Kind,
    /// Its root: a directory for `local` (default `.kubestep`), a URL such as s3://bucket/prefix
    /// for the others (default from KUBESTEP_S3_ROOT, KUBESTEP_AZURE_ROOT, KUBESTEP_GCS_ROOT).
    #[arg(long, value_name = "PATH|URL")]
    datastore_root: Option<String>,
}

/// `--datastore`: one of the kinds, listed in `--help`.
fn store_kind() -> impl clap::builder::TypedValueParser<Value = Kind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Kind::ALL.map(Kind::name))
        .map(|name| name.parse::<Kind>().expect("one of the possible values"))
}

impl DatastoreArgs {
    /// The datastore of `kind` at `root`.
    pub(super) fn new(kind: Kind, root: String) -> DatastoreArgs {
        DatastoreArgs {
            datastore: kind,
            datastore_root: Some(root),
        }
    }

    pub(super) fn open(&self, flow: &Flow) -> Result<Datastore, Error> {
        let (kind, root) = self.location()?;
        Ok(Datastore::open(kind, &root, flow.name())?)
    }

    /// The kind and root the options name (a root from the environment when none is given).
    pub(super) fn location(&self) -> Result<(Kind, String), Error> {
        let from_env = |var: &str| {
            std::env::var(var).map_err(|_| {
                Error::Unsupported(format!(
                    "--datastore {} needs --datastore-root or {var}",
                    self.datastore.name()
                ))
            })
        };
        let root = match (&self.datastore_root, self.datastore) {
            (Some(r), _) => r.clone(),
            (None, Kind::Local) => ".kubestep".into(),
            (None, Kind::S3) => from_env("KUBESTEP_S3_ROOT")?,
            (None, Kind::Azure) => from_env("KUBESTEP_AZURE_ROOT")?,
            (None, Kind::Gs) => from_env("KUBESTEP_GCS_ROOT")?,
        };
        Ok((self.datastore, root))
    }
}

/// What a run does and where, wherever its orchestrator runs: options of `run` and `deploy`.
#[derive(Debug, clap::Args)]
pub(super) struct RunOptions {
    #[command(flatten)]
    pub(super) store: DatastoreArgs,
    /// Most tasks at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(super) max_workers: u32,
    #[command(flatten)]
    pub(super) orchestrator: super::detach::OrchestratorArgs,
    #[command(flatten)]
    pub(super) pod: super::detach::OrchestratorPodArgs,
    #[command(flatten)]
    pub(super) with: super::WithArgs,
}

/// Options of `run`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) options: RunOptions,
    /// Write the run id to this file as soon as the run starts.
    #[arg(long, value_name = "FILE")]
    run_id_file: Option<PathBuf>,
    /// Print only errors, not the tasks' output.
    #[arg(long, short)]
    quiet: bool,
    /// Run every step on this machine, `#[kubernetes]` ones included (for development).
    #[arg(long, conflicts_with = "with")]
    local: bool,
    /// Continue run RUN_ID after its orchestrator stopped (killed, or its machine gone), under
    /// the same run id and with its own parameters: finished tasks are kept, Kubernetes Jobs
    /// still running are taken over, only what never started is launched. (`resume` starts a
    /// new run instead.)
    #[arg(long, value_name = "RUN_ID", value_parser = |s: &str| check_segment("run id", s).map(|()| s.to_string()))]
    recover: Option<String>,
    /// Run the orchestrator in the cluster instead of here: check and ship everything as `run`
    /// does, create a Job whose pod drives the run, print the run id and how to follow it, and
    /// exit. The run goes on without this machine; a replaced orchestrator pod continues it.
    #[arg(long, conflicts_with_all = ["local", "recover"])]
    detach: bool,
    /// Set when this process is a detached run's orchestrator pod: the run id is given, and
    /// SIGTERM (the pod deleted or evicted) leaves the run's Jobs to the pod that replaces it.
    #[arg(skip)]
    in_pod: Option<String>,
}

impl Args {
    /// The options of an orchestrator pod's run `run_id`, continuing it when `recover`.
    pub(super) fn orchestrated(options: RunOptions, run_id: String, recover: bool) -> Args {
        Args {
            options,
            run_id_file: None,
            quiet: false,
            local: false,
            recover: recover.then(|| run_id.clone()),
            detach: false,
            in_pod: Some(run_id),
        }
    }
}

/// Options of `resume`.
#[derive(Debug, clap::Args)]
pub(super) struct ResumeArgs {
    /// The run to resume (default: the latest).
    #[arg(value_parser = |s: &str| check_segment("run id", s).map(|()| s.to_string()))]
    pub(super) run_id: Option<String>,
    #[command(flatten)]
    pub(super) run: Args,
}

/// Runs the flow; with `resume`, reuses every task of that run (`Some(None)`: the latest) that
/// succeeded on the same input.
pub(super) async fn run(
    flow: &Flow,
    defaults: &Defaults,
    args: &Args,
    resume: Option<Option<&str>>,
    start_input: Option<Vec<u8>>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let with = &args.options.with.with;
    let on_kubernetes = if args.local {
        Vec::new()
    } else {
        on_kubernetes(flow, defaults, with)?
    };
    // Why the steps go to Kubernetes, for the messages that say what they need.
    let why = || {
        let names: Vec<String> = on_kubernetes
            .iter()
            .map(|(d, _)| format!("`{}`", d.name))
            .collect();
        let by = if with.is_empty() {
            "#[kubernetes]"
        } else {
            "#[kubernetes] or --with"
        };
        format!(
            "step{} {} run{} on Kubernetes ({by})",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            if names.len() == 1 { "s" } else { "" }
        )
    };
    if args.detach && on_kubernetes.is_empty() {
        return Err(Error::Unsupported(
            "--detach runs the orchestrator of a run with Kubernetes steps in the cluster, but no step of this run is on Kubernetes: mark steps #[kubernetes], or add --with kubernetes".into(),
        ));
    }
    // The namespace of the run's Lease and of a detached run's orchestrator.
    let mut home = args.options.orchestrator.namespace(
        on_kubernetes
            .iter()
            .map(|(_, r)| r.namespace.value.as_str()),
    );
    let datastore = args.options.store.open(flow)?;
    if !on_kubernetes.is_empty() && datastore.kind() == Kind::Local {
        return Err(Error::Unsupported(format!(
            "{}, which needs a datastore pods can reach: --datastore s3, azure or gs (or KUBESTEP_DATASTORE), since a local directory is not visible in pods; `run --local` runs every step on this machine",
            why()
        )));
    }
    // A run with Kubernetes steps checks it once the cluster has answered (a cluster's problems
    // are said first), before it uploads the binary.
    if on_kubernetes.is_empty() {
        datastore.check_writable().await?;
    }
    let run_id = match (&args.recover, &args.in_pod) {
        (Some(id), _) => {
            let earlier = recoverable(&datastore, flow, id, resume.is_some()).await?;
            // The Lease is where the run's first orchestrator took it.
            if let Some(ns) = earlier.orchestrator_namespace {
                home = ns;
            }
            id.clone()
        }
        (None, Some(id)) => id.clone(),
        (None, None) => orchestrator::new_run_id(),
    };
    if let Some(file) = &args.run_id_file {
        std::fs::write(file, &run_id).map_err(|e| {
            Error::Unsupported(format!(
                "cannot write --run-id-file {}: {e}",
                file.display()
            ))
        })?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Unsupported(format!("cannot find this executable: {e}")))?;
    let progress = Arc::new(crate::progress::Progress::new(args.quiet));
    let ctx = RunContext {
        datastore,
        run_id: run_id.clone(),
        echo: !args.quiet,
        progress: progress.clone(),
    };
    let local: Arc<dyn Executor> = Arc::new(LocalExecutor {
        exe,
        ctx: ctx.clone(),
        defaults: defaults.clone(),
    });
    // The run resumed from is checked before anything is started or held in the cluster.
    let resume_from = match resume {
        None => None,
        Some(Some(id)) => Some(id.to_string()),
        Some(None) => {
            let client = crate::client::Client::new(ctx.datastore.clone());
            let latest = client
                .latest_run()
                .await
                .map_err(|e| Error::Unsupported(report(&e)))?;
            Some(
                latest
                    .ok_or_else(|| {
                        Error::Unsupported(format!(
                            "flow `{}` has no run to resume in {}",
                            flow.name(),
                            ctx.datastore.root()
                        ))
                    })?
                    .run_id,
            )
        }
    };
    if let Some(origin) = &resume_from {
        let client = crate::client::Client::new(ctx.datastore.clone());
        if client
            .run(origin)
            .await
            .map_err(|e| Error::Unsupported(report(&e)))?
            .is_none()
        {
            return Err(Error::Unsupported(format!(
                "flow `{}` has no run {origin} in {}",
                flow.name(),
                ctx.datastore.root()
            )));
        }
        if !args.quiet {
            writeln!(out, "resuming run {origin} as run {run_id}")?;
        }
    }
    let kubernetes = if on_kubernetes.is_empty() {
        None
    } else {
        let settings = defaults.settings()?;
        let why = why();
        let names: Vec<&'static str> = on_kubernetes.iter().map(|(d, _)| d.name).collect();
        let steps = on_kubernetes.clone();
        // Ctrl-C while it checks, uploads and dry-runs: nothing is launched yet, so nothing to
        // delete; the run ends as interrupted rather than killed by the signal.
        let started = tokio::select! {
            k = KubernetesExecutor::start(ctx.clone(), flow, on_kubernetes, &settings) => k,
            () = interrupted() => return Err(Error::Interrupted { run_id }),
        };
        let k = started.map_err(|e| match e {
            crate::executor::kubernetes::Error::Connect(e) => Error::Unsupported(format!(
                "{why}, but {e}, or `run --local` to run every step on this machine"
            )),
            e => e.into(),
        })?;
        if args.detach {
            let o = super::detach::orchestrator(
                flow,
                defaults,
                &args.options,
                &steps,
                Some(&run_id),
                start_input,
                k.pod_binary().await?,
            )?;
            return super::detach::launch(flow, &k, &o, out).await;
        }
        // One orchestrator at a time: a recovered run waits for the Lease of an orchestrator
        // that was just killed to expire.
        let spec = lease::Spec {
            namespace: home.clone(),
            name: kubestep_core::names::run_name(flow.name(), &run_id),
            labels: kubestep_core::labels::Selector::flow(flow.name())
                .run(&run_id)
                .labels(),
            run_id: run_id.clone(),
            holder: orchestrator::instance(),
        };
        let held = tokio::select! {
            held = lease::acquire(k.cluster(), spec, lease::DURATION + Duration::from_secs(10)) => held,
            () = interrupted() => return Err(Error::Interrupted { run_id }),
        };
        let held = held.map_err(|e| Error::Unsupported(report(&e)))?;
        // The orchestrator it waited for may have ended the run meanwhile.
        if args.recover.is_some()
            && let Err(e) = recoverable(&ctx.datastore, flow, &run_id, false).await
        {
            held.release().await;
            return Err(e);
        }
        Some((Arc::new(k), names, held))
    };
    let executor = Routed {
        default: local,
        steps: kubernetes
            .iter()
            .flat_map(|(k, names, _)| names.iter().map(|n| (*n, k.clone() as Arc<dyn Executor>)))
            .collect(),
    };
    let started = Instant::now();
    if args.recover.is_some() && !args.quiet {
        writeln!(out, "recovering run {run_id}")?;
    }
    let options = orchestrator::Options {
        max_workers: args.options.max_workers as usize,
        prior: match (resume_from, &args.recover) {
            (Some(origin), _) => orchestrator::Prior::Resume(origin),
            (None, Some(_)) => orchestrator::Prior::Recover,
            (None, None) => orchestrator::Prior::Nothing,
        },
        start_input,
        orchestrator_namespace: kubernetes.is_some().then(|| home.clone()),
    };
    let run = orchestrator::Run {
        ctx: &ctx,
        executor: &executor,
    };
    // When another orchestrator takes the run over, the attempts in flight keep their Jobs: said
    // before `select!` drops them.
    let hand_over = || {
        if let Some((k, ..)) = &kubernetes {
            k.hand_over();
        }
    };
    let lost = async {
        let why = match &kubernetes {
            Some((.., held)) => held.lost().await,
            None => std::future::pending().await,
        };
        hand_over();
        why
    };
    let stop = async {
        interrupted().await;
        // A pod being deleted or evicted: the pod that replaces it continues the run.
        if args.in_pod.is_some() {
            hand_over();
        }
    };
    tokio::select! {
        result = orchestrator::run(flow, &run, &options) => {
            progress.finish();
            if let Some((k, ..)) = &kubernetes {
                k.settle().await;
            }
            release(kubernetes).await;
            result.map_err(|e| Error::Run { run_id: run_id.clone(), source: e })?;
        }
        why = lost => {
            // Another orchestrator drives the run now: this one must not act beside it.
            progress.finish();
            return Err(Error::Unsupported(format!(
                "run {run_id}: this orchestrator stopped, launching nothing more and leaving the run's Jobs: {why}"
            )));
        }
        () = stop => {
            progress.finish();
            if args.in_pod.is_some() {
                release(kubernetes).await;
                return Err(Error::Interrupted { run_id });
            }
            if let Some((k, ..)) = &kubernetes {
                eprintln!("kubestep: deleting the Jobs of run {run_id} (Ctrl-C again to stop waiting)");
                let left = tokio::select! {
                    left = k.shutdown(Duration::from_secs(60)) => left,
                    () = interrupted() => vec!["(not waited for: interrupted again)".into()],
                };
                if !left.is_empty() {
                    eprintln!("kubestep: pods of run {run_id} still there after 60 s: {}", left.join(", "));
                }
            }
            let _ = orchestrator::mark_interrupted(&ctx).await;
            release(kubernetes).await;
            return Err(Error::Interrupted { run_id });
        }
    }
    if !args.quiet {
        writeln!(
            out,
            "run {run_id} of flow `{}` succeeded in {:.2} s",
            flow.name(),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(())
}

/// The steps a run sends to Kubernetes, with their settings: a `#[kubernetes]` step executes
/// there, as the decorator says, and any step `--with` names. Settings are checked before
/// anything starts: a bad one is named, nothing is left behind.
pub(super) fn on_kubernetes(
    flow: &Flow,
    defaults: &Defaults,
    with: &[kubestep_core::resolve::WithArg],
) -> Result<
    Vec<(
        &'static kubestep_core::StepDecl,
        kubestep_core::resolve::Resolved,
    )>,
    Error,
> {
    flow.steps()
        .filter(|d| resolve::on_kubernetes(d, with))
        .map(|d| Ok((d, resolve::resolve(d, defaults, with)?)))
        .collect()
}

/// Checks that run `id` can be recovered: it exists and is still recorded as running (its
/// orchestrator stopped without ending it).
async fn recoverable(
    datastore: &Datastore,
    flow: &Flow,
    id: &str,
    resuming: bool,
) -> Result<crate::datastore::RunRecord, Error> {
    if resuming {
        return Err(Error::Unsupported(
            "`resume` starts a new run from an earlier one; `run --recover RUN_ID` continues that run itself: use one of them".into(),
        ));
    }
    let client = crate::client::Client::new(datastore.clone());
    match client
        .run(id)
        .await
        .map_err(|e| Error::Unsupported(report(&e)))?
    {
        None => Err(Error::Unsupported(format!(
            "--recover {id}: flow `{}` has no run {id} in {}",
            flow.name(),
            datastore.root()
        ))),
        Some(r) if r.status != crate::datastore::Status::Running => {
            Err(Error::Unsupported(format!(
                "--recover {id}: run {id} is {}, not running: only a run whose orchestrator stopped before the end can be recovered; `resume {id}` starts a new run from it",
                format!("{:?}", r.status).to_lowercase()
            )))
        }
        Some(r) => Ok(r),
    }
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Options of `logs`.
#[derive(Debug, clap::Args)]
pub(super) struct LogsArgs {
    /// RUN/STEP or RUN/STEP/TASK.
    path: String,
    /// Stream the output of the tasks that run now on Kubernetes, live from their pods, until
    /// they end (from any machine, whichever orchestrator runs them); the saved logs of the
    /// others first.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    store: DatastoreArgs,
    #[command(flatten)]
    pub(super) with: super::WithArgs,
}

/// Prints the saved logs of a step's tasks (every attempt), or of one task; with `--follow`,
/// then streams the running ones from their pods.
pub(super) async fn logs(
    flow: &Flow,
    defaults: &Defaults,
    args: &LogsArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let parts: Vec<&str> = args.path.split('/').collect();
    let (run_id, step, task) = match parts.as_slice() {
        [r, s] => (*r, *s, None),
        [r, s, t] => (*r, *s, Some(*t)),
        _ => {
            return Err(Error::Unsupported(format!(
                "`{}` is not RUN/STEP or RUN/STEP/TASK",
                args.path
            )));
        }
    };
    for (what, value) in [
        ("run id", run_id),
        ("step", step),
        ("task id", task.unwrap_or("0")),
    ] {
        check_segment(what, value).map_err(Error::Unsupported)?;
    }
    if flow.step(step).is_none() {
        return Err(Error::unknown_step(flow, step));
    }
    let client = crate::client::Client::new(args.store.open(flow)?);
    let bad = |e: crate::client::Error| Error::Unsupported(report(&e));
    let mut tasks: Vec<_> = client
        .tasks(run_id)
        .await
        .map_err(bad)?
        .into_iter()
        .filter(|t| t.step == step && task.is_none_or(|id| t.task_id == id))
        .collect();
    if tasks.is_empty() {
        return Err(Error::Unsupported(format!(
            "run {run_id} has no task {}",
            args.path.split_once('/').map_or("", |x| x.1)
        )));
    }
    tasks.sort_by_key(|t| t.task_id.parse::<u64>().unwrap_or(u64::MAX));
    let running: Vec<String> = tasks
        .iter()
        .filter(|t| t.status == crate::datastore::Status::Running)
        .map(|t| t.task_id.clone())
        .collect();
    for t in tasks
        .into_iter()
        .filter(|t| !args.follow || !running.contains(&t.task_id))
    {
        let origin = t.reused_from.clone().unwrap_or_else(|| run_id.to_string());
        for a in &t.attempts {
            writeln!(
                out,
                "== {step}/{} attempt {}{}{}",
                t.task_id,
                a.attempt,
                a.pod
                    .as_ref()
                    .map(|p| format!(
                        " in pod {}/{} (uid {}) on node {}",
                        p.namespace,
                        p.name,
                        p.uid,
                        p.node.as_deref().unwrap_or("(none)")
                    ))
                    .unwrap_or_default(),
                a.cause
                    .as_ref()
                    .map(|c| format!(" (failed: {c})"))
                    .unwrap_or_default()
            )?;
            let log = client
                .log(&origin, step, &t.task_id, a.attempt)
                .await
                .map_err(bad)?
                .unwrap_or_default();
            out.write_all(&log)?;
        }
    }
    if args.follow && !running.is_empty() {
        super::kubernetes::follow(flow, defaults, &args.with, run_id, step, &running, out).await?;
    }
    Ok(())
}

/// Gives up the run's Lease, if it has one: the run is over here.
async fn release<K, N>(kubernetes: Option<(K, N, lease::Held)>) {
    if let Some((.., held)) = kubernetes {
        held.release().await;
    }
}
