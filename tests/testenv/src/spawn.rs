//! Child processes that cannot outlive the test environment.
//!
//! Every process is spawned from one thread that lives as long as the process, with
//! `PR_SET_PDEATHSIG = SIGKILL`: the signal fires when the spawning *thread* exits, so spawning
//! from a test or tokio worker thread would kill children early.

use std::os::unix::process::CommandExt;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (
    std::process::Command,
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
pub fn spawn(mut cmd: std::process::Command) -> std::io::Result<tokio::process::Child> {
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
