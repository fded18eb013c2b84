//! The squares flow of the design: a foreach whose tasks run on Kubernetes.
//!
//! `cargo run --example basic -- show`, `cargo run --example basic -- render`
use kubestep::prelude::*;

#[step]
fn start() -> Result<Vec<u64>, std::io::Error> {
    Ok((1..=4).collect())
}

#[kubernetes(cpu = 2, memory = 4096, image = "debian:bookworm-slim")]
#[resources(memory = 8192)]
#[retry(times = 2)]
fn square(n: u64) -> Result<u64, std::io::Error> {
    Ok(n * n)
}

#[step]
fn end(squares: Vec<u64>) -> u64 {
    squares.iter().sum()
}

fn main() {
    Flow::new("squares")
        .start(start)
        .foreach(square)
        .join(end)
        .main()
}
