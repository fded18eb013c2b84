//! Where everything lives under a flow's prefix: the one place the layout is spelled.
//!
//! ```text
//! data/<hh>/<hash>                          artifacts (immutable, create-if-absent)
//! runs/<run>/run.json                       the run's record
//! runs/<run>/<step>/<task>/task.json        the task's record (attempts, output)
//! runs/<run>/<step>/<task>/<attempt>.json   what one attempt produced
//! runs/<run>/<step>/<task>/<attempt>.log    its stdout and stderr
//! binaries/<sha256>                         the executable pods run (Kubernetes runs)
//! ```

use std::fmt;

/// One task of one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskPath {
    /// The run id.
    pub run: String,
    /// The step.
    pub step: String,
    /// The task id.
    pub task: String,
}

impl TaskPath {
    /// Task `task` of `step` in run `run`.
    pub fn new(run: &str, step: &str, task: &str) -> TaskPath {
        TaskPath {
            run: run.into(),
            step: step.into(),
            task: task.into(),
        }
    }
}

/// An object under the flow's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// An artifact, by its content hash.
    Artifact(String),
    /// The step binary, by its sha256.
    Binary(String),
    /// A run's record.
    Run(String),
    /// The mark `kubernetes kill` leaves on a run, which its orchestrator reads before every
    /// launch.
    Killed(String),
    /// A task's record.
    Task(TaskPath),
    /// What one attempt of a task produced.
    AttemptResult(TaskPath, u32),
    /// One attempt's output lines.
    AttemptLog(TaskPath, u32),
}

impl Key {
    /// Its path under the flow's prefix.
    pub fn path(&self) -> String {
        let task = |t: &TaskPath| format!("runs/{}/{}/{}", t.run, t.step, t.task);
        match self {
            Key::Artifact(id) => format!("data/{}/{id}", id.get(..2).unwrap_or("")),
            Key::Binary(sha256) => format!("binaries/{sha256}"),
            Key::Run(run) => format!("runs/{run}/run.json"),
            Key::Killed(run) => format!("runs/{run}/killed.json"),
            Key::Task(t) => format!("{}/task.json", task(t)),
            Key::AttemptResult(t, n) => format!("{}/{n}.json", task(t)),
            Key::AttemptLog(t, n) => format!("{}/{n}.log", task(t)),
        }
    }

    /// The key at `path`, if it is one of the layout's.
    pub fn parse(path: &str) -> Option<Key> {
        let parts: Vec<&str> = path.split('/').collect();
        // Only the spelling `path` writes: `+1.json` is not attempt 1's.
        let attempt = |file: &str, ext: &str| {
            let n: u32 = file.strip_suffix(ext)?.parse().ok()?;
            (format!("{n}{ext}") == file).then_some(n)
        };
        Some(match parts[..] {
            ["data", hh, id] if id.get(..2) == Some(hh) => Key::Artifact(id.into()),
            ["binaries", sha256] => Key::Binary(sha256.into()),
            ["runs", run, "run.json"] => Key::Run(run.into()),
            ["runs", run, "killed.json"] => Key::Killed(run.into()),
            ["runs", run, step, task, "task.json"] => Key::Task(TaskPath::new(run, step, task)),
            ["runs", run, step, task, file] => {
                let t = TaskPath::new(run, step, task);
                if let Some(n) = attempt(file, ".json") {
                    Key::AttemptResult(t, n)
                } else {
                    Key::AttemptLog(t, attempt(file, ".log")?)
                }
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A part of the layout to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// Every run.
    Runs,
    /// Everything of one run.
    Run(String),
    /// Every artifact.
    Artifacts,
}

impl Prefix {
    /// Its path under the flow's prefix, ending in `/`.
    pub fn path(&self) -> String {
        match self {
            Prefix::Runs => "runs/".into(),
            Prefix::Run(run) => format!("runs/{run}/"),
            Prefix::Artifacts => "data/".into(),
        }
    }
}

pub use kubestep_core::invocation::check_segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back_from_its_path() {
        let t = TaskPath::new("17", "train", "3-1");
        for key in [
            Key::Artifact("ab12cd".into()),
            Key::Binary("ff00".into()),
            Key::Run("17".into()),
            Key::Killed("17".into()),
            Key::Task(t.clone()),
            Key::AttemptResult(t.clone(), 2),
            Key::AttemptLog(t, 0),
        ] {
            assert_eq!(Key::parse(&key.path()), Some(key.clone()), "{key}");
        }
        assert_eq!(Key::parse("runs/17/train/0/notes.txt"), None);
        assert_eq!(Key::parse("runs/17/train/0/+1.json"), None);
        assert_eq!(Key::parse("elsewhere"), None);
    }

    #[test]
    fn a_segment_cannot_leave_its_directory() {
        assert!(check_segment("run id", "17").is_ok());
        for bad in ["", "..", "a/b", "."] {
            assert!(check_segment("run id", bad).is_err(), "{bad:?}");
        }
    }
}
