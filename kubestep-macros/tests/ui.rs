//! Compile-fail tests: one mistake per file, named after it, each with the exact diagnostic.
//!
//! Regenerate the `.stderr` snapshots after a deliberate change (or a new toolchain, whose
//! messages differ) with `TRYBUILD=overwrite cargo test -p kubestep-macros --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    for dir in [
        "kubernetes",
        "resources",
        "retry",
        "timeout",
        "step",
        "flow",
    ] {
        t.compile_fail(format!("tests/ui/{dir}/*.rs"));
    }
}
