//! The flow graph: stages in order, each one or more steps.

use crate::step::{RunFn, SplitFn};
use kubestep_core::StepDecl;
use std::fmt;

/// How a stage runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// The first step.
    Start,
    /// One task after the previous one.
    Then,
    /// One task per item of the previous output.
    Foreach,
    /// A further step inside a foreach, one task per item.
    EachThen,
    /// Several steps on the same input.
    Branch,
    /// One step on this many nodes at once.
    Parallel(u32),
    /// Gathers a fan-out.
    Join,
}

impl StageKind {
    /// How a stage of this kind runs after the one before, as a graph's edge says it: `foreach`,
    /// `each`, `join`, `parallel xN`; nothing for one task after another or a branch.
    pub fn edge_label(self) -> Option<String> {
        match self {
            StageKind::Foreach => Some("foreach".into()),
            StageKind::EachThen => Some("each".into()),
            StageKind::Parallel(n) => Some(format!("parallel x{n}")),
            StageKind::Join => Some("join".into()),
            StageKind::Start | StageKind::Then | StageKind::Branch => None,
        }
    }
}

/// One stage of a flow.
#[derive(Clone, Debug)]
pub struct Stage {
    /// How it runs.
    pub kind: StageKind,
    /// Its steps (several only for a branch).
    pub steps: Vec<&'static StepDecl>,
    /// Each step's type-erased runner, in the same order.
    pub runners: Vec<RunFn>,
    /// For a foreach: how to split the previous output into items.
    pub split: Option<SplitFn>,
}

impl fmt::Display for Stage {
    /// `square (foreach)`, `(a | b) (branch)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|d| d.name).collect();
        match self.kind {
            StageKind::Start | StageKind::Then | StageKind::Join => f.write_str(names[0]),
            StageKind::Foreach => write!(f, "{} (foreach)", names[0]),
            StageKind::EachThen => write!(f, "{} (each)", names[0]),
            StageKind::Branch => write!(f, "({})", names.join(" | ")),
            StageKind::Parallel(n) => write!(f, "{} (parallel x{n})", names[0]),
        }
    }
}
