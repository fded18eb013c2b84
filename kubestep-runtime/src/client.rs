//! The client API, for other programs and notebooks: a flow's runs, a run's status and tasks,
//! and a step's output read back as its Rust type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubestep_runtime::client::Error> {
//! let client = kubestep_runtime::client::Client::local(".kubestep", "squares")?;
//! let run = client.latest_run().await?.expect("a run");
//! let total: u64 = client.output(&run.run_id, "end", "0").await?;
//! # Ok(()) }
//! ```

use crate::codec;
use crate::datastore::{self, Datastore, Key, Prefix, RunRecord, Status, TaskPath, TaskRecord};
use serde::de::DeserializeOwned;
use std::path::Path;

/// A client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] datastore::Error),
    /// No such run, step or task, or no output yet.
    #[error("{0}")]
    Missing(String),
    /// The output is not of the requested type.
    #[error("the output of {step}/{task} in run {run} is not a `{wanted}`")]
    Type {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// The task.
        task: String,
        /// The type asked for.
        wanted: &'static str,
        /// The decoding error.
        source: codec::Error,
    },
}

/// Reads one flow's runs.
#[derive(Clone, Debug)]
pub struct Client {
    ds: Datastore,
}

impl Client {
    /// A client for `flow` in a local datastore root.
    pub fn local(root: impl AsRef<Path>, flow: &str) -> Result<Client, Error> {
        Ok(Client {
            ds: Datastore::local(root.as_ref(), flow)?,
        })
    }

    /// A client for `flow` in a datastore of any kind (see [`Datastore::open`]).
    pub fn open(kind: datastore::Kind, root: &str, flow: &str) -> Result<Client, Error> {
        Ok(Client {
            ds: Datastore::open(kind, root, flow)?,
        })
    }

    /// [`Client::open`] with a store's settings given rather than exported (see
    /// [`Datastore::open_with`]).
    pub fn open_with(
        kind: datastore::Kind,
        root: &str,
        flow: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Client, Error> {
        Ok(Client {
            ds: Datastore::open_with(kind, root, flow, vars)?,
        })
    }

    /// A client over an open datastore.
    pub fn new(ds: Datastore) -> Client {
        Client { ds }
    }

    /// Every run, oldest first (run ids sort by start time).
    pub async fn runs(&self) -> Result<Vec<RunRecord>, Error> {
        let mut runs = Vec::new();
        for key in self
            .ds
            .list(&Prefix::Runs)
            .await?
            .into_iter()
            .filter(|k| matches!(k, Key::Run(_)))
        {
            if let Some(r) = self.ds.get_record::<RunRecord>(&key).await? {
                runs.push(r);
            }
        }
        runs.sort_by_key(|r| (r.started_ms, r.run_id.clone()));
        Ok(runs)
    }

    /// The newest run.
    pub async fn latest_run(&self) -> Result<Option<RunRecord>, Error> {
        Ok(self.runs().await?.pop())
    }

    /// One run's record.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, Error> {
        Ok(self.ds.get_record(&Key::Run(run_id.into())).await?)
    }

    /// A run's tasks, by step then task id.
    pub async fn tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, Error> {
        let mut tasks = Vec::new();
        for key in self
            .ds
            .list(&Prefix::Run(run_id.into()))
            .await?
            .into_iter()
            .filter(|k| matches!(k, Key::Task(_)))
        {
            if let Some(t) = self.ds.get_record::<TaskRecord>(&key).await? {
                tasks.push(t);
            }
        }
        Ok(tasks)
    }

    /// One task's record.
    pub async fn task(
        &self,
        run_id: &str,
        step: &str,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, Error> {
        Ok(self
            .ds
            .get_record(&Key::Task(TaskPath::new(run_id, step, task_id)))
            .await?)
    }

    /// A task's output, decoded as `T`.
    pub async fn output<T: DeserializeOwned + 'static>(
        &self,
        run_id: &str,
        step: &str,
        task_id: &str,
    ) -> Result<T, Error> {
        let task = self
            .task(run_id, step, task_id)
            .await?
            .ok_or_else(|| Error::Missing(format!("run {run_id} has no task {step}/{task_id}")))?;
        let id = match (task.status, task.output) {
            (Status::Succeeded, Some(id)) => id,
            _ => {
                return Err(Error::Missing(format!(
                    "task {step}/{task_id} of run {run_id} has no output (status {:?})",
                    task.status
                )));
            }
        };
        let bytes = self.ds.get_artifact(&id).await?;
        codec::decode(&bytes).map_err(|source| Error::Type {
            run: run_id.into(),
            step: step.into(),
            task: task_id.into(),
            wanted: std::any::type_name::<T>(),
            source,
        })
    }

    /// The saved log of one attempt of a task.
    pub async fn log(
        &self,
        run_id: &str,
        step: &str,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .ds
            .get_bytes(&Key::AttemptLog(
                TaskPath::new(run_id, step, task_id),
                attempt,
            ))
            .await?)
    }
}
