//! `run --detach`: the run's orchestrator in a pod of its own, so the run outlives the
//! terminal. The launcher does what `run` does before the first task (resolve every setting,
//! check permissions, upload the binary, dry-run each step's Job), then creates the
//! orchestrator's Job, prints the run id and how to follow it, and exits. The pod runs the
//! hidden `orchestrate` command of the same binary with the launcher's plan; a pod that
//! replaces it (deleted, evicted, its node lost) continues the same run as `run --recover`.

use super::Error;
use super::run::{Args, DatastoreArgs, RunOptions};
use crate::datastore::Status;
use crate::executor::kubernetes::KubernetesExecutor;
use crate::flow::Flow;
use crate::report::report;
use kubestep_core::StepDecl;
use kubestep_core::render::Binary;
use kubestep_core::render::orchestrator::{self, Orchestrator};
use kubestep_core::resolve::{Defaults, Resolved};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;

/// Where a run's orchestrator is: options of `run` and the `kubernetes` commands.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct OrchestratorArgs {
    /// Namespace of the run's Lease (which keeps a second orchestrator of the run out) and of a
    /// detached run's orchestrator Job [default: the namespace of the first step that runs on
    /// Kubernetes]
    #[arg(long, env = "KUBESTEP_ORCHESTRATOR_NAMESPACE", value_name = "NAMESPACE", value_parser = namespace)]
    pub(super) orchestrator_namespace: Option<String>,
    /// ServiceAccount a detached run's orchestrator pod runs as (`kubernetes rbac
    /// --orchestrator` prints it with what it may do)
    #[arg(
        long,
        env = "KUBESTEP_ORCHESTRATOR_SERVICE_ACCOUNT",
        value_name = "NAME",
        default_value = "kubestep-orchestrator",
        value_parser = service_account
    )]
    pub(super) orchestrator_service_account: String,
}

fn namespace(s: &str) -> Result<String, String> {
    kubestep_core::names::dns_label(s).map(|()| s.to_string())
}

fn service_account(s: &str) -> Result<String, String> {
    kubestep_core::names::dns_subdomain(s).map(|()| s.to_string())
}

impl OrchestratorArgs {
    /// The orchestrator namespace: the option's, or the first of `namespaces` (the steps', in
    /// flow order).
    pub(super) fn namespace<'a>(&self, mut namespaces: impl Iterator<Item = &'a str>) -> String {
        self.orchestrator_namespace
            .clone()
            .or_else(|| namespaces.next().map(str::to_string))
            .unwrap_or_else(|| "default".into())
    }
}

/// How a detached or scheduled run's orchestrator pod is made: options of `run` and `deploy`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct OrchestratorPodArgs {
    /// Image of a detached or scheduled run's orchestrator pod [default: debian:bookworm-slim;
    /// with KUBESTEP_KUBERNETES_BINARY_IN_IMAGE, the image of the first Kubernetes step]
    #[arg(long, env = "KUBESTEP_ORCHESTRATOR_IMAGE", value_name = "IMAGE")]
    orchestrator_image: Option<String>,
    /// Secrets whose keys become the environment of a detached or scheduled run's orchestrator
    /// pod: the datastore's credentials [default: the `secrets` of the steps that run on
    /// Kubernetes]
    #[arg(
        long = "orchestrator-secret",
        env = "KUBESTEP_ORCHESTRATOR_SECRETS",
        value_name = "SECRET",
        value_delimiter = ','
    )]
    orchestrator_secrets: Vec<String>,
}

/// What the launcher hands the orchestrator pod: the run, fully resolved where the launching
/// machine's settings matter.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Plan {
    /// The run id; none for a schedule's runs, named after their Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) run_id: Option<String>,
    /// The datastore's kind.
    pub(super) datastore: String,
    /// Its root.
    pub(super) root: String,
    /// `--max-workers`.
    pub(super) max_workers: u32,
    /// Each `--with` as written.
    pub(super) with: Vec<String>,
    /// The start step's encoded input (the flow's parameters).
    pub(super) input: Option<Vec<u8>>,
    /// Where the run's Lease is.
    pub(super) orchestrator_namespace: String,
}

/// Options of the hidden `orchestrate` command.
#[derive(Debug, clap::Args)]
pub(super) struct OrchestrateArgs {
    /// The plan, as JSON.
    plan: String,
}

/// The orchestrator of run `run_id` (none: a schedule's) of `options`, whose steps `steps` are
/// checked and whose binary reaches the pod as `binary` (with its `kubernetes.io/arch`).
pub(super) fn orchestrator(
    flow: &Flow,
    defaults: &Defaults,
    options: &RunOptions,
    steps: &[(&'static StepDecl, Resolved)],
    run_id: Option<&str>,
    start_input: Option<Vec<u8>>,
    (binary, arch): (Binary, Option<String>),
) -> Result<Orchestrator, Error> {
    let settings = defaults.settings()?;
    let (kind, root) = options.store.location()?;
    let home = options
        .orchestrator
        .namespace(steps.iter().map(|(_, r)| r.namespace.value.as_str()));
    let plan = Plan {
        run_id: run_id.map(str::to_string),
        datastore: kind.name().to_string(),
        root,
        max_workers: options.max_workers,
        with: options.with.with.iter().map(|w| w.text.clone()).collect(),
        input: start_input,
        orchestrator_namespace: home.clone(),
    };
    let plan = serde_json::to_string(&plan).map_err(|e| Error::Unsupported(e.to_string()))?;
    let pod = &options.pod;
    // A baked-in binary is in the steps' image; a fetched one runs in the default image.
    let image = pod.orchestrator_image.clone().unwrap_or_else(|| {
        match (&settings.binary_in_image, steps.first()) {
            (Some(_), Some((_, r))) => r.image.value.clone(),
            _ => kubestep_core::resolve::DEFAULT_IMAGE.to_string(),
        }
    });
    let secrets = if pod.orchestrator_secrets.is_empty() {
        let mut all: Vec<String> = steps
            .iter()
            .flat_map(|(_, r)| r.secrets.iter().map(|s| s.value.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    } else {
        pod.orchestrator_secrets.clone()
    };
    Ok(Orchestrator {
        flow: flow.name().to_string(),
        run_id: run_id.map(str::to_string),
        namespace: home,
        service_account: options.orchestrator.orchestrator_service_account.clone(),
        image,
        fetch_image: settings.fetch_image.clone(),
        binary,
        arch,
        args: vec![ORCHESTRATE.into(), plan],
        env: pod_env(defaults, kind),
        secrets,
        ttl_seconds: settings.job_ttl_seconds.value,
    })
}

/// Creates the orchestrator Job `o` of a detached run, with `k`'s client; prints how to follow
/// the run.
pub(super) async fn launch(
    flow: &Flow,
    k: &KubernetesExecutor,
    o: &Orchestrator,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let run_id = o.run_id.as_deref().unwrap_or_default();
    let job = orchestrator::job(o);
    let name = job.metadata.name.clone().unwrap_or_default();
    let home = &o.namespace;
    k.cluster().create_or_adopt(&job).await.map_err(|message| {
        Error::Unsupported(format!(
            "cannot create the orchestrator Job {home}/{name}: {message}"
        ))
    })?;
    let exe = std::env::args()
        .next()
        .unwrap_or_else(|| flow.name().to_string());
    writeln!(
        out,
        "run {run_id} of flow `{}` is detached: its orchestrator runs in Job {home}/{name} as service account {}\n  follow it:  {exe} status {run_id}\n  its logs:   {exe} logs --follow {run_id}/STEP\n  stop it:    {exe} kubernetes kill --run-id {run_id}",
        flow.name(),
        o.service_account,
    )?;
    Ok(())
}

/// The hidden command an orchestrator pod runs.
pub(super) const ORCHESTRATE: &str = "orchestrate";

/// The orchestrator pod's environment: every `KUBESTEP_KUBERNETES_*` default the launcher
/// found (its config file's and its environment's, the environment winning, as there), so the
/// pod resolves each step exactly as `render` on the launching machine does; and the
/// datastore's settings, without credentials (those come from the pod's Secrets).
fn pod_env(defaults: &Defaults, kind: crate::datastore::Kind) -> Vec<(String, String)> {
    // Config-file entries come first, the environment's after: the later one wins.
    // A launcher that runs in a step's pod does not hand its pod's own description on.
    let in_pod = kubestep_core::resolve::env::IN_POD;
    let mut env: BTreeMap<String, String> = defaults
        .entries
        .iter()
        .filter(|e| !in_pod.contains(&e.var.as_str()))
        .map(|e| (e.var.clone(), e.value.clone()))
        .collect();
    env.extend(crate::executor::kubernetes::datastore_env(
        kind,
        std::env::vars(),
    ));
    env.into_iter().collect()
}

/// What an orchestrator pod does: starts the run of `plan`, or continues it when a pod before
/// it started it (the run record says it is still running); a run that already ended is not
/// run again.
pub(super) async fn orchestrate(
    flow: &Flow,
    defaults: &Defaults,
    a: &OrchestrateArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let plan: Plan = serde_json::from_str(&a.plan)
        .map_err(|e| Error::Unsupported(format!("the orchestrator's plan is unreadable: {e}")))?;
    let mut with = Vec::new();
    for text in &plan.with {
        with.push(super::parse_with(text).map_err(Error::Unsupported)?);
    }
    super::check_overrides(flow, &with)?;
    let store = DatastoreArgs::new(
        plan.datastore
            .parse()
            .map_err(|e: kubestep_core::invocation::UnknownStoreKind| Error::Unsupported(e.0))?,
        plan.root.clone(),
    );
    // A schedule's run is named after the Job its CronJob made.
    let run_id = match &plan.run_id {
        Some(id) => id.clone(),
        None => std::env::var(orchestrator::RUN_ID_ENV).map_err(|_| {
            Error::Unsupported(format!(
                "a scheduled run's orchestrator needs its run id in {}",
                orchestrator::RUN_ID_ENV
            ))
        })?,
    };
    crate::datastore::layout::check_segment("run id", &run_id).map_err(Error::Unsupported)?;
    let client = crate::client::Client::new(store.open(flow)?);
    let earlier = client
        .run(&run_id)
        .await
        .map_err(|e| Error::Unsupported(report(&e)))?;
    let recover = match earlier {
        None => false,
        Some(r) if r.status == Status::Running => true,
        Some(r) if r.status == Status::Succeeded => {
            writeln!(out, "run {run_id} already succeeded")?;
            return Ok(());
        }
        Some(r) => {
            return Err(Error::Orchestrated(Box::new(Error::Unsupported(format!(
                "run {run_id} already ended: {}",
                format!("{:?}", r.status).to_lowercase()
            )))));
        }
    };
    let options = RunOptions {
        store,
        max_workers: plan.max_workers,
        orchestrator: OrchestratorArgs {
            orchestrator_namespace: Some(plan.orchestrator_namespace.clone()),
            orchestrator_service_account: String::new(),
        },
        pod: OrchestratorPodArgs {
            orchestrator_image: None,
            orchestrator_secrets: Vec::new(),
        },
        with: super::WithArgs { with },
    };
    let args = Args::orchestrated(options, run_id, recover);
    super::run::run(flow, defaults, &args, None, plan.input, out)
        .await
        .map_err(|e| match e {
            e @ Error::Run { .. } => Error::Orchestrated(Box::new(e)),
            e => e,
        })
}

/// The exit code of an orchestrator pod whose run failed: its Job fails, no pod retries it.
pub(super) const RUN_FAILED_EXIT: i32 = orchestrator::RUN_FAILED_EXIT;
