//! The command line every flow binary has, through `.main()`.

mod deploy;
mod detach;
mod kubernetes;
mod render;
mod report;
mod run;
mod show;
mod status;

use crate::flow::{Flow, FlowBuilder, Linear};
use crate::task;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kubestep_core::invocation::TaskInvocation;
use kubestep_core::resolve::{self, Defaults, WithArg, with_arg};
use std::io::Write;

/// The command line of a flow binary; its about text names the flow (set in `run`).
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the flow's steps in order, and each step's settings with where each value comes from.
    Show(show::Args),
    /// Print the Kubernetes Jobs that `run --with kubernetes` would create, as YAML. Needs no
    /// cluster and no kubeconfig.
    Render(render::Args),
    /// Run the flow: each `#[kubernetes]` step's tasks (every step's with --with kubernetes) as
    /// Kubernetes Jobs whose pods run this binary, the others as processes of this binary
    /// (--local: every step here); outputs in the datastore.
    Run(run::Args),
    /// Run the flow on a schedule: a CronJob whose Jobs each run the orchestrator of a new run
    /// in the cluster (as `run --detach`), with the flow parameters and options given here.
    /// --list and --delete manage the flow's schedules.
    Deploy(deploy::Args),
    /// Run the flow again from a failed run, reusing every task that finished there.
    Resume(run::ResumeArgs),
    /// Print the saved output of a step's tasks: `logs RUN/STEP[/TASK]`.
    Logs(run::LogsArgs),
    /// Show a run (default: the latest): its state, and each task's state, attempt, pod and
    /// node, from the datastore and, while it runs, the cluster's live pods. --json for scripts.
    Status(status::Args),
    /// Write a run's page: one self-contained HTML file with the graph, a timeline of every
    /// task's attempts (queued, pending and why, starting, running), per-step durations, and
    /// each attempt's pod, node, resources and cause. From the datastore alone.
    Report(report::Args),
    /// The flow's pods on Kubernetes: list them, kill a run's, print the RBAC a run needs.
    #[command(subcommand)]
    Kubernetes(kubernetes::Command),
    /// Run one task (what `run` starts for each task, and what a pod runs). Its arguments are
    /// `TaskInvocation`'s, read by `TaskInvocation::parse`.
    #[command(
        name = kubestep_core::invocation::SUBCOMMAND,
        hide = true,
        disable_help_flag = true
    )]
    Step {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Drive a detached run (what its orchestrator pod runs): the launcher's plan, as JSON.
    #[command(name = detach::ORCHESTRATE, hide = true)]
    Orchestrate(detach::OrchestrateArgs),
}

/// `--with` options, shared by the commands that resolve settings.
#[derive(Debug, clap::Args)]
struct WithArgs {
    /// Attach or override Kubernetes settings: `kubernetes[:k=v,...]` for every step,
    /// `STEP/kubernetes:k=v,...` for one. Values are JSON, integers, floats or strings.
    #[arg(long = "with", value_name = "SPEC", value_parser = parse_with)]
    with: Vec<WithArg>,
}

fn parse_with(s: &str) -> Result<WithArg, String> {
    with_arg::parse(s).map_err(|e| e.message)
}

/// `--help`'s list of the parameters `--with` takes and the environment that sets defaults.
fn settings_help() -> String {
    use kubestep_core::params::KUBERNETES;
    use kubestep_core::resolve::env::SETTINGS;
    let mut out = String::from(
        "Kubernetes parameters, for --with kubernetes:k=v and as KUBESTEP_KUBERNETES_<PARAM> defaults:\n",
    );
    for p in KUBERNETES {
        let env = p.env.map(|e| format!(" [{e}]")).unwrap_or_default();
        out.push_str(&format!("  {:<28} {}{env}\n", p.name, p.doc));
    }
    out.push_str("\nOther settings:\n");
    for (var, doc) in SETTINGS {
        out.push_str(&format!("  {var:<52} {doc}\n"));
    }
    out
}

/// A command failed; the message is the whole story, printed on one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Resolve(#[from] resolve::Error),
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// The executable cannot run in a pod.
    #[error(transparent)]
    Binary(#[from] crate::binary::Error),
    /// The Kubernetes executor cannot start.
    #[error(transparent)]
    Kubernetes(#[from] crate::executor::kubernetes::Error),
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] kubestep_core::resolve::env::Error),
    /// The flow itself is wrong (a step used twice, ...).
    #[error("{0}")]
    Flow(String),
    /// A step named on the command line does not exist.
    #[error("flow `{flow}` has no step `{step}`{}; its steps: {steps}", hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    UnknownStep {
        /// The flow.
        flow: String,
        /// The name given.
        step: String,
        /// The nearest step name.
        hint: Option<String>,
        /// Every step.
        steps: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    /// YAML serialisation failed.
    #[error("cannot print YAML: {0}")]
    Yaml(String),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] crate::datastore::Error),
    /// The run failed.
    #[error("run {run_id} failed")]
    Run {
        /// The run.
        run_id: String,
        /// Why.
        source: crate::orchestrator::Error,
    },
    /// Ctrl-C.
    #[error("run {run_id} interrupted")]
    Interrupted {
        /// The run.
        run_id: String,
    },
    /// A task failed inside its process. The orchestrator that started it names the step and
    /// task, so the message is the cause alone.
    #[error(transparent)]
    Task(#[from] task::Error),
    /// Something this build does not do yet.
    #[error("{0}")]
    Unsupported(String),
    /// A detached run's orchestrator pod ends because the run did (it failed, or ended
    /// before): its exit code tells the Job not to start another pod.
    #[error(transparent)]
    Orchestrated(Box<Error>),
}

impl Error {
    fn unknown_step(flow: &Flow, step: &str) -> Error {
        Error::UnknownStep {
            flow: flow.name().to_string(),
            step: step.to_string(),
            hint: kubestep_core::params::nearest(step, flow.steps().map(|d| d.name))
                .map(str::to_string),
            steps: flow.steps().map(|d| d.name).collect::<Vec<_>>().join(", "),
        }
    }
}

/// Every `STEP/kubernetes` override must name a step: an override is never silently ignored.
fn check_overrides(flow: &Flow, with: &[WithArg]) -> Result<(), Error> {
    for w in with {
        if let Some(step) = &w.step
            && flow.step(step).is_none()
        {
            return Err(Error::unknown_step(flow, step));
        }
    }
    Ok(())
}

/// Runs the command line `args` against `flow`, writing to `out`.
///
/// # Errors
/// Any failure of the command, as one message.
pub fn run(
    flow: &Flow,
    args: impl IntoIterator<Item = std::ffi::OsString>,
    out: &mut dyn Write,
) -> Result<(), CliOutcome> {
    let about = format!(
        "The kubestep flow `{}`. Its steps are Rust functions; steps marked #[kubernetes] run as Kubernetes Jobs under --with kubernetes.",
        flow.name()
    );
    let mut command = Cli::command().about(about).after_long_help(settings_help());
    let params = flow.params();
    if let Some(p) = params {
        // The flow's parameters become options of `run` and `resume`, unless one takes a name
        // those commands use already (clap would panic on the duplicate).
        let own: Vec<String> = command
            .find_subcommand("run")
            .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
            .unwrap_or_default();
        let theirs = (p.augment)(clap::Command::new("params"));
        if let Some(clash) = theirs
            .get_arguments()
            .find(|a| own.iter().any(|o| o == a.get_id().as_str()))
        {
            return Err(CliOutcome::Failed(Error::Flow(format!(
                "parameter `{}` of flow `{}` has the name of one of run's own options; rename it",
                clash.get_id(),
                flow.name()
            ))));
        }
        command = command
            .mut_subcommand("run", p.augment)
            .mut_subcommand("resume", p.augment)
            .mut_subcommand("deploy", p.augment)
            // `render` needs the parameters only to show a schedule (--deploy).
            .mut_subcommand("render", |c| (p.augment)(c).mut_args(|a| a.required(false)));
    }
    let matches = command
        .try_get_matches_from(args)
        .map_err(CliOutcome::Usage)?;
    let cli = Cli::from_arg_matches(&matches).map_err(CliOutcome::Usage)?;
    let start_input = match (params, matches.subcommand()) {
        (Some(p), Some(("run" | "resume" | "deploy", sub))) => {
            Some((p.encode)(sub).map_err(CliOutcome::Usage)?)
        }
        (Some(p), Some(("render", sub))) if sub.get_flag("deploy") => {
            Some((p.encode)(sub).map_err(CliOutcome::Usage)?)
        }
        _ => None,
    };
    let problems = flow.problems();
    if !problems.is_empty() {
        return Err(CliOutcome::Failed(Error::Flow(problems.join("; "))));
    }
    let result = (|| -> Result<(), Error> {
        let defaults: Defaults = crate::config::defaults()?;
        match cli.command {
            Command::Show(a) => {
                check_overrides(flow, &a.with.with)?;
                if a.graph {
                    show::graph(flow, &a.with.with, out)
                } else {
                    show::show(flow, &defaults, &a.with.with, out)
                }
            }
            Command::Render(a) => {
                check_overrides(flow, &a.options.with.with)?;
                render::render(flow, &defaults, &a, start_input, out)
            }
            Command::Run(a) => {
                check_overrides(flow, &a.options.with.with)?;
                runtime()?.block_on(run::run(flow, &defaults, &a, None, start_input, out))
            }
            Command::Deploy(a) => {
                check_overrides(flow, &a.options.with.with)?;
                runtime()?.block_on(deploy::deploy(flow, &defaults, &a, start_input, out))
            }
            Command::Resume(a) => {
                check_overrides(flow, &a.run.options.with.with)?;
                runtime()?.block_on(run::run(
                    flow,
                    &defaults,
                    &a.run,
                    Some(a.run_id.as_deref()),
                    start_input,
                    out,
                ))
            }
            Command::Logs(a) => {
                check_overrides(flow, &a.with.with)?;
                runtime()?.block_on(run::logs(flow, &defaults, &a, out))
            }
            Command::Status(a) => runtime()?.block_on(status::status(flow, &defaults, &a, out)),
            Command::Report(a) => runtime()?.block_on(report::report_page(flow, &a, out)),
            Command::Step { args } => {
                let mut all = vec![kubestep_core::invocation::SUBCOMMAND.to_string()];
                all.extend(args);
                let inv = TaskInvocation::parse(&all).map_err(task::Error::from)?;
                Ok(runtime()?.block_on(task::run(flow, &inv))?)
            }
            Command::Orchestrate(a) => {
                runtime()?.block_on(detach::orchestrate(flow, &defaults, &a, out))
            }
            Command::Kubernetes(c) => {
                runtime()?.block_on(kubernetes::command(flow, &defaults, &c, out))
            }
        }
    })();
    result.map_err(CliOutcome::Failed)
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Unsupported(format!("cannot start the async runtime: {e}")))
}

/// How a command ended other than successfully.
#[derive(Debug)]
pub enum CliOutcome {
    /// Bad command line, `--help` or `--version` (clap prints these itself).
    Usage(clap::Error),
    /// The command failed.
    Failed(Error),
}

impl<T> FlowBuilder<Linear<T>> {
    /// Parses the command line, runs the command, and exits with its code.
    pub fn main(self) -> ! {
        main(self.build())
    }
}

/// What `.main()` does: runs the process's command line and exits with its code.
fn main(flow: Flow) -> ! {
    let stdout = std::io::stdout();
    let code = match run(&flow, std::env::args_os(), &mut stdout.lock()) {
        Ok(()) => 0,
        Err(CliOutcome::Usage(e)) => {
            let _ = e.print();
            e.exit_code()
        }
        Err(CliOutcome::Failed(Error::Orchestrated(e))) => {
            eprintln!("error: {}", crate::report::report(&e));
            detach::RUN_FAILED_EXIT
        }
        Err(CliOutcome::Failed(e @ Error::Interrupted { .. })) => {
            eprintln!("error: {}", crate::report::report(&e));
            130
        }
        Err(CliOutcome::Failed(e)) => {
            eprintln!("error: {}", crate::report::report(&e));
            1
        }
    };
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The `step` subcommand hands its arguments over untouched, hyphens and all.
    #[test]
    fn step_passes_the_invocation_through() {
        let inv = TaskInvocation {
            step: "train".into(),
            run_id: "17".into(),
            task_id: "0".into(),
            attempt: 1,
            input: "-starts-with-a-hyphen".into(),
            store: kubestep_core::invocation::StoreKind::Local,
            store_root: "--odd root".into(),
        };
        let argv = std::iter::once("flow".to_string()).chain(inv.to_args());
        let Command::Step { args } = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not the step command")
        };
        let mut all = vec!["step".to_string()];
        all.extend(args);
        assert_eq!(TaskInvocation::parse(&all), Ok(inv));
    }
}
