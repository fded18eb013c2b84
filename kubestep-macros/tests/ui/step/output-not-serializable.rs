use kubestep::prelude::*;

struct Model;

#[step]
fn train() -> Model {
    Model
}

fn main() {}
