//! `kubernetes list|kill|rbac`: a flow's pods across the namespaces its steps use, and the
//! least RBAC a run needs.

use super::{Error, WithArgs};
use crate::executor::kubernetes::cluster::Cluster;
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
    /// Delete the Jobs and pods of one run, or of every run of the flow, and wait until they are
    /// gone.
    Kill(Select),
    /// Print the Role and RoleBinding (one per namespace the steps use) that a run needs.
    Rbac(RbacArgs),
}

/// Which pods.
#[derive(Debug, clap::Args)]
pub(super) struct Select {
    /// Only this run.
    #[arg(long)]
    run_id: Option<String>,
    #[command(flatten)]
    with: WithArgs,
}

/// Options of `kubernetes rbac`.
#[derive(Debug, clap::Args)]
pub(super) struct RbacArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    #[command(flatten)]
    with: WithArgs,
}

/// Who the RoleBinding names: exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct SubjectArgs {
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

/// Every namespace a step of the flow would use on Kubernetes.
fn namespaces(
    flow: &Flow,
    defaults: &Defaults,
    with: &WithArgs,
) -> Result<BTreeSet<String>, Error> {
    // A misspelt step or parameter must not quietly widen or narrow what list, kill and rbac see.
    super::check_overrides(flow, &with.with)?;
    let steps = crate::executor::kubernetes::resolve_all(flow.steps(), defaults, &with.with)?;
    Ok(steps.into_iter().map(|(_, r)| r.namespace.value).collect())
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
            let who = match (&s.user, &s.group, &s.service_account) {
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
            for ns in namespaces(flow, defaults, &a.with)? {
                let yaml = kubestep_core::render::to_yaml(&[rbac::role(&ns)])
                    .and_then(|r| {
                        Ok(r + &kubestep_core::render::to_yaml(&[rbac::binding(&ns, &who)])?)
                    })
                    .map_err(|e| Error::Yaml(e.to_string()))?;
                out.write_all(yaml.as_bytes())?;
            }
            Ok(())
        }
        Command::List(s) => {
            let namespaces = namespaces(flow, defaults, &s.with)?;
            let cluster = cluster().await?;
            let sel = selector(flow, s.run_id.as_deref());
            writeln!(out, "NAMESPACE\tPOD\tRUN\tSTEP\tTASK\tATTEMPT\tPHASE")?;
            for ns in namespaces {
                let pods = cluster
                    .list_pods(&ns, &sel)
                    .await
                    .map_err(|e| Error::Unsupported(report(&e)))?;
                for p in pods {
                    let label = |k: &str| {
                        p.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(k).cloned())
                            .unwrap_or_default()
                    };
                    writeln!(
                        out,
                        "{ns}\t{}\t{}\t{}\t{}\t{}\t{}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        label(labels::RUN_ID),
                        label(labels::STEP),
                        label(labels::TASK_ID),
                        label(labels::ATTEMPT),
                        p.status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("Unknown"),
                    )?;
                }
            }
            Ok(())
        }
        Command::Kill(s) => {
            let namespaces = namespaces(flow, defaults, &s.with)?;
            let cluster = cluster().await?;
            let sel = selector(flow, s.run_id.as_deref());
            let fail =
                |e: crate::executor::kubernetes::cluster::Error| Error::Unsupported(report(&e));
            for ns in &namespaces {
                cluster.delete_jobs(ns, &sel).await.map_err(fail)?;
                cluster.delete_pods(ns, &sel).await.map_err(fail)?;
            }
            // The garbage collector removes the Jobs' pods; wait for it, bounded.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let mut left = Vec::new();
                for ns in &namespaces {
                    for p in cluster.list_pods(ns, &sel).await.map_err(fail)? {
                        left.push(format!("{ns}/{}", p.metadata.name.unwrap_or_default()));
                    }
                }
                if left.is_empty() {
                    writeln!(out, "no pod of flow `{}` is left", flow.name())?;
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
    }
}

/// The flow's objects, or one run's.
fn selector(flow: &Flow, run_id: Option<&str>) -> String {
    let s = labels::Selector::flow(flow.name());
    match run_id {
        Some(r) => s.run(r),
        None => s,
    }
    .to_string()
}
