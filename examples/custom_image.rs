//! A custom image from a private registry, pulled with a registry Secret, in its own
//! namespace and ServiceAccount.
//!
//! `cargo run --example custom_image -- render`
use kubestep::prelude::*;

#[step]
fn start() -> Vec<u32> {
    vec![3, 1, 2]
}

#[kubernetes(
    image = "registry.example.com/acme/sorter:1.4",
    image_pull_policy = "IfNotPresent",
    image_pull_secrets = ["regcred"],
    namespace = "data",
    service_account = "sorter",
)]
fn sort(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

fn main() {
    Flow::new("custom-image").start(start).then(sort).main()
}
