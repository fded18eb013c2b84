use kubestep::prelude::*;

#[step]
fn id<T: Clone>(t: T) -> T {
    t
}

fn main() {}
