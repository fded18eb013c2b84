//! Labels and annotations on the Job and its pod, next to kubestep's own labels.
//!
//! `cargo run --example labels_annotations -- render`
use kubestep::prelude::*;

#[step]
fn start() -> u32 {
    1
}

#[kubernetes(
    labels = { "team": "ml", "app.kubernetes.io/part-of": "recommender", cost_center: "cc-42" },
    annotations = { "owner": "ana@example.com", "example.com/ticket": "ML-1234" },
)]
fn score(x: u32) -> u32 {
    x * 10
}

fn main() {
    Flow::new("labelled").start(start).then(score).main()
}
