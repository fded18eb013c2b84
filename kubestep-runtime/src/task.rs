//! The task side: what a `step` process does, whether the orchestrator started it as a child
//! process or a pod re-launched this binary: read the input artifact, run the step, store the
//! output and the attempt's result record. The parent reads that record (and, on failure, the
//! last line this process printed).

use crate::datastore::{self, AttemptResult, Datastore, Key, TaskPath};
use crate::flow::Flow;
use crate::report::report;
use crate::step::TaskError;
use kubestep_core::invocation::{BadInvocation, SUBCOMMAND, TaskInvocation};
use kubestep_core::parallel::Member;

/// Why a task did not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not one the orchestrator writes.
    #[error(transparent)]
    Invocation(#[from] BadInvocation),
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
    /// A multi-node step's variables do not say where this member stands.
    #[error("cannot tell this member's place in its multi-node step: {0}")]
    Member(#[from] kubestep_core::parallel::BadVar),
    /// A worker could not reach its control member in time.
    #[error(
        "the control member {addr} {what} within {seconds} s (hostname_resolution_timeout): {last}"
    )]
    ControlUnreachable {
        /// `host` or `host:port`.
        addr: String,
        /// `did not resolve` or `did not accept connections`.
        what: &'static str,
        /// The timeout.
        seconds: u64,
        /// The last error seen.
        last: String,
    },
}

/// Runs one task in this process: what the hidden `step` command does.
///
/// # Errors
/// An unknown step, the datastore, or the step itself; the message is the task's cause.
pub async fn run(flow: &Flow, inv: &TaskInvocation) -> Result<(), Error> {
    exit_on_sigterm();
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
    if let Some(decl) = flow.step(&inv.step)
        && let Ok(spec) = kubestep_core::spec::StepSpec::from_decorators(decl.decorators)
        && let Some(t) = spec.timeout
    {
        exit_after(&inv.step, t.seconds);
    }
    crate::current::set_task(crate::current::Task {
        step: inv.step.clone(),
        run_id: inv.run_id.clone(),
        task_id: inv.task_id.clone(),
        attempt: inv.attempt,
    });
    let ds = Datastore::open(inv.store, &inv.store_root, flow.name())?;
    let input = ds.get_artifact(&inv.input).await?;
    if let Some(member) = crate::current::parallel()?
        && !member.is_control()
    {
        let control = Key::AttemptResult(TaskPath::new(&inv.run_id, &inv.step, "0"), inv.attempt);
        wait_for_control(&member, &ds, &control).await?;
    }
    let output = runner(input).await?;
    let id = ds.put_chunks(output).await?;
    let task = TaskPath::new(&inv.run_id, &inv.step, &inv.task_id);
    ds.put_record(
        &Key::AttemptResult(task, inv.attempt),
        &AttemptResult {
            output: id,
            finished_ms: Some(datastore::now_ms()),
            pod: crate::current::pod().map(|p| datastore::AttemptPod {
                name: p.name,
                namespace: p.namespace,
                uid: p.uid,
                node: None,
                resources: None,
                marks: Vec::new(),
            }),
        },
    )
    .await?;
    Ok(())
}

/// Waits until the control member's name resolves (and, with a port, accepts a connection),
/// for at most the member's `hostname_resolution_timeout`: the control member's pod may start
/// later than this one, and its name exists only once it has an address. A control member that
/// already finished (its result, `control`, is recorded) ends the wait: its name is gone with
/// its pod, and there is nothing left to reach (a worker that started late, after waiting for a
/// node, meets this).
async fn wait_for_control(member: &Member, ds: &Datastore, control: &Key) -> Result<(), Error> {
    use std::time::Duration;
    use tokio::time::Instant;
    let seconds = member.resolution_timeout;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let host = member.main_addr.as_str();
    let started = Instant::now();
    eprintln!(
        "kubestep: {member}: waiting up to {seconds} s for the control member {host}{}",
        member
            .main_port
            .map(|p| format!(":{p}"))
            .unwrap_or_default()
    );
    let mut pause = Duration::from_millis(100);
    loop {
        let (what, last) =
            match tokio::net::lookup_host((host, member.main_port.unwrap_or(0))).await {
                Err(e) => ("did not resolve", e.to_string()),
                Ok(mut addrs) => match (addrs.next(), member.main_port) {
                    (None, _) => ("did not resolve", "no address".to_string()),
                    (Some(_), None) => break,
                    (Some(addr), Some(_)) => {
                        let connect = tokio::net::TcpStream::connect(addr);
                        match tokio::time::timeout(Duration::from_secs(2), connect).await {
                            Ok(Ok(_)) => break,
                            Ok(Err(e)) => ("did not accept connections", format!("{addr}: {e}")),
                            Err(_) => (
                                "did not accept connections",
                                format!("{addr}: no answer in 2 s"),
                            ),
                        }
                    }
                },
            };
        if ds.get_record::<AttemptResult>(control).await?.is_some() {
            eprintln!(
                "kubestep: {member}: the control member has already finished; not waiting for it"
            );
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::ControlUnreachable {
                addr: match member.main_port {
                    Some(p) if what != "did not resolve" => format!("{host}:{p}"),
                    _ => host.to_string(),
                },
                what,
                seconds,
                last,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    eprintln!(
        "kubestep: {member}: reached the control member after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The exit code of a task stopped by SIGTERM (128 + the signal, as a shell reports it).
pub const SIGTERM_EXIT: i32 = 128 + libc::SIGTERM;

/// The exit code of a task stopped by its own `#[timeout]` (as coreutils' `timeout` uses).
pub const TIMEOUT_EXIT: i32 = 124;

/// Whether a task that ended with `code` after printing `last_line` was stopped by its own
/// `#[timeout]` (a step that exits 124 itself was not).
pub fn stopped_by_timeout(code: Option<i32>, last_line: Option<&str>) -> bool {
    code == Some(TIMEOUT_EXIT) && last_line.is_some_and(|l| l.starts_with(TIMEOUT_MARK))
}

/// How the line the timer prints begins.
const TIMEOUT_MARK: &str = "kubestep: timed out after ";

/// Ends the process with [`TIMEOUT_EXIT`] after `seconds`, counted from here: the step's own
/// start, not its pod's (whose deadline would count the image pull and the binary's fetch). A
/// thread, not a task, so a step that blocks its runtime's workers is stopped all the same.
fn exit_after(step: &str, seconds: u64) {
    let line = format!("kubestep: {}", crate::executor::timed_out(step, seconds));
    debug_assert!(line.starts_with(TIMEOUT_MARK));
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        eprintln!("{line}");
        std::process::exit(TIMEOUT_EXIT);
    });
}

/// Makes SIGTERM end the task at once. As PID 1 of its container the process would otherwise
/// ignore it (the kernel gives a namespace's init no default action), and a deleted or drained
/// pod would linger for its whole grace period. Ending abruptly loses nothing: outputs and
/// records are written atomically, and a task without its result record has not succeeded.
fn exit_on_sigterm() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        // Only async-signal-safe calls here: write(2) and _exit(2).
        const LINE: &[u8] =
            b"kubestep: stopped by SIGTERM (its pod was deleted or its node drained)\n";
        // SAFETY: write and _exit are async-signal-safe; LINE is a static buffer of LINE.len()
        // bytes.
        unsafe {
            libc::write(2, LINE.as_ptr().cast(), LINE.len());
            libc::_exit(SIGTERM_EXIT);
        }
    }
    // SAFETY: installs a handler that makes only async-signal-safe calls.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// When this process was started to run one task (`<binary> step NAME ...`, what a pod runs),
/// runs it on the caller's runtime and returns the exit code; otherwise `None`. For programs
/// that embed steps without `.main()`.
pub async fn serve(flow: &Flow) -> Option<i32> {
    // Any program calls this first: its own arguments need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != SUBCOMMAND) {
        return None;
    }
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let result = match TaskInvocation::parse(&args) {
        Ok(inv) => run(flow, &inv).await,
        Err(e) => Err(e.into()),
    };
    Some(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_waits_for_the_control_members_name_until_it_finished() {
        let dir = std::env::temp_dir().join(format!("kubestep-task-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ds = Datastore::local(&dir, "f").unwrap();
        let member = Member {
            index: 1,
            size: 2,
            // `.invalid` never resolves (RFC 2606).
            main_addr: "control.invalid".into(),
            main_port: None,
            resolution_timeout: 1,
        };
        let control = Key::AttemptResult(TaskPath::new("r", "s", "0"), 0);
        let e = wait_for_control(&member, &ds, &control)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the control member control.invalid did not resolve within 1 s (hostname_resolution_timeout): "),
            "{e}"
        );
        let done = AttemptResult {
            output: "x".into(),
            finished_ms: None,
            pod: None,
        };
        ds.put_record(&control, &done).await.unwrap();
        wait_for_control(&member, &ds, &control).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
