use kubestep::prelude::*;

#[step]
fn start() -> u64 {
    4
}

#[step]
fn square(n: u64) -> u64 {
    n * n
}

#[step]
fn end(v: Vec<u64>) -> u64 {
    v.iter().sum()
}

fn main() {
    Flow::new("f").start(start).foreach(square).join(end).main()
}
