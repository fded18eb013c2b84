//! How a step fails on Kubernetes, each way with its own cause: `--fail oom|exit|hang|disk` (and
//! `sleep`, a step that takes a few seconds, for eviction and Ctrl-C). Bad images, missing
//! secrets and unschedulable pods come from `--with`:
//!
//! ```text
//! cargo run --example kubernetes_failures -- run --with kubernetes --datastore s3 --fail oom
//! cargo run --example kubernetes_failures -- run --with kubernetes --datastore s3 \
//!     --with work/kubernetes:image=no-such-image:1
//! ```
//! The mode is a flow parameter, not an environment variable, because pods do not see the
//! launching shell's environment.
use kubestep::prelude::*;
use serde::{Deserialize, Serialize};

/// How `work` should fail.
#[derive(Debug, clap::Args, Serialize, Deserialize)]
struct Params {
    /// none, oom, exit, hang, disk or sleep.
    #[arg(long, default_value = "none")]
    fail: String,
}

#[step]
fn start(p: Params) -> String {
    p.fail
}

#[kubernetes(memory = 256)]
#[timeout(seconds = 45)]
fn work(mode: String) -> Result<String, String> {
    println!("work starts in mode {mode}");
    match mode.as_str() {
        "oom" => {
            // Touch every page, so the memory is really used, well past the 256 MB limit.
            let mut blocks = Vec::new();
            for _ in 0..64 {
                blocks.push(vec![1u8; 16 << 20]);
            }
            Ok(format!("{} blocks", blocks.len()))
        }
        "exit" => {
            eprintln!("work gives up: no input it can use");
            std::process::exit(3)
        }
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        "disk" => {
            // Well past `disk = 64` in the container's writable layer; the kubelet evicts the
            // pod within seconds where disk is a limit (qos Guaranteed).
            let block = vec![1u8; 16 << 20];
            for i in 0..16 {
                std::fs::write(format!("/tmp/fill-{i}"), &block).map_err(|e| e.to_string())?;
            }
            println!("work wrote 256 MB");
            std::thread::sleep(std::time::Duration::from_secs(30));
            Ok("not evicted".into())
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(6));
            Ok("slept".into())
        }
        _ => Ok(format!(
            "fine in pod {}",
            kubestep::pod().map(|p| p.name).unwrap_or_default()
        )),
    }
}

#[step]
fn end(s: String) -> String {
    s
}

fn main() {
    Flow::new("k8s-failures")
        .start_with_params(start)
        .then(work)
        .then(end)
        .main()
}
