//! One line for an error and its causes: how every error reaches a user or a record.
//!
//! Our error types say their own context and leave their cause to `source()`; some of the
//! libraries below (object_store, kube) repeat theirs in their message. `report` walks the chain
//! and says each cause once, on one line, because the parent of a `step` process reads the
//! task's last line as its cause.

use std::error::Error;

/// `error: cause: deeper cause`, each cause that the text so far does not already contain. Of a
/// message on several lines (a YAML parser's, which draws the offending line under its own)
/// only the first is kept: it says what and where.
pub fn report(error: &dyn Error) -> String {
    let first_line = |e: &dyn Error| e.to_string().lines().next().unwrap_or_default().to_string();
    let mut text = first_line(error);
    let mut source = error.source();
    while let Some(cause) = source {
        let more = first_line(cause);
        if !more.is_empty() && !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn every_cause_once() {
        assert_eq!(report(&Outer(Middle(Inner))), "outer: middle: inner");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad kubeconfig")]
    struct Parse(#[source] Drawn);

    #[derive(Debug, thiserror::Error)]
    #[error("line 1 column 6: unclosed bracket\n  |\n1 | not: [yaml\n  |      ^ here")]
    struct Drawn;

    #[test]
    fn a_message_on_several_lines_keeps_its_first() {
        assert_eq!(
            report(&Parse(Drawn)),
            "bad kubeconfig: line 1 column 6: unclosed bracket"
        );
    }
}
