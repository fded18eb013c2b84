//! The flow the reliability suite (`tests/reliability.rs`) disturbs: Kubernetes steps before, in
//! and after a foreach of 20 items whose first attempts take a few seconds each, so a fault
//! lands while tasks run. Each item's output names the attempt and the pod that made it.
//!
//! `cargo run --example reliability -- run --items 20 --seconds 10` (on a cluster)
use kubestep::prelude::*;
use serde::{Deserialize, Serialize};

/// The flow's parameters.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Params {
    /// How many items the foreach runs.
    #[arg(long, default_value_t = 20)]
    pub items: u32,
    /// Seconds each item's first attempt takes (a retry takes one).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// One item of the foreach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Its place in the list.
    pub index: u32,
    /// How long its first attempt takes.
    pub seconds: u64,
}

/// What an item's task made, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The item's index.
    pub index: u32,
    /// Its square.
    pub square: u64,
    /// The attempt that made it.
    pub attempt: u32,
    /// The pod it ran in.
    pub pod: String,
}

#[step]
fn start(p: Params) -> Params {
    p
}

#[kubernetes(cpu = 0.1, memory = 128)]
fn plan(p: Params) -> Vec<Item> {
    (0..p.items)
        .map(|index| Item {
            index,
            seconds: p.seconds,
        })
        .collect()
}

#[kubernetes(cpu = 0.1, memory = 128)]
#[retry(times = 1, minutes_between_retries = 0)]
fn work(item: Item) -> Done {
    let attempt = kubestep::current::task().map_or(0, |t| t.attempt);
    let seconds = if attempt == 0 { item.seconds } else { 1 };
    println!("item {} attempt {attempt}: {seconds} s", item.index);
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    Done {
        index: item.index,
        square: u64::from(item.index) * u64::from(item.index),
        attempt,
        pod: kubestep::pod().map(|p| p.name).unwrap_or_default(),
    }
}

/// The sum of the squares, once every item is there exactly once.
#[kubernetes(cpu = 0.1, memory = 128)]
fn total(done: Vec<Done>) -> Result<u64, String> {
    for (i, d) in done.iter().enumerate() {
        if d.index as usize != i {
            return Err(format!("item {i} holds the output of item {}", d.index));
        }
    }
    Ok(done.iter().map(|d| d.square).sum())
}

fn main() {
    Flow::new("reliability")
        .start_with_params(start)
        .then(plan)
        .foreach(work)
        .join(total)
        .main()
}
