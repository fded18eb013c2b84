//! kubestep against Metaflow on the same flows, in one invocation: `cargo bench --bench vs_metaflow`.
//!
//! The peer is Metaflow 2.19 from PyPI (installed into `target/bench-venv` on first use), running
//! the flows in `benches/metaflow/`. This binary is also the kubestep flow binary: the flow it
//! runs is chosen by `KUBESTEP_BENCH_FLOW`, which its task processes inherit. Cases: a 10-step
//! line, a foreach over 100 items, and 256 MiB of f64 handed from one step to the next as users
//! write it: a bare `Vec<f64>`, a struct holding one beside its metadata, and a
//! `(f64, Vec<f64>)`, an ndarray `Array2<f64>` bare and in a struct (numpy's 2-D array in
//! Metaflow), an Arrow `RecordBatch` of an i64 and three f64 columns (the same pandas
//! `DataFrame` in Metaflow), each with random values (incompressible) and with the sequence 0, 1, 2, ...
//! (compressible). A hand-off is timed from the producing step's last line (its value built) to
//! the consuming step's first (its value in hand: Metaflow loads an artifact when it is first
//! touched, so its step touches it first); both write the wall clock to a file. The floor is
//! what the hand-off cannot beat on this machine: on each side, one copy of the bytes into fresh
//! memory and one BLAKE3 pass over them, measured here. Every run starts from an empty datastore
//! (both are content-addressed and would skip writing what an earlier run wrote), after a
//! `sync`. Peak RSS is the largest process of each
//! run (the step processes included).

mod metaflow;

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

/// Records the wall clock under `name` in the run's marks directory.
fn mark(name: &str) {
    if let Ok(dir) = std::env::var("HANDOFF_MARKS") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::fs::write(Path::new(&dir).join(name), now.to_string()).unwrap();
    }
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
/// The values handed over: random doubles (incompressible, like real measurements), or with
/// `HANDOFF_DATA=sequence` the sequence 0, 1, 2, ... (compressible); cheap to make either way.
fn values() -> Vec<f64> {
    if std::env::var("HANDOFF_DATA").as_deref() == Ok("sequence") {
        return (0..handoff_len()).map(|i| i as f64).collect();
    }
    metaflow::random_values(handoff_len())
}
#[step]
fn produce() -> Vec<f64> {
    let v = values();
    mark("produced");
    v
}
#[step]
fn consume(data: Vec<f64>) -> f64 {
    mark("consumed");
    data.iter().sum()
}
#[step]
fn finish(_total: f64) {}

/// A model as a step returns one: its weights beside their metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct Model {
    name: String,
    epoch: u32,
    weights: Vec<f64>,
}
#[step]
fn produce_struct() -> Model {
    let m = Model {
        name: "bench".into(),
        epoch: 3,
        weights: values(),
    };
    mark("produced");
    m
}
#[step]
fn consume_struct(m: Model) -> f64 {
    mark("consumed");
    m.weights.iter().sum::<f64>() + f64::from(m.epoch) + m.name.len() as f64
}
#[step]
fn produce_tuple() -> (f64, Vec<f64>) {
    let t = (1.5, values());
    mark("produced");
    t
}
#[step]
fn consume_tuple(t: (f64, Vec<f64>)) -> f64 {
    mark("consumed");
    t.0 + t.1.iter().sum::<f64>()
}

/// 256 MiB as a matrix of 1024 columns, as ndarray users hold it.
fn matrix() -> ndarray::Array2<f64> {
    let v = values();
    ndarray::Array2::from_shape_vec((v.len() / 1024, 1024), v).unwrap()
}
#[step]
fn produce_array() -> ndarray::Array2<f64> {
    let a = matrix();
    mark("produced");
    a
}
#[step]
fn consume_array(a: ndarray::Array2<f64>) -> f64 {
    mark("consumed");
    a.sum()
}
/// A model whose weights are an ndarray matrix: serde's path, element by element on the way in.
#[derive(serde::Serialize, serde::Deserialize)]
struct MatrixModel {
    name: String,
    weights: ndarray::Array2<f64>,
}
#[step]
fn produce_array_struct() -> MatrixModel {
    let m = MatrixModel {
        name: "bench".into(),
        weights: matrix(),
    };
    mark("produced");
    m
}
#[step]
fn consume_array_struct(m: MatrixModel) -> f64 {
    mark("consumed");
    m.weights.sum() + m.name.len() as f64
}

/// 256 MiB as a table of 8 Mi rows: an `id` column of i64 and three f64 columns (`x`, `y`, `z`).
fn table() -> kubestep::arrow::Table {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    let v = values();
    let rows = v.len() / 4;
    let column = |i: usize| -> ArrayRef {
        std::sync::Arc::new(Float64Array::from(v[i * rows..(i + 1) * rows].to_vec()))
    };
    let id: ArrayRef = std::sync::Arc::new(Int64Array::from_iter_values(0..rows as i64));
    RecordBatch::try_from_iter([
        ("id", id),
        ("x", column(1)),
        ("y", column(2)),
        ("z", column(3)),
    ])
    .unwrap()
    .into()
}
#[step]
fn produce_table() -> kubestep::arrow::Table {
    let t = table();
    mark("produced");
    t
}
#[step]
fn consume_table(t: kubestep::arrow::Table) -> f64 {
    mark("consumed");
    let x = t.column_by_name("x").unwrap();
    let x = x
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    x.values().iter().sum::<f64>() + t.num_rows() as f64
}

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
        Ok("handoff_struct") => Flow::new("handoff_struct")
            .start(produce_struct)
            .then(consume_struct)
            .then(finish)
            .main(),
        Ok("handoff_tuple") => Flow::new("handoff_tuple")
            .start(produce_tuple)
            .then(consume_tuple)
            .then(finish)
            .main(),
        Ok("handoff_array") => Flow::new("handoff_array")
            .start(produce_array)
            .then(consume_array)
            .then(finish)
            .main(),
        Ok("handoff_table") => Flow::new("handoff_table")
            .start(produce_table)
            .then(consume_table)
            .then(finish)
            .main(),
        Ok("handoff_array_struct") => Flow::new("handoff_array_struct")
            .start(produce_array_struct)
            .then(consume_array_struct)
            .then(finish)
            .main(),
        _ => drive(),
    }
}

/// One run's wall time, hand-off time (when its steps marked one) and peak RSS (the largest
/// process of its tree, in bytes).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
struct Measured {
    wall: Duration,
    handoff: Option<Duration>,
    peak_rss: u64,
    /// The fastest and slowest of the runs this one is the median of.
    range: (Duration, Duration),
}

impl Measured {
    /// What the case is about: the hand-off when there is one, else the whole run.
    fn time(&self) -> Duration {
        self.handoff.unwrap_or(self.wall)
    }
}

fn time(mut cmd: Command, scratch: &Path, store: Option<&S3>) -> Measured {
    // Both datastores are content-addressed and skip writing what is already there: every run
    // starts empty, and with the last run's writes flushed, so none is timed against another's.
    for dir in ["kubestep", "metaflow", ".metaflow"] {
        let _ = std::fs::remove_dir_all(scratch.join(dir));
    }
    if let Some(moto) = store {
        moto.reset();
    }
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let marks = scratch.join("marks");
    let _ = std::fs::remove_dir_all(&marks);
    std::fs::create_dir_all(&marks).unwrap();
    cmd.env("HANDOFF_MARKS", &marks);
    // Into a file, not a pipe: nothing reads a pipe while wait4 waits.
    let log = std::env::temp_dir().join(format!("kubestep-bench-{}.log", std::process::id()));
    let began = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped below by wait4, which also reports its rusage"
    )]
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("bench log"))
        .spawn()
        .expect("run");
    let pid = child.id() as libc::pid_t;
    // wait4 rather than Child::wait: its rusage has the peak RSS of the child and of every
    // descendant it waited for (the step processes).
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; the pid is our unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = began.elapsed();
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status}):\n{stderr}"
    );
    let stamp = |name: &str| -> Option<u128> {
        std::fs::read_to_string(marks.join(name)).ok()?.parse().ok()
    };
    let handoff = stamp("produced").zip(stamp("consumed")).map(|(p, c)| {
        assert!(c >= p, "{cmd:?}: consumed before produced");
        Duration::from_nanos((c - p) as u64)
    });
    let time = handoff.unwrap_or(wall);
    Measured {
        wall,
        handoff,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        range: (time, time),
    }
}

/// The run of median time.
fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by_key(Measured::time);
    Measured {
        range: (v[0].time(), v[v.len() - 1].time()),
        ..v[v.len() / 2]
    }
}

/// The hand-off's floor for `bytes` on this machine: on each side, one copy into fresh memory
/// (faults included, on huge pages as the codec asks) and one BLAKE3 pass on every core, as the
/// datastore hashes. The median of 5.
fn floor(bytes: usize) -> Duration {
    let src: Vec<u8> = (0..bytes).map(|i| (i * 7) as u8).collect();
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let began = Instant::now();
            let mut dst: Vec<u8> = Vec::with_capacity(bytes);
            // SAFETY: advice on the fresh allocation's own pages; changes no contents.
            unsafe {
                libc::madvise(dst.as_mut_ptr().cast(), bytes, libc::MADV_HUGEPAGE);
            }
            dst.extend_from_slice(&src);
            std::hint::black_box(blake3::Hasher::new().update_rayon(&dst).finalize());
            began.elapsed()
        })
        .collect();
    times.sort();
    times[2] * 2
}

/// What a case sets in the environment of both systems' processes.
type Env<'a> = &'a [(&'a str, &'a str)];

fn kubestep(flow: &str, env: Env, scratch: &Path, store: Option<&S3>, runs: usize) -> Measured {
    let exe = std::env::current_exe().unwrap();
    median(
        (0..runs)
            .map(|_| {
                let mut cmd = Command::new(&exe);
                cmd.args(["run", "--local", "--quiet"])
                    .env("KUBESTEP_BENCH_FLOW", flow)
                    .envs(env.iter().copied());
                match store {
                    None => cmd.arg("--datastore-root").arg(scratch.join("kubestep")),
                    Some(moto) => cmd
                        .args(["--datastore", "s3", "--datastore-root"])
                        .arg(format!("s3://{}/kubestep", S3::BUCKET))
                        .envs(moto.env()),
                };
                time(cmd, scratch, store)
            })
            .collect(),
    )
}

fn metaflow(
    venv: &Path,
    file: &str,
    env: Env,
    scratch: &Path,
    store: Option<&S3>,
    runs: usize,
) -> Measured {
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
                    .env("METAFLOW_DEFAULT_METADATA", "local")
                    .envs(env.iter().copied());
                match store {
                    None => cmd
                        .env("METAFLOW_DEFAULT_DATASTORE", "local")
                        .env("METAFLOW_DATASTORE_SYSROOT_LOCAL", scratch.join("metaflow")),
                    Some(moto) => cmd
                        .env("METAFLOW_DEFAULT_DATASTORE", "s3")
                        .env(
                            "METAFLOW_DATASTORE_SYSROOT_S3",
                            format!("s3://{}/metaflow", S3::BUCKET),
                        )
                        .env("METAFLOW_S3_ENDPOINT_URL", &moto.endpoint)
                        .envs(moto.env()),
                };
                time(cmd, scratch, store)
            })
            .collect(),
    )
}

/// moto, the S3 emulator the test cluster installs (`tests/testenv/install.sh`), on loopback.
/// It keeps objects in memory, so every run starts by resetting it.
struct S3 {
    child: std::process::Child,
    endpoint: String,
    python: PathBuf,
}

impl S3 {
    const BUCKET: &str = "bench";

    fn start() -> S3 {
        let parts = kubestep_testenv::install().expect("tests/testenv/install.sh");
        let bin = parts.emulators.join("py/bin");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server");
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            python: bin.join("python"),
        }
    }

    /// What both systems' S3 clients read.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }

    /// Runs Python with boto3 against the emulator (`s3` is its client); returns stdout.
    fn python(&self, code: &str) -> String {
        let prelude = format!(
            "import boto3, time, urllib.request\n\
             s3 = boto3.client('s3', endpoint_url='{}')\n",
            self.endpoint
        );
        let out = Command::new(&self.python)
            .args(["-c", &(prelude + code)])
            .envs(self.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Empties the emulator and makes the bucket again.
    fn reset(&self) {
        self.python(&format!(
            "urllib.request.urlopen(urllib.request.Request('{}/moto-api/reset', method='POST'))\n\
             s3.create_bucket(Bucket='{}')",
            self.endpoint,
            S3::BUCKET
        ));
    }

    /// The emulator's own speed: a raw PUT and GET of `bytes` with boto3, the median of 3.
    fn raw_put_get(&self, bytes: usize) -> Duration {
        self.reset();
        let out = self.python(&format!(
            "data = bytes(range(256)) * ({bytes} // 256)\n\
             times = []\n\
             for i in range(3):\n    \
                 t = time.perf_counter()\n    \
                 s3.put_object(Bucket='{b}', Key=f'raw{{i}}', Body=data)\n    \
                 got = s3.get_object(Bucket='{b}', Key=f'raw{{i}}')['Body'].read()\n    \
                 times.append(time.perf_counter() - t)\n    \
                 assert len(got) == len(data)\n\
             print(sorted(times)[1])",
            b = S3::BUCKET
        ));
        Duration::from_secs_f64(out.trim().parse().unwrap())
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drive() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe bench binaries this way.
    }
    let venv = metaflow::venv();
    let scratch = std::env::temp_dir().join(format!("kubestep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!(
        "{:<44} {:>10} {:>13} {:>10} {:>7} {:>9} {:>10} {:>10}",
        "case (median of runs)",
        "kubestep",
        "(range)",
        "Metaflow",
        "ratio",
        "floor",
        "RSS ks",
        "RSS mf"
    );
    let row = |name: &str, k: Measured, m: Measured, floor: Option<Duration>| {
        let floor = floor.map_or("-".to_string(), |f| {
            format!("{:.2}x", k.time().as_secs_f64() / f.as_secs_f64())
        });
        let range = format!(
            "({:.2}-{:.2})",
            k.range.0.as_secs_f64(),
            k.range.1.as_secs_f64()
        );
        println!(
            "{name:<44} {:>8.3} s {range:>13} {:>8.3} s {:>6.1}x {floor:>9} {:>7} MB {:>7} MB",
            k.time().as_secs_f64(),
            m.time().as_secs_f64(),
            m.time().as_secs_f64() / k.time().as_secs_f64().max(1e-9),
            k.peak_rss >> 20,
            m.peak_rss >> 20,
        );
    };
    let none: Env = &[("HANDOFF_MIB", "0")];
    let k = kubestep("linear10", none, &scratch, None, runs);
    let m = metaflow(&venv, "linear10.py", none, &scratch, None, runs.min(2));
    row("10-step linear flow", k, m, None);
    let k = kubestep("foreach100", none, &scratch, None, runs);
    let m = metaflow(&venv, "foreach100.py", none, &scratch, None, 1);
    row("foreach over 100 items", k, m, None);
    let floor = floor(256 << 20);
    println!(
        "hand-offs: from the producer's last line to the consumer's first; floor {:.3} s \
         (a copy and a BLAKE3 pass on each side), the column is kubestep / floor",
        floor.as_secs_f64()
    );
    let shapes = [
        ("bare", "handoff", "Vec<f64>"),
        (
            "struct",
            "handoff_struct",
            "struct { String, u32, Vec<f64> }",
        ),
        ("tuple", "handoff_tuple", "(f64, Vec<f64>)"),
        ("ndarray", "handoff_array", "ndarray Array2<f64>"),
        (
            "ndarray_struct",
            "handoff_array_struct",
            "struct { String, Array2<f64> }",
        ),
        ("table", "handoff_table", "Arrow RecordBatch (4 columns)"),
    ];
    let moto = S3::start();
    for store in [None, Some(&moto)] {
        if store.is_some() {
            println!(
                "the same in S3 (moto on loopback, in memory): the emulator alone takes {:.3} s \
                 for a raw PUT and GET of 256 MiB (boto3)",
                moto.raw_put_get(256 << 20).as_secs_f64()
            );
        }
        for (shape, flow, what) in shapes {
            for data in ["random", "sequence"] {
                let env: Env = &[
                    ("HANDOFF_MIB", "256"),
                    ("HANDOFF_DATA", data),
                    ("HANDOFF_SHAPE", shape),
                ];
                let k = kubestep(flow, env, &scratch, store, runs);
                let m = metaflow(&venv, "handoff.py", env, &scratch, store, 1);
                let place = if store.is_some() { "S3" } else { "disk" };
                row(&format!("{place}: {what}, {data}"), k, m, Some(floor));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
