//! kubestep against Metaflow on the same flows, in one invocation: `cargo bench --bench vs_metaflow`.
//!
//! The peer is Metaflow 2.19 from PyPI (installed into `target/bench-venv` on first use), running
//! the flows in `benches/metaflow/`. This binary is also the kubestep flow binary: the flow it
//! runs is chosen by `KUBESTEP_BENCH_FLOW`, which its task processes inherit. Cases: a 10-step
//! line, a foreach over 100 items, and a 256 MiB `Vec<f64>` handed from one step to the next
//! (the hand-off alone is the flow's time minus the same flow handing over nothing).

use kubestep::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

macro_rules! add_one {
    ($($name:ident),*) => {$(
        #[step]
        fn $name(x: u64) -> u64 {
            x + 1
        }
    )*};
}

#[step]
fn start() -> u64 {
    0
}
add_one!(s1, s2, s3, s4, s5, s6, s7, s8);
#[step]
fn end(x: u64) -> u64 {
    assert_eq!(x, 8);
    x
}

#[step]
fn items() -> Vec<u64> {
    (0..100).collect()
}
#[step]
fn square(i: u64) -> u64 {
    i * i
}
#[step]
fn total(squares: Vec<u64>) -> u64 {
    squares.iter().sum()
}
#[step]
fn done(t: u64) -> u64 {
    assert_eq!(t, (0..100u64).map(|i| i * i).sum::<u64>());
    t
}

fn handoff_len() -> usize {
    std::env::var("HANDOFF_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256usize)
        * 1024
        * 1024
        / 8
}
/// Random doubles (incompressible, like real measurements), cheap to make on both sides.
#[step]
fn produce() -> Vec<f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..handoff_len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}
#[step]
fn consume(data: Vec<f64>) -> f64 {
    data.iter().sum()
}
#[step]
fn finish(_total: f64) {}

fn main() {
    match std::env::var("KUBESTEP_BENCH_FLOW").as_deref() {
        Ok("linear10") => Flow::new("linear10")
            .start(start)
            .then(s1)
            .then(s2)
            .then(s3)
            .then(s4)
            .then(s5)
            .then(s6)
            .then(s7)
            .then(s8)
            .then(end)
            .main(),
        Ok("foreach100") => Flow::new("foreach100")
            .start(items)
            .foreach(square)
            .join(total)
            .then(done)
            .main(),
        Ok("handoff") => Flow::new("handoff")
            .start(produce)
            .then(consume)
            .then(finish)
            .main(),
        _ => drive(),
    }
}

fn venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/bench-venv");
    if !venv.join("bin/python").exists()
        || Command::new(venv.join("bin/python"))
            .args(["-c", "import metaflow, numpy"])
            .status()
            .map_or(true, |s| !s.success())
    {
        eprintln!("installing Metaflow 2.19 and numpy into {}", venv.display());
        assert!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        let ok = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "metaflow==2.19.39",
                "numpy",
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "pip install metaflow failed");
    }
    venv
}

fn time(mut cmd: Command) -> Duration {
    let began = Instant::now();
    let out = cmd.output().expect("run");
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn kubestep(flow: &str, mib: &str, scratch: &Path, runs: usize) -> Duration {
    let exe = std::env::current_exe().unwrap();
    median(
        (0..runs)
            .map(|_| {
                let mut cmd = Command::new(&exe);
                cmd.args(["run", "--local", "--quiet", "--datastore-root"])
                    .arg(scratch.join("kubestep"))
                    .env("KUBESTEP_BENCH_FLOW", flow)
                    .env("HANDOFF_MIB", mib);
                time(cmd)
            })
            .collect(),
    )
}

fn metaflow(venv: &Path, file: &str, mib: &str, scratch: &Path, runs: usize) -> Duration {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/metaflow")
        .join(file);
    median(
        (0..runs)
            .map(|_| {
                let mut cmd = Command::new(venv.join("bin/python"));
                cmd.arg(&script)
                    .args(["--quiet", "run"])
                    .current_dir(scratch)
                    .env("USERNAME", "bench")
                    .env("METAFLOW_DEFAULT_DATASTORE", "local")
                    .env("METAFLOW_DEFAULT_METADATA", "local")
                    .env("METAFLOW_DATASTORE_SYSROOT_LOCAL", scratch.join("metaflow"))
                    .env("HANDOFF_MIB", mib);
                time(cmd)
            })
            .collect(),
    )
}

fn drive() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe bench binaries this way.
    }
    let venv = venv();
    let scratch = std::env::temp_dir().join(format!("kubestep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "{:<34} {:>12} {:>12} {:>9}",
        "case (median of runs)", "kubestep", "Metaflow", "ratio"
    );
    let row = |name: &str, k: Duration, m: Duration| {
        println!(
            "{name:<34} {:>10.3} s {:>10.3} s {:>8.1}x",
            k.as_secs_f64(),
            m.as_secs_f64(),
            m.as_secs_f64() / k.as_secs_f64().max(1e-9)
        );
    };
    let k = kubestep("linear10", "0", &scratch, runs);
    let m = metaflow(&venv, "linear10.py", "0", &scratch, runs.min(2));
    row("10-step linear flow", k, m);
    let k = kubestep("foreach100", "0", &scratch, runs);
    let m = metaflow(&venv, "foreach100.py", "0", &scratch, 1);
    row("foreach over 100 items", k, m);
    let (k_full, k_base) = (
        kubestep("handoff", "256", &scratch, runs),
        kubestep("handoff", "0", &scratch, runs),
    );
    let (m_full, m_base) = (
        metaflow(&venv, "handoff.py", "256", &scratch, 1),
        metaflow(&venv, "handoff.py", "0", &scratch, 1),
    );
    row("256 MiB hand-off: whole flow", k_full, m_full);
    row(
        "256 MiB hand-off alone",
        k_full.saturating_sub(k_base),
        m_full.saturating_sub(m_base),
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
