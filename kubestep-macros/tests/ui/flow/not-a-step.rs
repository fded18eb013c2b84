use kubestep::prelude::*;

fn start() -> u64 {
    1
}

fn main() {
    Flow::new("f").start(start).main()
}
