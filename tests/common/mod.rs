//! Running the example binaries the way a user would, with a clean kubestep environment.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing; `cargo test` builds the examples first",
        path.display()
    );
    path
}

/// Runs an example with `args`, with no `KUBESTEP_*` variable but those in `env`, so results do
/// not depend on the machine's environment.
pub fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args);
    for (k, _) in std::env::vars()
        .filter(|(k, _)| k.starts_with("KUBESTEP_") && k != "KUBESTEP_SCHEMA_VALIDATOR")
    {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run example")
}
