//! A step run on Kubernetes from an ordinary tokio program, without `Flow::main()`: the pod
//! re-launches this binary, which `serve()` turns into the step; the program awaits the typed
//! output.
//!
//! `KUBESTEP_S3_ROOT=s3://bucket/prefix cargo run --example embedded`
use kubestep::datastore::{Datastore, Kind};
use kubestep::embed::Steps;
use kubestep::prelude::*;

#[kubernetes(cpu = 1, memory = 512)]
fn square(n: u64) -> u64 {
    println!(
        "squaring {n} in pod {}",
        kubestep::pod().map(|p| p.name).unwrap_or_default()
    );
    n * n
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = Steps::new("embedded").with(square);
    // In the pod this runs the task and exits; here it returns at once.
    steps.serve().await;
    let root = std::env::var("KUBESTEP_S3_ROOT").map_err(|_| "set KUBESTEP_S3_ROOT")?;
    let remote = steps
        .connect(Datastore::open(Kind::S3, &root, "embedded")?)
        .await?;
    let (a, b) = tokio::join!(remote.run(square, 3), remote.run(square, 4));
    println!("3 squared is {}, 4 squared is {}", a?, b?);
    remote.close().await;
    Ok(())
}
