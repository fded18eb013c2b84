//! Tolerations: a step that may run on tainted GPU and spot nodes.
//!
//! `cargo run --example tolerations -- render`
use kubestep::prelude::*;

#[step]
fn start() -> String {
    "hello".into()
}

#[kubernetes(
    tolerations = [
        { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
        { key: "spot", operator: "Equal", value: "true", effect: "NoExecute", toleration_seconds: 300 },
    ],
    node_selector = { "node.kubernetes.io/lifecycle": "spot" },
)]
fn shout(s: String) -> String {
    s.to_uppercase()
}

fn main() {
    Flow::new("tolerations").start(start).then(shout).main()
}
