//! `cargo run -p kubestep-testenv -- up|down|status`: the test cluster for a shell.
//!
//! `up` starts a detached supervisor (`serve`) and, once the cluster is ready, prints
//! `export NAME=value` lines for `eval`; `down` stops it and everything it started.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "kubestep's test cluster: a current Kubernetes with real nodes on this machine")]
struct Cli {
    /// State directory of the environment.
    #[arg(long, env = "KUBESTEP_TESTENV_DIR", default_value_os_t = std::env::temp_dir().join("kubestep-testenv"))]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the cluster in the background and print the `export` lines to `eval`.
    Up,
    /// Stop the cluster and every process it started.
    Down,
    /// Say whether the cluster runs, and the version of every part.
    Status,
    /// Run kubectl (built with the cluster) against the running cluster as its admin.
    #[command(disable_help_flag = true)]
    Kubectl {
        /// kubectl's own arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the cluster in the foreground until SIGTERM or SIGINT (what `up` starts).
    #[command(hide = true)]
    Serve,
}

fn pid_of(dir: &std::path::Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("supervisor.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up => up(&cli.dir),
        Command::Down => down(&cli.dir),
        Command::Status => status(&cli.dir),
        Command::Kubectl { args } => kubectl(&cli.dir, &args),
        Command::Serve => serve(cli.dir.clone()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn status(dir: &std::path::Path) -> Result<(), String> {
    match pid_of(dir) {
        Some(pid) => println!("running (supervisor pid {pid}, state in {})", dir.display()),
        None => println!("not running"),
    }
    let parts = kubestep_testenv::install().map_err(|e| e.to_string())?;
    for (part, version) in &parts.versions {
        println!("{part:<28} {version}");
    }
    Ok(())
}

fn kubectl(dir: &std::path::Path, args: &[String]) -> Result<(), String> {
    let parts = kubestep_testenv::install().map_err(|e| e.to_string())?;
    let status = std::process::Command::new(&parts.kube)
        .arg("kubectl")
        .args(args)
        .env("KUBECONFIG", dir.join("cluster/kubeconfig"))
        .status()
        .map_err(|e| format!("{}: {e}", parts.kube.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        _ => std::process::exit(status.code().unwrap_or(1)),
    }
}

fn up(dir: &std::path::Path) -> Result<(), String> {
    if pid_of(dir).is_some() {
        return Err(format!(
            "already running (state in {}); run `down` first",
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("supervisor.log")).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--dir")
        .arg(dir)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from this shell.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let ready = dir.join("exports");
    for _ in 0..3000 {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            print!("{text}");
            return Ok(());
        }
        // Reaped here, or a supervisor that failed would linger as a zombie that looks alive.
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
    Err(format!("the cluster did not start; supervisor log:\n{log}"))
}

fn down(dir: &std::path::Path) -> Result<(), String> {
    let Some(pid) = pid_of(dir) else {
        println!("not running");
        return Ok(());
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    for _ in 0..150 {
        if pid_of(dir).is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    Ok(())
}

fn serve(dir: PathBuf) -> Result<(), String> {
    std::fs::write(dir.join("supervisor.pid"), std::process::id().to_string())
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let options = kubestep_testenv::Options {
            dir: Some(dir.join("cluster")),
            ..Default::default()
        };
        let env = kubestep_testenv::TestEnv::start(options)
            .await
            .map_err(|e| e.to_string())?;
        let exports: String = env
            .exports()
            .iter()
            .map(|(k, v)| format!("export {k}='{v}'\n"))
            .collect();
        std::fs::write(dir.join("exports"), exports).map_err(|e| e.to_string())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        env.stop().await;
        let _ = std::fs::remove_file(dir.join("supervisor.pid"));
        Ok(())
    })
}
