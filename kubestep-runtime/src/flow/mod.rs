//! The flow builder: steps wired in order, with the types between them checked at compile time.
//!
//! Each builder state remembers what the last stage produces, so `.then(step)` only accepts a
//! step whose input is that type, `.foreach(step)` needs a `Vec` of the step's input, and
//! `.main()` is only there once every fan-out is joined.

mod graph;

pub use graph::{Stage, StageKind};

use crate::codec;
use crate::step::{RunFn, SplitFn, Step, runner};
use kubestep_core::StepDecl;
use std::marker::PhantomData;

/// A complete flow: its name and its stages in order.
#[derive(Clone, Debug)]
pub struct Flow {
    name: String,
    pub(crate) stages: Vec<Stage>,
    params: Option<Params>,
}

/// The flow's parameters: command-line options of `run` that fill the start step's input.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Adds the options to a command.
    pub augment: fn(clap::Command) -> clap::Command,
    /// Reads them back and encodes the start step's input.
    pub encode: fn(&clap::ArgMatches) -> Result<Vec<u8>, clap::Error>,
}

fn augment<P: clap::Args>(cmd: clap::Command) -> clap::Command {
    P::augment_args(cmd)
}

fn encode_params<P: clap::FromArgMatches + serde::Serialize + 'static>(
    m: &clap::ArgMatches,
) -> Result<Vec<u8>, clap::Error> {
    let p = P::from_arg_matches(m)?;
    codec::encode(&p).map_err(|e| {
        clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!("cannot encode the parameters: {e}"),
        )
    })
}

/// A flow being built; `S` is the state of its last stage.
#[must_use = "a flow does nothing until `.main()` runs it"]
pub struct FlowBuilder<S> {
    pub(crate) flow: Flow,
    state: PhantomData<fn() -> S>,
}

/// State: no step yet.
pub struct Empty;
/// State: one task produces a `T`.
pub struct Linear<T>(PhantomData<T>);
/// State: a fan-out (foreach or parallel) whose tasks each produce a `T`; `.join` closes it.
pub struct Each<T>(PhantomData<T>);
/// State: branches that together produce the tuple `T`; `.join` closes them.
pub struct Branched<T>(PhantomData<T>);

impl Flow {
    /// Starts a flow named `name` (the name groups its runs).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(name: impl Into<String>) -> FlowBuilder<Empty> {
        FlowBuilder {
            flow: Flow {
                name: name.into(),
                stages: Vec::new(),
                params: None,
            },
            state: PhantomData,
        }
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flow's parameters, if its start step takes them.
    pub fn params(&self) -> Option<Params> {
        self.params
    }

    /// The stages in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Every step, in flow order.
    pub fn steps(&self) -> impl Iterator<Item = &'static StepDecl> + '_ {
        self.stages.iter().flat_map(|s| s.steps.iter().copied())
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&'static StepDecl> {
        self.steps().find(|d| d.name == name)
    }

    /// A flow of these stages, as the builder would make it (tests build shapes by hand).
    #[cfg(test)]
    pub(crate) fn from_stages(name: &str, stages: Vec<Stage>) -> Flow {
        Flow {
            name: name.into(),
            stages,
            params: None,
        }
    }

    /// What runs the step named `name`.
    pub fn runner(&self, name: &str) -> Option<RunFn> {
        self.stages.iter().find_map(|s| {
            let i = s.steps.iter().position(|d| d.name == name)?;
            Some(s.runners[i])
        })
    }

    /// Mistakes the types cannot catch: a step used twice, a parallel step on fewer than 2 nodes.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let names: Vec<&str> = self.steps().map(|d| d.name).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                problems.push(format!("step `{n}` appears twice in flow `{}`; each step runs under its own name, so use it once", self.name));
            }
        }
        for s in &self.stages {
            if let StageKind::Parallel(n) = s.kind
                && n < 2
            {
                problems.push(format!(
                    "`.parallel({}, {n})` needs at least 2 nodes",
                    s.steps[0].name
                ));
            }
        }
        // The macro checks decorators at compile time; a StepDecl built by hand (or by a macro
        // of another version) is checked here, before anything runs.
        for d in self.steps() {
            if let Err(errors) = kubestep_core::spec::StepSpec::from_decorators(d.decorators) {
                for e in errors {
                    problems.push(format!("step `{}`: {e}", d.name));
                }
            }
        }
        problems
    }
}

impl<S> FlowBuilder<S> {
    fn push<T>(
        mut self,
        kind: StageKind,
        steps: Vec<(&'static StepDecl, RunFn)>,
        split: Option<SplitFn>,
    ) -> FlowBuilder<T> {
        let (steps, runners) = steps.into_iter().unzip();
        self.flow.stages.push(Stage {
            kind,
            steps,
            runners,
            split,
        });
        FlowBuilder {
            flow: self.flow,
            state: PhantomData,
        }
    }
}

impl FlowBuilder<Empty> {
    /// The first step; it takes no input.
    pub fn start<S: Step<Input = ()>>(self, _step: S) -> FlowBuilder<Linear<S::Output>> {
        self.push(StageKind::Start, vec![(S::DECL, runner::<S>())], None)
    }

    /// The first step, taking the flow's parameters: a struct deriving `clap::Args` and serde's
    /// traits, whose options `run` accepts (`run --alpha 0.5`) and `show` lists.
    pub fn start_with_params<S: Step>(mut self, _step: S) -> FlowBuilder<Linear<S::Output>>
    where
        S::Input: clap::Args + clap::FromArgMatches,
    {
        self.flow.params = Some(Params {
            augment: augment::<S::Input>,
            encode: encode_params::<S::Input>,
        });
        self.push(StageKind::Start, vec![(S::DECL, runner::<S>())], None)
    }
}

/// A previous output that `.foreach` can fan out over: a `Vec` of the step's input.
#[diagnostic::on_unimplemented(
    message = "`.foreach` needs the previous step to return a `Vec<{Item}>`, but it returns `{Self}`",
    note = "return a Vec from the previous step; each item becomes one task"
)]
pub trait Items<Item> {}
impl<T> Items<T> for Vec<T> {}

/// Steps run side by side on the same input: a tuple of steps for `.branch`.
pub trait Branches<In> {
    /// The tuple of the branches' outputs, which `.join` receives.
    type Output;
    /// The branches' declarations and runners, in order.
    fn decls(&self) -> Vec<(&'static StepDecl, RunFn)>;
}

macro_rules! branches {
    ($($s:ident),+) => {
        impl<In, $($s: Step<Input = In>),+> Branches<In> for ($($s,)+) {
            type Output = ($($s::Output,)+);
            fn decls(&self) -> Vec<(&'static StepDecl, RunFn)> {
                vec![$(($s::DECL, runner::<$s>())),+]
            }
        }
    };
}
branches!(A, B);
branches!(A, B, C);
branches!(A, B, C, D);
branches!(A, B, C, D, E);
branches!(A, B, C, D, E, F);
branches!(A, B, C, D, E, F, G);
branches!(A, B, C, D, E, F, G, H);

impl<T> FlowBuilder<Linear<T>> {
    /// The next step, taking the previous output.
    pub fn then<S: Step<Input = T>>(self, _step: S) -> FlowBuilder<Linear<S::Output>> {
        self.push(StageKind::Then, vec![(S::DECL, runner::<S>())], None)
    }

    /// One task per item of the previous output, which must be a `Vec`.
    pub fn foreach<S: Step>(self, _step: S) -> FlowBuilder<Each<S::Output>>
    where
        T: Items<S::Input>,
    {
        self.push(
            StageKind::Foreach,
            vec![(S::DECL, runner::<S>())],
            Some(codec::split::<S::Input>),
        )
    }

    /// Several steps on the same input; `.join` takes the tuple of their outputs.
    pub fn branch<B: Branches<T>>(self, branches: B) -> FlowBuilder<Branched<B::Output>> {
        let decls = branches.decls();
        self.push(StageKind::Branch, decls, None)
    }

    /// One step on `nodes` nodes at once (multi-node training); `.join` takes their outputs.
    pub fn parallel<S: Step<Input = T>>(
        self,
        _step: S,
        nodes: u32,
    ) -> FlowBuilder<Each<S::Output>> {
        self.push(
            StageKind::Parallel(nodes),
            vec![(S::DECL, runner::<S>())],
            None,
        )
    }

    /// The finished flow, for programs that drive it themselves.
    pub fn build(self) -> Flow {
        self.flow
    }
}

impl<T> FlowBuilder<Each<T>> {
    /// Another step on each item's output, still one task per item.
    pub fn then<S: Step<Input = T>>(self, _step: S) -> FlowBuilder<Each<S::Output>> {
        self.push(StageKind::EachThen, vec![(S::DECL, runner::<S>())], None)
    }

    /// Gathers every item's output, in item order.
    pub fn join<S: Step<Input = Vec<T>>>(self, _step: S) -> FlowBuilder<Linear<S::Output>> {
        self.push(StageKind::Join, vec![(S::DECL, runner::<S>())], None)
    }
}

impl<T> FlowBuilder<Branched<T>> {
    /// Gathers the branches' outputs as a tuple.
    pub fn join<S: Step<Input = T>>(self, _step: S) -> FlowBuilder<Linear<S::Output>> {
        self.push(StageKind::Join, vec![(S::DECL, runner::<S>())], None)
    }
}
