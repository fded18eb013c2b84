//! The local executor: each task attempt is a child process of this same binary running the
//! hidden `step` command, exactly what a pod runs. A crash or panic fails the task, never the
//! orchestrator. Output lines are streamed live with a `[step/task]` prefix and saved. A
//! multi-node step's gang is its members' processes side by side on this machine, each told its
//! rank and the control address `127.0.0.1`, as pods are told theirs.

use super::{Ended, Executor, GangEnded, GangSpec, Outcome, RunContext, TaskSpec};
use futures::future::BoxFuture;
use kubestep_core::parallel::Member;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Mutex;

/// A task's process group, killed when the task ends or is dropped (a failed sibling, Ctrl-C).
struct Group(Option<i32>);

impl Group {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill has no memory-safety preconditions; a negative pid names the group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs tasks as local processes.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    /// This binary.
    pub exe: PathBuf,
    /// The run's datastore and output.
    pub ctx: RunContext,
    /// The `KUBESTEP_KUBERNETES_*` defaults: a gang's `port` and `hostname_resolution_timeout`
    /// resolve as they would on Kubernetes.
    pub defaults: kubestep_core::resolve::Defaults,
}

impl Executor for LocalExecutor {
    fn run<'a>(&'a self, task: &'a TaskSpec) -> BoxFuture<'a, Ended> {
        Box::pin(async move { self.attempt(task, None, None).await.into() })
    }

    fn run_gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
        Box::pin(async move {
            let step = match kubestep_core::resolve::resolve(gang.step, &self.defaults, &[]) {
                Ok(s) => s,
                Err(e) => return GangEnded::failed(gang.size as usize, e.to_string()),
            };
            let shared = Member {
                index: 0,
                size: gang.size,
                main_addr: "127.0.0.1".into(),
                main_port: step.port.as_ref().map(|p| p.value),
                resolution_timeout: step.hostname_resolution_timeout.value,
            };
            super::run_members(gang, |task, stop| {
                let member = Member {
                    index: task
                        .task_id
                        .parse()
                        .expect("a member's task id is its rank"),
                    ..shared.clone()
                };
                async move { self.attempt(&task, Some(&member), Some(stop)).await.into() }
            })
            .await
        })
    }
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    prefix: String,
    echo: Option<&crate::progress::Progress>,
    to_stderr: bool,
    log: &Mutex<Vec<u8>>,
) {
    // Raw lines: a step may print bytes that are not UTF-8; the pipe must stay open regardless.
    let mut lines = BufReader::new(stream).split(b'\n');
    while let Ok(Some(raw)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&raw);
        if let Some(p) = echo {
            p.println(&format!("{prefix}{line}"), to_stderr);
        }
        let mut log = log.lock().await;
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
}

impl LocalExecutor {
    /// Runs one attempt; a gang's member gets its variables, and ends when `stop` turns true.
    async fn attempt(
        &self,
        task: &TaskSpec,
        member: Option<&Member>,
        mut stop: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Outcome {
        let ctx = &self.ctx;
        let mut cmd = tokio::process::Command::new(&self.exe);
        if let Some(m) = member {
            cmd.envs(m.env());
        }
        cmd.args(ctx.invocation(task).to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout, a cancelled stage or Ctrl-C ends everything the
            // step started, not just the step.
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("cannot start {}: {e}", self.exe.display())),
        };
        let group = Group(child.id().map(|p| p as i32));
        let prefix = format!("[{}/{}] ", task.step.name, task.task_id);
        let log = Mutex::new(Vec::new());
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let echo = ctx.echo.then_some(&*ctx.progress);
        let mut stopped = false;
        let waited = async {
            let ended = tokio::select! {
                status = async {
                    match task.timeout {
                        // The task stops itself at its timeout (`task::TIMEOUT_EXIT`); this is
                        // the backstop for one that cannot.
                        Some(t) => tokio::time::timeout(t + Duration::from_secs(5), child.wait())
                            .await
                            .ok(),
                        None => Some(child.wait().await),
                    }
                } => Some(status),
                () = super::stopped(stop.as_mut()) => None,
            };
            let status = match ended {
                Some(status) => status,
                // Another member of its gang failed: this one ends now, its output kept.
                None => {
                    stopped = true;
                    group.kill();
                    Some(child.wait().await)
                }
            };
            // Whatever the step left running (and holding its pipes) ends with it.
            group.kill();
            status
        };
        let (status, _, _) = tokio::join!(
            waited,
            pump(out, prefix.clone(), echo, false, &log),
            pump(err, prefix.clone(), echo, true, &log)
        );
        let timed_out =
            || super::timed_out(task.step.name, task.timeout.map_or(0, |t| t.as_secs()));
        let log = log.into_inner();
        let last_line = super::last_line(&log);
        ctx.save_log(task, log).await;
        if stopped {
            return Outcome::Failed("stopped with its gang".into());
        }
        let status = match status {
            None => return Outcome::Failed(timed_out()),
            Some(Err(e)) => {
                return Outcome::Failed(format!("cannot wait for the task process: {e}"));
            }
            Some(Ok(s)) => s,
        };
        if status.success() {
            return ctx.attempt_output(task).await;
        }
        if crate::task::stopped_by_timeout(status.code(), last_line.as_deref()) {
            return Outcome::Failed(timed_out());
        }
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "ended abnormally".into(),
        };
        Outcome::Failed(match last_line {
            // The `step` command's own "error: " prefix adds nothing to the cause.
            Some(l) => format!("{how}: {}", l.strip_prefix("error: ").unwrap_or(&l)),
            None => how,
        })
    }
}
