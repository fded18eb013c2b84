//! How a task is launched: the hidden `step` command line that a local child process and a
//! Kubernetes pod both run, built here and only here (the runtime's clap definition parses it,
//! and a test keeps the two in step).

use std::fmt;
use std::str::FromStr;

/// The hidden subcommand that runs one task.
pub const SUBCOMMAND: &str = "step";

/// Where a datastore lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// A local directory.
    Local,
    /// S3 or an S3-compatible store (`s3://bucket/prefix`; settings from `AWS_*`).
    S3,
    /// Azure Blob Storage (`az://container/prefix`; settings from `AZURE_*`).
    Azure,
    /// Google Cloud Storage (`gs://bucket/prefix`; settings from `GOOGLE_*`).
    Gs,
}

impl StoreKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [StoreKind; 4] = [
        StoreKind::Local,
        StoreKind::S3,
        StoreKind::Azure,
        StoreKind::Gs,
    ];

    /// The name `--datastore` takes.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::S3 => "s3",
            StoreKind::Azure => "azure",
            StoreKind::Gs => "gs",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--datastore` value that names no kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown datastore {0:?}: expected local, s3, azure or gs")]
pub struct UnknownStoreKind(pub String);

impl FromStr for StoreKind {
    type Err = UnknownStoreKind;
    fn from_str(s: &str) -> Result<StoreKind, UnknownStoreKind> {
        StoreKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownStoreKind(s.to_string()))
    }
}

/// One attempt of one task, as its process is told it: what runs, on which input, and where the
/// datastore is (always explicit, so the task never guesses a root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInvocation {
    /// The step.
    pub step: String,
    /// The run id.
    pub run_id: String,
    /// The task id within the step.
    pub task_id: String,
    /// The attempt, from 0.
    pub attempt: u32,
    /// The id of the input artifact.
    pub input: String,
    /// The datastore's kind.
    pub store: StoreKind,
    /// The datastore's root (a directory or a URL).
    pub store_root: String,
}

impl TaskInvocation {
    /// The arguments after the executable: `step NAME --run-id R --task-id T --attempt N
    /// --input I --datastore K --datastore-root ROOT`.
    pub fn to_args(&self) -> Vec<String> {
        [
            SUBCOMMAND,
            &self.step,
            "--run-id",
            &self.run_id,
            "--task-id",
            &self.task_id,
            "--attempt",
            &self.attempt.to_string(),
            "--input",
            &self.input,
            "--datastore",
            self.store.name(),
            "--datastore-root",
            &self.store_root,
        ]
        .map(String::from)
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_round_trip_through_their_names() {
        for k in StoreKind::ALL {
            assert_eq!(k.name().parse::<StoreKind>(), Ok(k));
        }
        assert!(
            "s4".parse::<StoreKind>()
                .unwrap_err()
                .to_string()
                .contains("\"s4\"")
        );
    }
}
