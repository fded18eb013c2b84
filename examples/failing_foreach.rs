//! When one task of a foreach fails, the run stops at once: its siblings' processes are killed
//! and recorded as cancelled, and the run fails with the first cause.
//!
//! `cargo run --example failing_foreach -- run`
use kubestep::prelude::*;

#[step]
fn start() -> Vec<u32> {
    (0..4).collect()
}

#[step]
fn work(i: u32) -> Result<u32, String> {
    if i == 2 {
        return Err(format!("item {i} is broken"));
    }
    std::thread::sleep(std::time::Duration::from_secs(30));
    Ok(i)
}

#[step]
fn end(all: Vec<u32>) -> u32 {
    all.iter().sum()
}

fn main() {
    Flow::new("failing-foreach")
        .start(start)
        .foreach(work)
        .join(end)
        .main()
}
