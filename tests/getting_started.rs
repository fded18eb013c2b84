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

/// The README's way to bake the binary into an image: its `export` lines, as written, make
/// `render` put `square` in that image, running the baked path, with no init container.
#[test]
fn the_readmes_baked_binary_settings_render_as_it_says() {
    let exe = common::getting_started();
    let block = common::readme_block("bake");
    let exports: Vec<(String, String)> = block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(exports.len(), 2, "{block}");
    let env: Vec<(&str, &str)> = exports
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = common::run_program(&exe, &["render", "square"], &env);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        yaml.contains("image: registry.example.com/hello-kubestep:1"),
        "{yaml}"
    );
    assert!(yaml.contains("- /usr/local/bin/hello-kubestep"), "{yaml}");
    assert!(!yaml.contains("initContainers"), "{yaml}");
}
