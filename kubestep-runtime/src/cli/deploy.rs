//! `deploy`: a flow that runs on a schedule, as a CronJob whose Jobs each run a detached
//! run's orchestrator (see `detach`); `deploy --list` and `deploy --delete` manage them.
//!
//! A schedule lasts months, longer than any presigned URL: its pods fetch the binary from the
//! datastore by signing their own request with the credentials their Secrets give (S3), or
//! find it in their image (`KUBESTEP_KUBERNETES_BINARY_IN_IMAGE`). Each run's orchestrator
//! signs fresh URLs for its steps, as any run does. A scheduled run is named after its Job, so
//! a replacement pod continues it; it is an ordinary run for `status`, `logs` and the client.

use super::Error;
use super::run::RunOptions;
use crate::datastore::Kind;
use crate::executor::RunContext;
use crate::executor::kubernetes::KubernetesExecutor;
use crate::executor::kubernetes::cluster::{Cluster, code};
use crate::flow::Flow;
use crate::report::report;
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{DeleteParams, ListParams, PostParams};
use kubestep_core::labels;
use kubestep_core::render::Binary;
use kubestep_core::render::orchestrator::{self, Concurrency, Schedule};
use kubestep_core::resolve::Defaults;
use std::io::Write;
use std::sync::Arc;

/// When and as what the flow runs: options of `deploy` and `render --deploy`.
#[derive(Debug, clap::Args)]
pub(super) struct ScheduleArgs {
    /// When to run, in cron syntax: five fields (minute hour day-of-month month day-of-week,
    /// such as "0 3 * * *") or a macro such as @daily
    #[arg(long, value_name = "CRON", value_parser = |s: &str| orchestrator::check_cron(s).map(|()| s.to_string()))]
    pub(super) schedule: Option<String>,
    /// Time zone of the schedule, an IANA name such as Europe/Paris [default: the cluster's
    /// controller manager's, usually UTC]
    #[arg(long, value_name = "TZ", requires = "schedule")]
    timezone: Option<String>,
    /// Whether a run may start while the previous one still runs (forbid: that time is skipped)
    #[arg(long, default_value = "forbid", value_parser = concurrency())]
    concurrency: Concurrency,
    /// The schedule's name (its CronJob's) [default: the flow's name]
    #[arg(long, value_parser = |s: &str| kubestep_core::names::dns_label(s).map(|()| s.to_string()))]
    name: Option<String>,
}

fn concurrency() -> impl clap::builder::TypedValueParser<Value = Concurrency> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["forbid", "allow"]).map(|v| {
        Concurrency::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(&v))
            .expect("one of the possible values")
    })
}

impl ScheduleArgs {
    /// The schedule's name: the option's, or the flow's as a DNS label (room left for the
    /// 11 characters the CronJob controller appends to name each Job).
    fn name(&self, flow: &Flow) -> String {
        self.name.clone().unwrap_or_else(|| {
            let mut name = kubestep_core::names::to_dns_label(flow.name());
            name.truncate(52);
            name.trim_end_matches('-').to_string()
        })
    }

    /// The schedule `--schedule` gives.
    pub(super) fn schedule(&self, flow: &Flow) -> Result<Schedule, Error> {
        let cron = self.schedule.clone().ok_or_else(|| {
            Error::Unsupported("deploy needs --schedule CRON (or --list, or --delete)".into())
        })?;
        Ok(Schedule {
            name: self.name(flow),
            cron,
            time_zone: self.timezone.clone(),
            concurrency: self.concurrency,
        })
    }
}

/// Options of `deploy`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) schedule: ScheduleArgs,
    /// List the flow's schedules (in the orchestrator namespace).
    #[arg(long, conflicts_with_all = ["schedule", "delete"])]
    list: bool,
    /// Delete the schedule (--name, default the flow's). Runs it started go on to their end.
    #[arg(long, conflicts_with = "schedule")]
    delete: bool,
    #[command(flatten)]
    pub(super) options: RunOptions,
}

/// The binary a schedule's pods fetch: the object the datastore holds, by a request the pod
/// signs itself, from the URL `presigned` (of that object) without its signature.
fn unsigned(presigned: &str, sha256: String) -> Result<Binary, Error> {
    let url = url::Url::parse(presigned)
        .map_err(|e| Error::Unsupported(format!("the binary's URL is not a URL: {e}")))?;
    // `X-Amz-Credential` is `KEY/DATE/REGION/s3/aws4_request`: the region the signature uses.
    let region = url
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-Credential")
        .and_then(|(_, v)| v.split('/').nth(2).map(str::to_string))
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "the binary's presigned URL names no region: {}",
                url.path()
            ))
        })?;
    let mut bare = url.clone();
    bare.set_query(None);
    Ok(Binary::FromS3 {
        url: bare.to_string(),
        region,
        sha256,
    })
}

/// `deploy`: creates or updates the schedule, lists or deletes schedules.
pub(super) async fn deploy(
    flow: &Flow,
    defaults: &Defaults,
    args: &Args,
    start_input: Option<Vec<u8>>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let options = &args.options;
    let steps = super::run::on_kubernetes(flow, defaults, &options.with.with)?;
    if steps.is_empty() {
        return Err(Error::Unsupported(
            "deploy schedules runs whose steps run on Kubernetes, but no step of this flow does: mark steps #[kubernetes], or add --with kubernetes".into(),
        ));
    }
    let home = options
        .orchestrator
        .namespace(steps.iter().map(|(_, r)| r.namespace.value.as_str()));
    let settings = defaults.settings()?;
    if args.list || args.delete {
        let cluster = Cluster::connect(settings.api_qps)
            .await
            .map_err(|e| Error::Unsupported(report(&e)))?;
        return if args.list {
            list(&cluster, flow, &home, out).await
        } else {
            delete(&cluster, &home, &args.schedule.name(flow), out).await
        };
    }
    let schedule = args.schedule.schedule(flow)?;
    let datastore = options.store.open(flow)?;
    if datastore.kind() == Kind::Local {
        return Err(Error::Unsupported(
            "a schedule's pods need a datastore they can reach: --datastore s3, azure or gs (or KUBESTEP_DATASTORE)".into(),
        ));
    }
    if settings.binary_in_image.is_none() && datastore.kind() != Kind::S3 {
        return Err(Error::Unsupported(format!(
            "a schedule's pods fetch the flow binary with their own credentials, which kubestep does for --datastore s3 only (an S3 request signed in the pod); with --datastore {}, bake the binary into the image and name its path in KUBESTEP_KUBERNETES_BINARY_IN_IMAGE",
            datastore.kind().name()
        )));
    }
    // What `run` checks before its first task: permissions, the binary in the datastore, each
    // step's Job accepted by a dry run.
    let ctx = RunContext {
        datastore,
        run_id: format!("{}-scheduled", schedule.name),
        echo: false,
        progress: Arc::new(crate::progress::Progress::new(true)),
    };
    let k = KubernetesExecutor::start(ctx, flow, steps.clone(), &settings).await?;
    let (binary, arch) = k.pod_binary().await?;
    let binary = match binary {
        Binary::Fetched { url, sha256 } => unsigned(&url, sha256)?,
        in_image => in_image,
    };
    let cron_job = rendered(
        flow,
        defaults,
        &args.schedule,
        options,
        start_input,
        binary,
        arch,
    )?;
    let api = k.cluster().cron_jobs(&home);
    let post = PostParams::default();
    let created = match k
        .cluster()
        .call(
            || format!("create CronJob {home}/{}", schedule.name),
            || api.create(&post, &cron_job),
        )
        .await
    {
        Err(e) if code(&e.source) == Some(409) => {
            // Deployed before: updated in place, its history kept.
            let current = api.get(&schedule.name).await.map_err(|e| {
                Error::Unsupported(format!("cannot read CronJob {home}/{}: {e}", schedule.name))
            })?;
            let mut next = cron_job.clone();
            next.metadata.resource_version = current.metadata.resource_version;
            k.cluster()
                .call(
                    || format!("update CronJob {home}/{}", schedule.name),
                    || api.replace(&schedule.name, &post, &next),
                )
                .await
                .map(|_| false)
        }
        r => r.map(|_| true),
    }
    .map_err(|e| Error::Unsupported(report(&e)))?;
    writeln!(
        out,
        "{} schedule {} of flow `{}`: {}{}, CronJob {home}/{} (concurrency {}); each run is an ordinary run (`status`, `logs`); run it now with `kubectl create job --from=cronjob/{} -n {home} {}-manual-1`",
        if created { "created" } else { "updated" },
        schedule.name,
        flow.name(),
        schedule.cron,
        schedule
            .time_zone
            .as_ref()
            .map(|tz| format!(" ({tz})"))
            .unwrap_or_default(),
        schedule.name,
        schedule.concurrency.name(),
        schedule.name,
        schedule.name,
    )?;
    Ok(())
}

/// The flow's schedules in `home`, one line each.
async fn list(
    cluster: &Cluster,
    flow: &Flow,
    home: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let selector = format!(
        "{},{}=true",
        super::kubernetes::selector(flow, None),
        labels::ORCHESTRATOR
    );
    let api = cluster.cron_jobs(home);
    let lp = ListParams::default().labels(&selector);
    let all = cluster
        .call(
            || format!("list CronJobs {selector} in {home}"),
            || api.list(&lp),
        )
        .await
        .map_err(|e| Error::Unsupported(report(&e)))?;
    writeln!(
        out,
        "NAMESPACE\tSCHEDULE\tCRON\tTIMEZONE\tCONCURRENCY\tLAST RUN\tACTIVE"
    )?;
    for c in all.items {
        let spec = c.spec.unwrap_or_default();
        let status = c.status.unwrap_or_default();
        writeln!(
            out,
            "{home}\t{}\t{}\t{}\t{}\t{}\t{}",
            c.metadata.name.unwrap_or_default(),
            spec.schedule,
            spec.time_zone.unwrap_or_else(|| "-".into()),
            spec.concurrency_policy.unwrap_or_default(),
            status
                .last_schedule_time
                .map_or_else(|| "-".into(), |t| t.0.to_string()),
            status.active.map_or(0, |a| a.len()),
        )?;
    }
    Ok(())
}

/// Deletes schedule `name`; the Jobs it made are orphaned, not deleted, so a run in progress
/// finishes.
async fn delete(
    cluster: &Cluster,
    home: &str,
    name: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let api = cluster.cron_jobs(home);
    let params = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    match cluster
        .call(
            || format!("delete CronJob {home}/{name}"),
            || api.delete(name, &params),
        )
        .await
    {
        Ok(_) => {
            // The garbage collector orphans its Jobs first: gone once that is done.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while matches!(api.get_opt(name).await, Ok(Some(_)))
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            writeln!(
                out,
                "deleted schedule {name} (CronJob {home}/{name}); runs it started go on"
            )?;
            Ok(())
        }
        Err(e) if code(&e.source) == Some(404) => Err(Error::Unsupported(format!(
            "no schedule {name} in namespace {home}; `deploy --list` shows the flow's"
        ))),
        Err(e) => Err(Error::Unsupported(report(&e))),
    }
}

/// The CronJob `deploy` creates (and `render --deploy` shows offline, where `binary` stands for
/// what `deploy` uploads).
pub(super) fn rendered(
    flow: &Flow,
    defaults: &Defaults,
    schedule: &ScheduleArgs,
    options: &RunOptions,
    start_input: Option<Vec<u8>>,
    binary: Binary,
    arch: Option<String>,
) -> Result<CronJob, Error> {
    let steps = super::run::on_kubernetes(flow, defaults, &options.with.with)?;
    let o = super::detach::orchestrator(
        flow,
        defaults,
        options,
        &steps,
        None,
        start_input,
        (binary, arch),
    )?;
    Ok(orchestrator::cron_job(&o, &schedule.schedule(flow)?))
}
