//! `render [STEP] [--with ...] [--explain]`: the Jobs a Kubernetes run would create, offline.

use super::Error;
use crate::binary;
use crate::flow::{Flow, StageKind};
use kubestep_core::StepDecl;
use kubestep_core::invocation::TaskInvocation;
use kubestep_core::render::{self, Binary, Task};
use kubestep_core::resolve::{self, Defaults};
use std::io::Write;

/// Options of `render`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Render only this step.
    step: Option<String>,
    /// Print every field taken from a setting, with the source of its value, instead of YAML.
    #[arg(long)]
    explain: bool,
    /// The run id to render for.
    #[arg(long, default_value = "preview")]
    run_id: String,
    /// The image already contains this binary at PATH: no init container fetches it (default:
    /// KUBESTEP_KUBERNETES_BINARY_IN_IMAGE, as `run` reads it).
    #[arg(long, value_name = "PATH")]
    binary_in_image: Option<String>,
    /// The datastore, and with --deploy the run's other options, as `run` and `deploy` take
    /// them.
    #[command(flatten)]
    pub(super) options: super::run::RunOptions,
    /// Print the CronJob `deploy` would create for the schedule (--schedule, with the flow's
    /// parameters and deploy's options), instead of the steps' Jobs.
    #[arg(long, requires = "schedule")]
    deploy: bool,
    #[command(flatten)]
    schedule: super::deploy::ScheduleArgs,
}

/// The URL is presigned when a run uploads the binary; a preview has none to show.
const URL_AT_LAUNCH: &str = "(presigned URL of the uploaded binary, made when the run starts)";
/// The object `deploy` uploads the binary to, and its bucket's region.
const OBJECT_AT_DEPLOY: &str = "(URL of the binary's object in the datastore, uploaded by deploy)";
const REGION_AT_DEPLOY: &str = "(the bucket's region)";
/// The input artifact is known when the task starts.
const INPUT_AT_LAUNCH: &str = "(id of the input artifact, known when the task starts)";

/// The Job of the step's first task (of its gang, for a multi-node step), as a run makes it.
fn task(
    flow: &Flow,
    decl: &'static StepDecl,
    run_id: &str,
    binary: &Binary,
    arch: Option<&str>,
    store: &(crate::datastore::Kind, String),
) -> Task {
    let gang = flow
        .stages()
        .iter()
        .find(|s| s.steps.iter().any(|d| d.name == decl.name))
        .and_then(|s| match s.kind {
            StageKind::Parallel(n) => Some(n),
            _ => None,
        });
    Task {
        flow: flow.name().into(),
        invocation: TaskInvocation {
            step: decl.name.into(),
            run_id: run_id.into(),
            task_id: "0".into(),
            attempt: 0,
            input: INPUT_AT_LAUNCH.into(),
            store: store.0,
            store_root: store.1.clone(),
        },
        env: Vec::new(),
        binary: binary.clone(),
        arch: arch.map(str::to_string),
        gang,
    }
}

pub(super) fn render(
    flow: &Flow,
    defaults: &Defaults,
    args: &Args,
    start_input: Option<Vec<u8>>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let with = &args.options.with.with;
    let steps: Vec<&'static StepDecl> = match &args.step {
        Some(name) => vec![
            flow.step(name)
                .ok_or_else(|| Error::unknown_step(flow, name))?,
        ],
        None => flow
            .steps()
            .filter(|d| resolve::on_kubernetes(d, with))
            .collect(),
    };
    // What `run` would do: the flag, or the setting from the environment or config file.
    let in_image = match &args.binary_in_image {
        Some(path) => Some(path.clone()),
        None => defaults.settings()?.binary_in_image,
    };
    let (binary, arch) = match &in_image {
        Some(path) => (Binary::InImage { path: path.clone() }, None),
        None => {
            let exe = binary::current()?;
            (
                Binary::Fetched {
                    url: URL_AT_LAUNCH.into(),
                    sha256: exe.sha256,
                },
                Some(exe.arch),
            )
        }
    };
    if args.deploy {
        // What `deploy` makes of the binary: fetched by a request the pod signs, from the
        // object `deploy` uploads.
        let binary = match binary {
            Binary::Fetched { sha256, .. } => Binary::FromS3 {
                url: OBJECT_AT_DEPLOY.into(),
                region: REGION_AT_DEPLOY.into(),
                sha256,
            },
            in_image => in_image,
        };
        let cron_job = super::deploy::rendered(
            flow,
            defaults,
            &args.schedule,
            &args.options,
            start_input,
            binary,
            arch.map(str::to_string),
        )?;
        let yaml = render::to_yaml(&[cron_job]).map_err(|e| Error::Yaml(e.to_string()))?;
        out.write_all(yaml.as_bytes())?;
        return Ok(());
    }
    let store = args.options.store.location()?;
    for decl in steps {
        let resolved = resolve::resolve(decl, defaults, with)?;
        let task = task(flow, decl, &args.run_id, &binary, arch, &store);
        let r = render::job(&resolved, &task);
        if args.explain {
            writeln!(
                out,
                "# step {}: Job {}",
                decl.name,
                r.job.metadata.name.as_deref().unwrap_or_default()
            )?;
            let width = r
                .explain
                .iter()
                .map(|e| e.field.len() + e.value.len())
                .max()
                .unwrap_or(0);
            for e in &r.explain {
                let pad = width - e.field.len() - e.value.len();
                writeln!(
                    out,
                    "{} = {}{:pad$}   <- {}",
                    e.field, e.value, "", e.source
                )?;
            }
            writeln!(out)?;
            continue;
        }
        let yaml = |r: Result<String, _>| {
            r.map_err(|e: kubestep_core::render::YamlError| Error::Yaml(e.to_string()))
        };
        // A gang's headless Service, which `run` creates beside its Job (and owned by it: the
        // ownerReference needs the Job's uid, so a preview cannot show it).
        if task.gang.is_some() {
            let service = render::gang_service(&resolved, &task);
            out.write_all(yaml(render::to_yaml(&[service]))?.as_bytes())?;
        }
        out.write_all(yaml(render::to_yaml(&[r.job]))?.as_bytes())?;
    }
    Ok(())
}
