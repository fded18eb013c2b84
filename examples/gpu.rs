//! GPUs: a training step with two NVIDIA GPUs and shared memory for data loaders, and an
//! evaluation step that must stay off GPU nodes (`gpu = 0`).
//!
//! `cargo run --example gpu -- render`
use kubestep::prelude::*;

#[step]
fn start() -> Vec<f64> {
    vec![0.5, 1.5, 2.5]
}

#[kubernetes(
    gpu = 2,
    gpu_vendor = "nvidia",
    cpu = 8,
    memory = 32768,
    shared_memory = 4096
)]
#[timeout(hours = 6)]
fn train(data: Vec<f64>) -> f64 {
    data.iter().sum::<f64>() / data.len() as f64
}

#[kubernetes(gpu = 0, cpu = 2)]
fn evaluate(mean: f64) -> bool {
    mean > 1.0
}

fn main() {
    Flow::new("gpu-training")
        .start(start)
        .then(train)
        .then(evaluate)
        .main()
}
