//! Node selection: a node selector as a string, another as a map, and a compute pool.
//!
//! `cargo run --example node_selector -- render`
use kubestep::prelude::*;

#[step]
fn start() -> u64 {
    7
}

#[kubernetes(node_selector = "kubernetes.io/os=linux,kubernetes.io/arch=amd64")]
fn on_linux(n: u64) -> u64 {
    n + 1
}

#[kubernetes(node_selector = { "disktype": "ssd", "topology.kubernetes.io/zone": "eu-west-1a" }, compute_pool = "batch")]
fn on_ssd(n: u64) -> u64 {
    n * 2
}

fn main() {
    Flow::new("node-selection")
        .start(start)
        .then(on_linux)
        .then(on_ssd)
        .main()
}
