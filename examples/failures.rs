//! What failures look like when running locally: a flaky step rescued by `#[retry]`, and a
//! step that fails the way `FAIL` says (`panic`, `exit`, `error`, `hang`, or nothing).
//!
//! `cargo run --example failures -- run`, `FAIL=panic cargo run --example failures -- run`
use kubestep::prelude::*;

#[step]
fn start() -> u32 {
    3
}

/// Fails on its first attempt (it leaves a marker file), succeeds on the retry.
#[step]
#[retry(times = 2, minutes_between_retries = 0)]
fn flaky(n: u32) -> Result<u32, String> {
    let marker = std::env::temp_dir().join(format!(
        "kubestep-flaky-{}",
        std::env::var("FLAKY_ID").unwrap_or_default()
    ));
    if marker.exists() {
        Ok(n + 1)
    } else {
        std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
        Err("a transient failure".into())
    }
}

#[step]
#[timeout(seconds = 2)]
fn fragile(n: u32) -> Result<u32, std::io::Error> {
    println!("fragile got {n}");
    match std::env::var("FAIL").as_deref() {
        Ok("panic") => panic!("fragile panicked on {n}"),
        Ok("exit") => std::process::exit(3),
        Ok("error") => Err(std::io::Error::other(format!("no good: {n}"))),
        Ok("hang") => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        _ => Ok(n * 10),
    }
}

fn main() {
    Flow::new("failures")
        .start(start)
        .then(flaky)
        .then(fragile)
        .main()
}
