//! One pod watch per namespace per run, shared by every task of the run: the watcher lists and
//! watches the run's pods by label, resumes from its last resourceVersion after a disconnect
//! (relisting when that is too old), and hands each pod's latest state to the task waiting for
//! its Job. No task polls.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What the watch knows of a Job's pod.
#[derive(Clone, Debug, Default)]
pub enum Seen {
    /// No pod yet.
    #[default]
    None,
    /// Its latest state.
    Pod(Arc<Pod>),
    /// It existed and was deleted (by someone else: kubestep deletes Jobs, not pods).
    Gone(Arc<Pod>),
}

type Tasks = Arc<Mutex<HashMap<String, watch::Sender<Seen>>>>;

/// The watch over one namespace's pods of one run.
pub struct PodWatch {
    tasks: Tasks,
    /// Names of the run's pods that exist now, whoever's task they are.
    live: watch::Receiver<HashSet<String>>,
    /// The last error the watch met, for a task that waits too long to say why.
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Seen {
    /// Whether a node has the pod (it is past scheduling).
    pub fn has_pod_placed(&self) -> bool {
        match self {
            Seen::None => false,
            Seen::Pod(p) | Seen::Gone(p) => p.spec.as_ref().is_some_and(|s| s.node_name.is_some()),
        }
    }
}

/// The key a gang member's pod is followed by: its Job's name and its rank.
pub fn member_key(job: &str, rank: u32) -> String {
    format!("{job}/{rank}")
}

/// Whom a pod is for: its Job (the Job controller labels its pods with `job-name`), or, for a
/// pod of an Indexed Job (a gang), its Job and its rank.
fn key_of(pod: &Pod) -> Option<String> {
    let job = pod
        .labels()
        .get(kubestep_core::labels::JOB_NAME)
        .cloned()
        .or_else(|| {
            pod.owner_references()
                .iter()
                .find(|o| o.kind == "Job")
                .map(|o| o.name.clone())
        })?;
    let rank = pod
        .annotations()
        .get(kubestep_core::labels::COMPLETION_INDEX)
        .and_then(|r| r.parse().ok());
    Some(match rank {
        Some(rank) => member_key(&job, rank),
        None => job,
    })
}

impl PodWatch {
    /// Starts watching the pods of `api`'s namespace that match `selector`.
    pub fn start(api: Api<Pod>, selector: &str) -> PodWatch {
        let tasks: Tasks = Arc::default();
        let error = Arc::new(Mutex::new(None));
        let config = watcher::Config::default().labels(selector);
        let (t, e) = (tasks.clone(), error.clone());
        let (live_tx, live) = watch::channel(HashSet::new());
        let task = tokio::spawn(async move {
            let events = watcher(api, config).default_backoff();
            futures::pin_mut!(events);
            // During a relist: the Jobs and pods seen so far, so pods deleted while disconnected
            // are noticed when it ends.
            let mut relist: Option<(HashSet<String>, HashSet<String>)> = None;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(ev) => {
                        *e.lock().expect("not poisoned") = None;
                        ev
                    }
                    Err(err) => {
                        *e.lock().expect("not poisoned") = Some(err.to_string());
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => relist = Some(Default::default()),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        live_tx.send_modify(|l| {
                            l.insert(pod.name_any());
                        });
                        if let Some(job) = key_of(&pod) {
                            if let Some((jobs, pods)) = relist.as_mut() {
                                jobs.insert(job.clone());
                                pods.insert(pod.name_any());
                            }
                            send(&t, &job, |_| Seen::Pod(Arc::new(pod)));
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        live_tx.send_modify(|l| {
                            l.remove(&pod.name_any());
                        });
                        if let Some(job) = key_of(&pod) {
                            let pod = Arc::new(pod);
                            send(&t, &job, |cur| gone(cur, &pod));
                        }
                    }
                    watcher::Event::InitDone => {
                        let (seen, pods) = relist.take().unwrap_or_default();
                        live_tx.send_modify(|l| l.retain(|p| pods.contains(p)));
                        let tasks = t.lock().expect("not poisoned");
                        for (job, tx) in tasks.iter() {
                            if !seen.contains(job) {
                                tx.send_modify(|cur| {
                                    if let Seen::Pod(p) = cur {
                                        *cur = Seen::Gone(p.clone());
                                    }
                                });
                            }
                        }
                    }
                }
            }
        });
        PodWatch {
            tasks,
            live,
            error,
            task,
        }
    }

    /// Follows the pod of Job `job` (or of a gang member, by [`member_key`]) from now on;
    /// register before creating the Job.
    pub fn register(&self, job: &str) -> Registration {
        let (tx, rx) = watch::channel(Seen::None);
        self.tasks
            .lock()
            .expect("not poisoned")
            .insert(job.to_string(), tx);
        Registration {
            tasks: self.tasks.clone(),
            job: job.to_string(),
            rx,
        }
    }

    /// Waits until the run has no pod in this namespace, or `deadline`; the pods still there.
    pub async fn wait_empty(&self, deadline: tokio::time::Instant) -> Vec<String> {
        let mut live = self.live.clone();
        let _ = tokio::time::timeout_at(deadline, live.wait_for(HashSet::is_empty)).await;
        let mut left: Vec<String> = live.borrow().iter().cloned().collect();
        left.sort();
        left
    }

    /// The error the watch is retrying after, if it is failing now.
    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("not poisoned").clone()
    }
}

/// A deletion ends the pod it names, not a newer pod of the same Job.
fn gone(cur: &Seen, deleted: &Arc<Pod>) -> Seen {
    match cur {
        Seen::Pod(p) if p.metadata.uid != deleted.metadata.uid => cur.clone(),
        _ => Seen::Gone(deleted.clone()),
    }
}

fn send(tasks: &Tasks, job: &str, f: impl FnOnce(&Seen) -> Seen) {
    if let Some(tx) = tasks.lock().expect("not poisoned").get(job) {
        tx.send_modify(|cur| *cur = f(cur));
    }
}

/// A task's view of its Job's pod; unregisters when dropped.
pub struct Registration {
    tasks: Tasks,
    job: String,
    /// The pod's latest state.
    pub rx: watch::Receiver<Seen>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tasks.lock().expect("not poisoned").remove(&self.job);
    }
}
