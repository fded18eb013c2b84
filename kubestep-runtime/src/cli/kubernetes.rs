//! `kubernetes list|kill|rbac`: a flow's pods across the namespaces its steps use, and the
//! least RBAC a run needs.

use super::detach::OrchestratorArgs;
use super::{Error, WithArgs};
use crate::datastore::{Key, KillMark, Status};
use crate::executor::kubernetes::cluster::Cluster;
use crate::executor::kubernetes::logs;
use crate::executor::kubernetes::rbac::{self, Who};
use crate::flow::Flow;
use crate::report::report;
use kubestep_core::labels;
use kubestep_core::resolve::Defaults;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

/// `kubernetes` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(super) enum Command {
    /// List the flow's pods (every run, or one) in every namespace its steps use.
    List(Select),
    /// Stop a run: mark it killed in the datastore (its orchestrator launches nothing more),
    /// stop a detached run's orchestrator pod, delete the run's Jobs, pods and Lease, wait until
    /// they are gone, and record the run killed. Without --run-id, the running run (refused
    /// when several run; with none running, every Job and pod of the flow).
    Kill(KillArgs),
    /// Print the Role and RoleBinding (one per namespace the steps and the orchestrator use)
    /// that a run needs: a user's who runs flows (attached or `--detach`; with --deployer, who
    /// schedules them too), or with --orchestrator the ServiceAccount of detached and scheduled
    /// runs' orchestrator pods, the account too.
    Rbac(RbacArgs),
}

/// Which pods.
#[derive(Debug, clap::Args)]
pub(super) struct Select {
    /// Only this run.
    #[arg(long)]
    run_id: Option<String>,
    #[command(flatten)]
    orchestrator: OrchestratorArgs,
    #[command(flatten)]
    with: WithArgs,
}

/// Options of `kubernetes kill`.
#[derive(Debug, clap::Args)]
pub(super) struct KillArgs {
    #[command(flatten)]
    select: Select,
    /// The datastore of the runs, where the mark goes.
    #[command(flatten)]
    store: super::run::DatastoreArgs,
}

/// Options of `kubernetes rbac`.
#[derive(Debug, clap::Args)]
pub(super) struct RbacArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The user (or group, or service account) also schedules flows: `deploy` creates, lists
    /// and deletes CronJobs.
    #[arg(long, conflicts_with = "orchestrator")]
    deployer: bool,
    #[command(flatten)]
    orchestrator: OrchestratorArgs,
    #[command(flatten)]
    with: WithArgs,
}

/// Who the RoleBinding names: exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct SubjectArgs {
    /// The ServiceAccount detached runs' orchestrator pods run as
    /// (--orchestrator-service-account, in --orchestrator-namespace): printed too.
    #[arg(long)]
    orchestrator: bool,
    /// A user, as your API server authenticates it.
    #[arg(long)]
    user: Option<String>,
    /// A group.
    #[arg(long)]
    group: Option<String>,
    /// A service account, as NAMESPACE/NAME.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    service_account: Option<String>,
}

/// Every namespace a step of the flow would use on Kubernetes, in flow order.
pub(super) fn step_namespaces(
    flow: &Flow,
    defaults: &Defaults,
    with: &WithArgs,
) -> Result<Vec<String>, Error> {
    // A misspelt step or parameter must not quietly widen or narrow what list, kill and rbac see.
    super::check_overrides(flow, &with.with)?;
    let steps = crate::executor::kubernetes::resolve_all(flow.steps(), defaults, &with.with)?;
    Ok(steps.into_iter().map(|(_, r)| r.namespace.value).collect())
}

/// [`step_namespaces`] and the orchestrator's (the second value, among the first).
fn namespaces(
    flow: &Flow,
    defaults: &Defaults,
    with: &WithArgs,
    orchestrator: &OrchestratorArgs,
) -> Result<(BTreeSet<String>, String), Error> {
    let steps = step_namespaces(flow, defaults, with)?;
    let home = orchestrator.namespace(steps.iter().map(String::as_str));
    let mut all: BTreeSet<String> = steps.into_iter().collect();
    all.insert(home.clone());
    Ok((all, home))
}

pub(super) async fn command(
    flow: &Flow,
    defaults: &Defaults,
    command: &Command,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let settings = defaults.settings()?;
    let cluster = || async {
        Cluster::connect(settings.api_qps)
            .await
            .map_err(|e| Error::Unsupported(report(&e)))
    };
    match command {
        Command::Rbac(a) => {
            let s = &a.subject;
            let (namespaces, home) = namespaces(flow, defaults, &a.with, &a.orchestrator)?;
            let who = match (&s.user, &s.group, &s.service_account) {
                _ if s.orchestrator => {
                    let account =
                        rbac::service_account(&home, &a.orchestrator.orchestrator_service_account);
                    let yaml = kubestep_core::render::to_yaml(&[account])
                        .map_err(|e| Error::Yaml(e.to_string()))?;
                    out.write_all(yaml.as_bytes())?;
                    Who::ServiceAccount {
                        namespace: home,
                        name: a.orchestrator.orchestrator_service_account.clone(),
                    }
                }
                (Some(u), _, _) => Who::User(u.clone()),
                (_, Some(g), _) => Who::Group(g.clone()),
                (_, _, Some(sa)) => {
                    let (namespace, name) = sa.split_once('/').ok_or_else(|| {
                        Error::Unsupported(format!(
                            "--service-account {sa}: expected NAMESPACE/NAME"
                        ))
                    })?;
                    Who::ServiceAccount {
                        namespace: namespace.into(),
                        name: name.into(),
                    }
                }
                _ => unreachable!("clap requires one"),
            };
            for ns in namespaces {
                let yaml = kubestep_core::render::to_yaml(&[rbac::role(&ns, a.deployer)])
                    .and_then(|r| {
                        Ok(r + &kubestep_core::render::to_yaml(&[rbac::binding(
                            &ns, &who, a.deployer,
                        )])?)
                    })
                    .map_err(|e| Error::Yaml(e.to_string()))?;
                out.write_all(yaml.as_bytes())?;
            }
            Ok(())
        }
        Command::List(s) => {
            let (namespaces, _) = namespaces(flow, defaults, &s.with, &s.orchestrator)?;
            let cluster = cluster().await?;
            let sel = selector(flow, s.run_id.as_deref());
            writeln!(out, "NAMESPACE\tPOD\tRUN\tSTEP\tTASK\tATTEMPT\tPHASE")?;
            for ns in namespaces {
                let pods = cluster
                    .list_pods(&ns, &sel)
                    .await
                    .map_err(|e| Error::Unsupported(report(&e)))?;
                for p in pods {
                    let [run, mut step, task, attempt] = pod_task(&p);
                    if is_orchestrator(&p) {
                        step = "(orchestrator)".into();
                    }
                    writeln!(
                        out,
                        "{ns}\t{}\t{run}\t{step}\t{task}\t{attempt}\t{}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        p.status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("Unknown"),
                    )?;
                }
            }
            Ok(())
        }
        Command::Kill(KillArgs { select: s, store }) => {
            let (mut namespaces, home) = namespaces(flow, defaults, &s.with, &s.orchestrator)?;
            let killed = mark_killed(flow, store, s.run_id.as_deref(), out).await?;
            let cluster = cluster().await?;
            let fail =
                |e: crate::executor::kubernetes::cluster::Error| Error::Unsupported(report(&e));
            // A detached run's orchestrator goes first, so nothing relaunches what is deleted
            // next; the run record says where it is.
            let run_id = killed.as_ref().map(|(id, _)| id.as_str());
            let home = killed
                .as_ref()
                .and_then(|(_, ns)| ns.clone())
                .unwrap_or(home);
            namespaces.insert(home.clone());
            // A detached run's orchestrator Job carries its run id; a scheduled run's is named
            // by its CronJob, and names the run.
            let orchestrators = format!("{},{}=true", selector(flow, None), labels::ORCHESTRATOR);
            let jobs = cluster.jobs(&home);
            let lp = kube::api::ListParams::default().labels(&orchestrators);
            let listed = cluster
                .call(
                    || format!("list Jobs {orchestrators} in {home}"),
                    || jobs.list(&lp),
                )
                .await
                .map_err(fail)?;
            for job in listed.items {
                let name = job.metadata.name.clone().unwrap_or_default();
                let run = job
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::RUN_ID));
                let this_run = run_id.is_none_or(|id| {
                    name == id || run == Some(&kubestep_core::names::to_label_value(id))
                });
                if this_run {
                    cluster.delete_job(&home, &name).await.map_err(fail)?;
                    let pods = format!("{}={name}", labels::BATCH_JOB_NAME);
                    gone(&cluster, &[home.clone()].into(), &pods).await?;
                }
            }
            let sel = selector(flow, run_id);
            for ns in &namespaces {
                cluster.delete_jobs(ns, &sel).await.map_err(fail)?;
                cluster.delete_pods(ns, &sel).await.map_err(fail)?;
            }
            gone(&cluster, &namespaces, &sel).await?;
            if let Some(id) = run_id {
                crate::orchestrator::record_killed(&store.open(flow)?, id)
                    .await
                    .map_err(|e| Error::Unsupported(report(&e)))?;
            }
            // Last: an attached orchestrator, seeing its pods gone, ends the run as killed and
            // releases the Lease itself; one that is gone left it.
            for ns in &namespaces {
                cluster.delete_leases(ns, &sel).await.map_err(fail)?;
            }
            writeln!(out, "no pod of flow `{}` is left", flow.name())?;
            Ok(())
        }
    }
}

/// Waits until no pod matching `sel` is left in `namespaces` (the garbage collector removes a
/// deleted Job's pods), at most 60 s.
async fn gone(cluster: &Cluster, namespaces: &BTreeSet<String>, sel: &str) -> Result<(), Error> {
    let fail = |e: crate::executor::kubernetes::cluster::Error| Error::Unsupported(report(&e));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut left = Vec::new();
        for ns in namespaces {
            for p in cluster.list_pods(ns, sel).await.map_err(fail)? {
                left.push(format!("{ns}/{}", p.metadata.name.unwrap_or_default()));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Unsupported(format!(
                "pods still there after 60 s: {}",
                left.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Streams the output of `tasks` of `step` in run `run_id` from their pods (the latest attempt's
/// of each), side by side, each line prefixed `[step/task]`, until they end.
pub(super) async fn follow(
    flow: &Flow,
    defaults: &Defaults,
    with: &WithArgs,
    run_id: &str,
    step: &str,
    tasks: &[String],
    out: &mut dyn Write,
) -> Result<(), Error> {
    let settings = defaults.settings()?;
    let cluster = Cluster::connect(settings.api_qps).await.map_err(|e| {
        Error::Unsupported(format!(
            "--follow reads the running tasks' pods, but {}",
            report(&e)
        ))
    })?;
    let selector = format!("{},{}={step}", selector(flow, Some(run_id)), labels::STEP);
    // (namespace, pod, container, task) of each task's newest pod.
    let mut pods: std::collections::BTreeMap<String, (String, String, String, u64)> =
        Default::default();
    for ns in step_namespaces(flow, defaults, with)?
        .into_iter()
        .collect::<BTreeSet<_>>()
    {
        for p in cluster
            .list_pods(&ns, &selector)
            .await
            .map_err(|e| Error::Unsupported(report(&e)))?
        {
            let [_, _, task, attempt] = pod_task(&p);
            let attempt: u64 = attempt.parse().unwrap_or(0);
            let container = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            if tasks.contains(&task) && pods.get(&task).is_none_or(|(.., a)| *a < attempt) {
                pods.insert(task, (ns.clone(), name, container, attempt));
            }
        }
    }
    if pods.is_empty() {
        writeln!(
            out,
            "no pod of {run_id}/{step} runs now (its tasks may wait for a worker, or run locally)"
        )?;
        return Ok(());
    }
    let lines = std::sync::Mutex::new(Vec::<u8>::new());
    let followed = pods.iter().map(|(task, (ns, pod, container, _))| {
        let cluster = &cluster;
        let lines = &lines;
        async move {
            let prefix = format!("[{step}/{task}] ");
            logs::follow_pod(cluster, ns, pod, container, |line| {
                let mut text = prefix.clone().into_bytes();
                text.extend_from_slice(line);
                text.push(b'\n');
                lines.lock().expect("not poisoned").extend_from_slice(&text);
            })
            .await
            .map_err(|e| format!("[{step}/{task}] {e}"))
        }
    });
    let all = futures::future::join_all(followed);
    let mut all = std::pin::pin!(all);
    // Lines go out as they come, not when every task has ended.
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let ready = std::mem::take(&mut *lines.lock().expect("not poisoned"));
        out.write_all(&ready)?;
        out.flush()?;
    };
    let rest = std::mem::take(&mut *lines.lock().expect("not poisoned"));
    out.write_all(&rest)?;
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsupported(failed.join("; ")))
    }
}

/// Marks the run killed (the one named, or the only running one) before its pods go, so its
/// orchestrator does not launch them again; returns it, with the orchestrator namespace its
/// record names. `None`: no run is running, and what is left of the flow's is to be deleted.
async fn mark_killed(
    flow: &Flow,
    store: &super::run::DatastoreArgs,
    run_id: Option<&str>,
    out: &mut dyn Write,
) -> Result<Option<(String, Option<String>)>, Error> {
    let ds = store.open(flow)?;
    let fail = |e: crate::datastore::Error| Error::Unsupported(report(&e));
    let run_id = match run_id {
        Some(r) => {
            crate::datastore::layout::check_segment("run id", r)
                .map_err(|e| Error::Unsupported(e.to_string()))?;
            r.to_string()
        }
        None => {
            let runs = crate::client::Client::new(ds.clone())
                .runs()
                .await
                .map_err(|e| Error::Unsupported(report(&e)))?;
            let running: Vec<_> = runs
                .into_iter()
                .filter(|r| r.status == Status::Running)
                .collect();
            match &running[..] {
                [] => {
                    writeln!(
                        out,
                        "no run of flow `{}` is running in {}; deleting every Job and pod of the flow",
                        flow.name(),
                        ds.root()
                    )?;
                    return Ok(None);
                }
                [one] => one.run_id.clone(),
                several => {
                    return Err(Error::Unsupported(format!(
                        "{} runs of flow `{}` are running ({}); name one with --run-id",
                        several.len(),
                        flow.name(),
                        several
                            .iter()
                            .map(|r| r.run_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    };
    let mark = KillMark {
        killed_ms: crate::datastore::now_ms(),
    };
    ds.put_record(&Key::Killed(run_id.clone()), &mark)
        .await
        .map_err(fail)?;
    writeln!(
        out,
        "run {run_id} of flow `{}` is marked killed",
        flow.name()
    )?;
    let home = ds
        .get_record::<crate::datastore::RunRecord>(&Key::Run(run_id.clone()))
        .await
        .map_err(fail)?
        .and_then(|r| r.orchestrator_namespace);
    Ok(Some((run_id, home)))
}

/// Whether the pod is a detached run's orchestrator.
pub(super) fn is_orchestrator(p: &k8s_openapi::api::core::v1::Pod) -> bool {
    p.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(labels::ORCHESTRATOR))
}

/// What a pod's labels say of it: (run id, step, task id, attempt). A gang member's task id is
/// its rank, its pod's completion index.
pub(super) fn pod_task(p: &k8s_openapi::api::core::v1::Pod) -> [String; 4] {
    let label = |k: &str| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k).cloned())
            .unwrap_or_default()
    };
    let task = Some(label(labels::TASK_ID))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| label(labels::COMPLETION_INDEX));
    [
        label(labels::RUN_ID),
        label(labels::STEP),
        task,
        label(labels::ATTEMPT),
    ]
}

/// The flow's objects, or one run's.
pub(super) fn selector(flow: &Flow, run_id: Option<&str>) -> String {
    let s = labels::Selector::flow(flow.name());
    match run_id {
        Some(r) => s.run(r),
        None => s,
    }
    .to_string()
}
