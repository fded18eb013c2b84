//! The README's "Your own flow in five minutes", word for word: a fresh crate from its
//! `Cargo.toml` and `src/main.rs` builds and runs locally (tests/kubernetes.rs runs it on the
//! cluster), and leaving out the `k8s-openapi` line fails with the message that says to add it.

mod common;

#[test]
fn the_readmes_crate_builds_and_runs_locally() {
    let exe = common::getting_started();
    let dir = std::env::temp_dir().join(format!("kubestep-getting-started-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("store");
    let out = common::run_program(
        &exe,
        &["run", "--local", "--datastore-root", root.to_str().unwrap()],
        &[],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[end/0] sum of squares: 385"), "{all}");
    assert!(all.contains("[progress] square: 10/10 done"), "{all}");
    // `show` says `square` runs on Kubernetes with the README's resources.
    let out = common::run_program(&exe, &["show"], &[]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("#[kubernetes(cpu = 1, memory = 512)]"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_the_version_feature_the_build_says_what_to_add() {
    let full = common::readme_block("Cargo.toml");
    let without: String = full
        .lines()
        .filter(|l| !l.starts_with("k8s-openapi"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(full, without, "the README's Cargo.toml names k8s-openapi");
    let (out, _) = common::build_crate("getting-started-no-feature", &without);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("None of the v1_* features are enabled on the k8s-openapi crate")
            && stderr
                .contains("add a dependency on k8s-openapi and enable the corresponding feature"),
        "{stderr}"
    );
}
