//! The environment's processes: long-running ones that cannot outlive it, each logging to a
//! file of its own, and short commands whose failure is an error naming them.
//!
//! Every long-running process is spawned from one thread that lives as long as the process, with
//! `PR_SET_PDEATHSIG = SIGKILL`: the signal fires when the spawning *thread* exits, so spawning
//! from a test or tokio worker thread would kill children early.

use crate::Error;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Request = (
    Command,
    tokio::runtime::Handle,
    mpsc::Sender<std::io::Result<tokio::process::Child>>,
);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testenv-spawner".into())
            .spawn(move || {
                for (cmd, handle, reply) in rx {
                    let _guard = handle.enter();
                    let mut cmd = tokio::process::Command::from(cmd);
                    cmd.kill_on_drop(true);
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the testenv spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it is killed when this process ends, however it ends.
pub fn spawn(mut cmd: Command) -> std::io::Result<tokio::process::Child> {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Its own process group, so a terminal's Ctrl-C reaches only the environment's owner.
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    let handle = tokio::runtime::Handle::current();
    spawner()
        .lock()
        .expect("spawner lock")
        .send((cmd, handle, tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

/// Starts `cmd` as component `name` of the environment, its stdout and stderr in
/// `dir/<name>.log`.
pub fn start(dir: &Path, name: &str, mut cmd: Command) -> Result<tokio::process::Child, Error> {
    let path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let log2 = log.try_clone().map_err(|e| Error::io(&path, e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    spawn(cmd).map_err(|e| Error::Setup(format!("cannot start {name}: {e}")))
}

/// Runs `cmd` to its end; its stdout, or an error with the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>, Error> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|e| Error::Setup(format!("cannot run {line}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Waits until something accepts connections at `addr`, for at most `seconds`; the error
/// names `what` and its log.
pub async fn wait_for_tcp(addr: &str, what: &str, seconds: u64, log: &Path) -> Result<(), Error> {
    for _ in 0..seconds * 20 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Setup(format!(
        "{what} did not listen on {addr} within {seconds} s; see {}",
        log.display()
    )))
}
