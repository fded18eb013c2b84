//! Executors run one task attempt somewhere and report how it ended; the orchestrator never
//! knows where. `local` runs it as a child process of this binary.

pub mod local;

use kubestep_core::StepDecl;
use std::time::Duration;

/// One attempt of one task.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// The step.
    pub step: &'static StepDecl,
    /// The task id within the step.
    pub task_id: String,
    /// The attempt, from 0.
    pub attempt: u32,
    /// The input artifact.
    pub input: String,
    /// `#[timeout]`, if any.
    pub timeout: Option<Duration>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It wrote this output artifact.
    Succeeded(String),
    /// It failed, for this reason (one line).
    Failed(String),
}
