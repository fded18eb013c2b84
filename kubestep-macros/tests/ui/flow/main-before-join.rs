use kubestep::prelude::*;

#[step]
fn start() -> Vec<u64> {
    vec![1, 2]
}

#[step]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    Flow::new("f").start(start).foreach(square).main()
}
