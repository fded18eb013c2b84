//! Security context: run as a non-root user and group; kubestep adds no privilege escalation
//! and the RuntimeDefault seccomp profile unless told otherwise.
//!
//! `cargo run --example security_context -- render`
use kubestep::prelude::*;

#[step]
fn start() -> u8 {
    1
}

#[kubernetes(security_context = { run_as_non_root: true, run_as_user: 1000, run_as_group: 1000, allow_privilege_escalation: false })]
fn locked_down(x: u8) -> u8 {
    x
}

fn main() {
    Flow::new("secure").start(start).then(locked_down).main()
}
