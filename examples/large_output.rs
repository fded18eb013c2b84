//! A large output handed from one step to the next: `BIG_MIB` MiB of `f64` (default 64),
//! stored once under its content address and checked when read.
//!
//! `cargo run --release --example large_output -- run`
use kubestep::prelude::*;

fn len() -> usize {
    std::env::var("BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64usize)
        * 1024
        * 1024
        / 8
}

#[step]
fn start() -> Vec<f64> {
    (0..len()).map(|i| (i % 1000) as f64 * 0.001).collect()
}

#[step]
fn end(data: Vec<f64>) -> f64 {
    data.iter().sum()
}

fn main() {
    Flow::new("large").start(start).then(end).main()
}
