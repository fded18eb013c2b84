use kubestep::prelude::*;

#[step]
struct Train;

fn main() {}
