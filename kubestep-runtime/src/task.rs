//! The task side: what a `step` process does, whether the orchestrator started it as a child
//! process or a pod re-launched this binary: read the input artifact, run the step, store the
//! output and the attempt's result record. The parent reads that record (and, on failure, the
//! last line this process printed).

use crate::datastore::{self, AttemptResult, Datastore, Key, TaskPath};
use crate::flow::Flow;
use crate::report::report;
use crate::step::TaskError;
use kubestep_core::invocation::{SUBCOMMAND, StoreKind, TaskInvocation};

/// The `step` command line, as clap reads it (`TaskInvocation::to_args` writes it).
#[derive(Debug, clap::Args)]
pub(crate) struct TaskArgs {
    /// The step.
    step: String,
    #[arg(long)]
    run_id: String,
    #[arg(long)]
    task_id: String,
    #[arg(long, default_value_t = 0)]
    attempt: u32,
    /// The input artifact.
    #[arg(long)]
    input: String,
    #[arg(long, value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<StoreKind>()))]
    datastore: StoreKind,
    #[arg(long)]
    datastore_root: String,
}

impl From<TaskArgs> for TaskInvocation {
    fn from(a: TaskArgs) -> TaskInvocation {
        TaskInvocation {
            step: a.step,
            run_id: a.run_id,
            task_id: a.task_id,
            attempt: a.attempt,
            input: a.input,
            store: a.datastore,
            store_root: a.datastore_root,
        }
    }
}

/// Why a task did not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation names a step the flow does not have (a binary of another version).
    #[error("flow `{flow}` has no step `{step}`")]
    UnknownStep {
        /// The flow.
        flow: String,
        /// The step named.
        step: String,
    },
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] datastore::Error),
    /// The step did not produce an output.
    #[error(transparent)]
    Step(#[from] TaskError),
}

/// Runs one task in this process: what the hidden `step` command does.
///
/// # Errors
/// An unknown step, the datastore, or the step itself; the message is the task's cause.
pub async fn run(flow: &Flow, inv: &TaskInvocation) -> Result<(), Error> {
    // The orchestrator reports a failed task by the last line it printed: make a panic's
    // message that line, rather than the RUST_BACKTRACE hint.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "panicked{at}: {}",
            message.as_deref().unwrap_or("(no message)")
        );
    }));
    let runner = flow.runner(&inv.step).ok_or_else(|| Error::UnknownStep {
        flow: flow.name().into(),
        step: inv.step.clone(),
    })?;
    let ds = Datastore::open(inv.store, &inv.store_root, flow.name())?;
    let input = ds.get_artifact(&inv.input).await?;
    let output = runner(input).await?;
    let id = ds.put_chunks(output).await?;
    let task = TaskPath::new(&inv.run_id, &inv.step, &inv.task_id);
    ds.put_record(
        &Key::AttemptResult(task, inv.attempt),
        &AttemptResult {
            output: id,
            finished_ms: Some(datastore::now_ms()),
        },
    )
    .await?;
    Ok(())
}

#[derive(Debug, clap::Parser)]
struct TaskCommand {
    #[command(subcommand)]
    command: OnlyTask,
}

#[derive(Debug, clap::Subcommand)]
enum OnlyTask {
    #[command(name = SUBCOMMAND)]
    Step(TaskArgs),
}

/// When this process was started to run one task (`<binary> step NAME ...`, what a pod runs),
/// runs it on the caller's runtime and returns the exit code; otherwise `None`. For programs
/// that embed steps without `Flow::main()`.
pub async fn serve(flow: &Flow) -> Option<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != SUBCOMMAND) {
        return None;
    }
    let code = match <TaskCommand as clap::Parser>::try_parse_from(&args) {
        Ok(TaskCommand {
            command: OnlyTask::Step(a),
        }) => match run(flow, &a.into()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {}", report(&e));
                1
            }
        },
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    };
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// What `to_args` writes, clap reads back whole.
    #[test]
    fn the_invocation_round_trips_through_the_command_line() {
        for store in StoreKind::ALL {
            let inv = TaskInvocation {
                step: "train".into(),
                run_id: "1700000000".into(),
                task_id: "3-1".into(),
                attempt: 2,
                input: "ab12".into(),
                store,
                store_root: "s3://bucket/a prefix".into(),
            };
            let argv = std::iter::once("flow".to_string()).chain(inv.to_args());
            let TaskCommand {
                command: OnlyTask::Step(a),
            } = TaskCommand::try_parse_from(argv).unwrap();
            assert_eq!(TaskInvocation::from(a), inv);
        }
    }
}
