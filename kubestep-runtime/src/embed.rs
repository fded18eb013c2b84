//! Running annotated steps on Kubernetes from any async program, without `.main()`: the
//! program lists the steps it may send, lets a pod's re-launch of the binary run one
//! ([`Steps::serve`]), and awaits typed outputs through the same executor and datastore a flow
//! run uses ([`Remote::run`]).
//!
//! ```no_run
//! # use kubestep_runtime::{embed::Steps, datastore::{Datastore, Kind}};
//! # async fn demo<S: kubestep_runtime::Step<Input = u64, Output = u64>>(square: S) -> Result<(), Box<dyn std::error::Error>> {
//! let steps = Steps::new("embedded").with(square);
//! steps.serve().await; // in a pod: runs the task and exits
//! let store = Datastore::open(Kind::S3, "s3://bucket/kubestep", "embedded")?;
//! let remote = steps.connect(store).await?;
//! let nine: u64 = remote.run(square, 3).await?;
//! # Ok(()) }
//! ```

use crate::codec;
use crate::datastore::Datastore;
use crate::executor::kubernetes::KubernetesExecutor;
use crate::executor::{Executor, RunContext};
use crate::flow::{Flow, Stage, StageKind};
use crate::orchestrator::{self, Run};
use crate::progress::Progress;
use crate::step::{Step, runner};
use kubestep_core::resolve;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Running a step remotely failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Resolve(#[from] resolve::Error),
    /// A default setting is invalid.
    #[error(transparent)]
    Settings(#[from] resolve::env::Error),
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// The executor cannot start.
    #[error(transparent)]
    Kubernetes(#[from] crate::executor::kubernetes::Error),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] crate::datastore::Error),
    /// The task failed.
    #[error(transparent)]
    Task(#[from] orchestrator::Error),
    /// A value could not be encoded or decoded.
    #[error("step `{step}`")]
    Codec {
        /// The step.
        step: &'static str,
        /// Why.
        source: codec::Error,
    },
    /// The step was not listed with [`Steps::with`].
    #[error("step `{0}` was not registered with Steps::with; a pod could not run it")]
    Unregistered(&'static str),
    /// This datastore is not reachable from pods.
    #[error("pods cannot reach a {0} datastore; use s3, azure or gs")]
    Unreachable(&'static str),
}

/// The steps a program may run on Kubernetes; the pod re-launching the binary finds them here.
#[derive(Clone, Debug)]
pub struct Steps {
    flow: Flow,
}

impl Steps {
    /// An empty set; `name` groups the runs in the datastore and labels the Jobs.
    pub fn new(name: impl Into<String>) -> Steps {
        Steps {
            flow: Flow::new(name).flow,
        }
    }

    /// Adds a step.
    #[must_use]
    pub fn with<S: Step>(mut self, _step: S) -> Steps {
        self.flow.stages.push(Stage {
            kind: StageKind::Then,
            steps: vec![S::DECL],
            runners: vec![runner::<S>()],
            split: None,
        });
        self
    }

    /// When this process is a pod's re-launch of the binary (`<binary> step NAME ...`), runs
    /// that task and exits with its code; otherwise returns at once. Call it first in `main`.
    pub async fn serve(&self) {
        if let Some(code) = crate::task::serve(&self.flow).await {
            std::process::exit(code);
        }
    }

    /// Connects to the cluster (KUBECONFIG or in-cluster) and ships this binary to `datastore`,
    /// which pods must reach (S3, Azure Blob or GCS). Settings come from the steps' decorators
    /// and the `KUBESTEP_KUBERNETES_*` environment, as for a flow.
    pub async fn connect(self, datastore: Datastore) -> Result<Remote, Error> {
        if datastore.kind() == crate::datastore::Kind::Local {
            return Err(Error::Unreachable("local"));
        }
        let defaults = crate::config::defaults()?;
        let steps = crate::executor::kubernetes::resolve_all(self.flow.steps(), &defaults, &[])?;
        let ctx = RunContext {
            datastore,
            run_id: crate::orchestrator::new_run_id(),
            echo: true,
            progress: Arc::new(Progress::new(true)),
        };
        let executor =
            KubernetesExecutor::start(ctx.clone(), &self.flow, steps, &defaults.settings()?)
                .await?;
        Ok(Remote {
            steps: self,
            ctx,
            executor,
            tasks: AtomicU64::new(0),
        })
    }
}

/// A connection that runs registered steps as Kubernetes Jobs, one task per call.
pub struct Remote {
    steps: Steps,
    ctx: RunContext,
    executor: KubernetesExecutor,
    tasks: AtomicU64,
}

impl Remote {
    /// The run id this connection's tasks are recorded under.
    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    /// Runs `step` on `input` in a pod and returns its output. `#[retry]`, `#[timeout]` and the
    /// retries of lost pods apply as in a flow; the step's output lines are printed live.
    pub async fn run<S: Step>(&self, _step: S, input: S::Input) -> Result<S::Output, Error> {
        let decl = S::DECL;
        if self.steps.flow.step(decl.name).is_none() {
            return Err(Error::Unregistered(decl.name));
        }
        let codec = |source| Error::Codec {
            step: decl.name,
            source,
        };
        let input = self
            .ctx
            .datastore
            .put_artifact(codec::encode(&input).map_err(codec)?)
            .await?;
        let task_id = self.tasks.fetch_add(1, Ordering::Relaxed).to_string();
        let run = Run {
            ctx: &self.ctx,
            executor: &self.executor as &dyn Executor,
        };
        let output = orchestrator::run_one(&run, decl, task_id, input).await?;
        let bytes = self.ctx.datastore.get_artifact(&output).await?;
        codec::decode(&bytes).map_err(codec)
    }

    /// Deletes the Jobs of calls that were dropped before they ended; call before exiting.
    pub async fn close(self) {
        self.executor.settle().await;
    }
}
