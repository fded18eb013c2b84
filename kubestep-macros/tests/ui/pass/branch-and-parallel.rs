use kubestep::prelude::*;

#[step]
fn start() -> u64 {
    1
}

#[step]
fn a(n: u64) -> String {
    n.to_string()
}

#[kubernetes(gpu = 0)]
fn b(n: u64) -> f64 {
    n as f64
}

#[step]
fn both(pair: (String, f64)) -> u64 {
    pair.0.len() as u64 + pair.1 as u64
}

#[kubernetes(port = 29500)]
fn train(n: u64) -> u64 {
    n
}

#[step]
fn gather(all: Vec<u64>) -> u64 {
    all.iter().sum()
}

fn main() {
    let _flow = Flow::new("shapes").start(start).branch((a, b)).join(both).parallel(train, 4).join(gather).build();
}
