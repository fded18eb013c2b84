//! Every flow shape: a branch joined as a tuple, and a multi-node parallel step joined as a Vec.
//!
//! `cargo run --example flow_shapes -- show`, `cargo run --example flow_shapes -- render train`
use kubestep::prelude::*;

#[step]
fn start() -> u64 {
    10
}

#[step]
fn as_text(n: u64) -> String {
    n.to_string()
}

#[kubernetes(cpu = 2)]
fn as_float(n: u64) -> f64 {
    n as f64 / 3.0
}

#[step]
fn combine(pair: (String, f64)) -> u64 {
    pair.0.len() as u64 + pair.1 as u64
}

/// One of four members of a distributed job (one Indexed Job); workers wait until the control
/// member's name resolves through the gang's headless Service before this runs.
#[kubernetes(gpu = 1, hostname_resolution_timeout = 300)]
fn train(n: u64) -> u64 {
    n
}

#[step]
fn gather(all: Vec<u64>) -> u64 {
    all.iter().sum()
}

fn main() {
    Flow::new("shapes")
        .start(start)
        .branch((as_text, as_float))
        .join(combine)
        .parallel(train, 4)
        .join(gather)
        .main()
}
