use kubestep::prelude::*;

#[step]
fn start() -> String {
    "x".into()
}

#[step]
fn end(n: u64) -> u64 {
    n
}

fn main() {
    Flow::new("f").start(start).then(end).main()
}
