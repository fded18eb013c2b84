//! How a task is launched: the hidden `step` command line that a local child process and a
//! Kubernetes pod both run, written ([`TaskInvocation::to_args`]) and read
//! ([`TaskInvocation::parse`]) here and only here.

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

/// Checks a run id, step or task id before it becomes part of a datastore key: one path
/// segment, so it cannot reach another run's records.
///
/// # Errors
/// Empty, `.` or `..`, or holding `/`, `\` or NUL: the message names `what` and the value.
pub fn check_segment(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\\', '\0']) {
        Err(format!(
            "invalid {what} {value:?}: must be non-empty, not `.` or `..`, and hold no `/`, `\\` or NUL"
        ))
    } else {
        Ok(())
    }
}

/// A `step` command line that is not one [`TaskInvocation::to_args`] writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid `{SUBCOMMAND}` command line: {0}; expected `{SUBCOMMAND} STEP --run-id R --task-id T --attempt N --input I --datastore K --datastore-root ROOT`"
)]
pub struct BadInvocation(pub String);

impl TaskInvocation {
    /// Reads the arguments after the executable (`step NAME --run-id ...`), in any order of
    /// options, each exactly once.
    ///
    /// # Errors
    /// Another subcommand, a missing, repeated or unknown option, or a bad value.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<TaskInvocation, BadInvocation> {
        let bad = |m: String| BadInvocation(m);
        let mut args = args.iter().map(AsRef::as_ref);
        if args.next() != Some(SUBCOMMAND) {
            return Err(bad(format!("it does not start with `{SUBCOMMAND}`")));
        }
        let step = args
            .next()
            .filter(|s| !s.starts_with("--"))
            .ok_or_else(|| bad("no step name".into()))?;
        const OPTIONS: [&str; 6] = [
            "--run-id",
            "--task-id",
            "--attempt",
            "--input",
            "--datastore",
            "--datastore-root",
        ];
        let mut values: [Option<&str>; 6] = [None; 6];
        while let Some(option) = args.next() {
            let i = OPTIONS
                .iter()
                .position(|o| *o == option)
                .ok_or_else(|| bad(format!("unknown argument `{option}`")))?;
            let value = args
                .next()
                .ok_or_else(|| bad(format!("`{option}` has no value")))?;
            if values[i].replace(value).is_some() {
                return Err(bad(format!("`{option}` is given twice")));
            }
        }
        let get = |i: usize| values[i].ok_or_else(|| bad(format!("`{}` is missing", OPTIONS[i])));
        for (what, value) in [("step", step), ("run id", get(0)?), ("task id", get(1)?)] {
            check_segment(what, value).map_err(bad)?;
        }
        let attempt = get(2)?;
        Ok(TaskInvocation {
            step: step.into(),
            run_id: get(0)?.into(),
            task_id: get(1)?.into(),
            // Only the spelling `to_args` writes: `+1` and `01` are refused.
            attempt: attempt
                .parse()
                .ok()
                .filter(|n: &u32| n.to_string() == attempt)
                .ok_or_else(|| bad(format!("`--attempt {attempt}` is not a whole number")))?,
            input: get(3)?.into(),
            store: get(4)?
                .parse()
                .map_err(|e: UnknownStoreKind| bad(e.to_string()))?,
            store_root: get(5)?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `to_args` writes, `parse` reads back whole; anything else is refused with a reason.
    #[test]
    fn the_command_line_round_trips_and_nothing_else_parses() {
        for store in StoreKind::ALL {
            let inv = TaskInvocation {
                step: "train".into(),
                run_id: "1700000000".into(),
                task_id: "3-1".into(),
                attempt: 2,
                input: "ab12".into(),
                store,
                store_root: "s3://bucket/a prefix".into(),
            };
            assert_eq!(TaskInvocation::parse(&inv.to_args()), Ok(inv.clone()));
            let mut twice = inv.to_args();
            twice.extend(["--input".into(), "x".into()]);
            assert!(
                TaskInvocation::parse(&twice)
                    .unwrap_err()
                    .to_string()
                    .contains("`--input` is given twice")
            );
            let plus: Vec<String> = inv
                .to_args()
                .into_iter()
                .map(|a| if a == "2" { "+2".into() } else { a })
                .collect();
            assert!(
                TaskInvocation::parse(&plus)
                    .unwrap_err()
                    .to_string()
                    .contains("not a whole number")
            );
        }
        for (args, why) in [
            (vec!["run"], "does not start with `step`"),
            (vec!["step"], "no step name"),
            (vec!["step", "a", "--run-id"], "`--run-id` has no value"),
            (
                vec!["step", "a", "--nope", "1"],
                "unknown argument `--nope`",
            ),
            (vec!["step", "a", "--run-id", "1"], "`--task-id` is missing"),
            (
                vec!["step", "a", "--run-id", "../b", "--task-id", "0"],
                "invalid run id \"../b\"",
            ),
        ] {
            let e = TaskInvocation::parse(&args).unwrap_err().to_string();
            assert!(e.contains(why), "{args:?}: {e}");
        }
    }

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
