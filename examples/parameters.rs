//! Flow parameters: the start step takes a struct deriving `clap::Args` and serde's traits, and
//! `run` accepts its options.
//!
//! `cargo run --example parameters -- run --alpha 0.5 --n 4`, `cargo run --example parameters -- show`
use kubestep::prelude::*;
use serde::{Deserialize, Serialize};

/// What the flow is run with.
#[derive(Debug, clap::Args, Serialize, Deserialize)]
struct Params {
    /// Scale of each item.
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// How many items.
    #[arg(long, default_value_t = 3)]
    n: u32,
}

#[step]
fn start(p: Params) -> Vec<f64> {
    (0..p.n).map(|i| f64::from(i) * p.alpha).collect()
}

#[step]
fn end(items: Vec<f64>) -> f64 {
    items.iter().sum()
}

fn main() {
    Flow::new("parameters")
        .start_with_params(start)
        .then(end)
        .main()
}
