//! The Kubernetes executor: each task attempt becomes a Job (rendered by kubestep-core) whose
//! pod fetches this same binary from the datastore, checks its sha256 and runs
//! `step <name> ...`. One pod watch per namespace tells every task where its pod is; the
//! step's log is followed live and saved; each way a pod can end becomes its own cause.
//!
//! Flow of one attempt: render -> register with the watch -> create (or adopt) the Job ->
//! watch: pending notes, stuck (image, config) -> delete and fail; running -> follow the log;
//! ended -> save the log, name the cause, read the output record.

mod attempt;
pub mod cluster;
pub mod diagnose;
pub mod lease;
pub mod logs;
pub mod rbac;
mod record;
pub mod watch;

use super::{Ended, Executor, GangEnded, GangSpec, Outcome, RunContext, TaskSpec};
use crate::binary;
use crate::flow::Flow;
use crate::report::report;
use attempt::{Effect, Event, State};
use cluster::Cluster;
use diagnose::{End, Limits, Phase};
use futures::future::BoxFuture;
use kubestep_core::StepDecl;
use kubestep_core::labels::Selector;
use kubestep_core::render::{self, Binary};
use kubestep_core::resolve::Resolved;
use kubestep_core::resolve::env::Settings;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use watch::{PodWatch, Seen};

/// The executor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server is unreachable or refused.
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    /// No client could be made.
    #[error(transparent)]
    Connect(#[from] cluster::ConnectError),
    /// The API server did not answer the run's first request.
    #[error(
        "cannot reach the Kubernetes API server at {server}: {cause}; is the cluster up, and is it the one KUBECONFIG's current context names?"
    )]
    Unreachable {
        /// Its URL.
        server: String,
        /// Why, on one line.
        cause: String,
    },
    /// The API server refused the user's credentials.
    #[error(
        "the Kubernetes API server at {server} refused this user's credentials (HTTP 401 Unauthorized): a token or certificate that expired or was revoked; log in again, or refresh the credentials KUBECONFIG's current context gives"
    )]
    Unauthorized {
        /// Its URL.
        server: String,
    },
    /// The executable cannot run in a pod.
    #[error(transparent)]
    Binary(#[from] binary::Error),
    /// The executable needs a newer glibc than the default image has.
    #[error(
        "this executable needs glibc {}.{} but step `{step}` runs the default image {image}, which has glibc {}.{}; set `image` to one with a newer glibc (for example debian:trixie-slim, glibc 2.41), or build against an older one (for example `cargo zigbuild --target x86_64-unknown-linux-gnu.2.36`)",
        needs.0, needs.1, DEFAULT_IMAGE_GLIBC.0, DEFAULT_IMAGE_GLIBC.1
    )]
    Glibc {
        /// The step.
        step: String,
        /// The default image.
        image: String,
        /// The glibc version the executable needs.
        needs: (u32, u32),
    },
    /// The user lacks permissions the run needs.
    #[error(
        "the Kubernetes user of this run may not {}; `kubernetes rbac --user NAME` (or `--group`, `--service-account`) prints the Role and RoleBinding that grant what a run needs",
        missing.join(", ")
    )]
    Permissions {
        /// Each as `verb resource in namespace NS`.
        missing: Vec<String>,
    },
    /// The API server refuses a step's Job (a server-side dry run before the run starts).
    #[error(
        "step `{step}`: the API server refuses its Job (a server-side dry run, before anything was launched): {message}"
    )]
    Refused {
        /// The step.
        step: String,
        /// The API server's answer.
        message: String,
    },
    /// The datastore's root cannot be written.
    #[error(transparent)]
    Unwritable(crate::datastore::Error),
    /// The datastore cannot hold or share the binary.
    #[error("cannot ship the step binary to pods")]
    Datastore(#[from] crate::datastore::Error),
}

/// How long the log may still be read after the pod ended.
const LOG_GRACE: Duration = Duration::from_secs(15);

/// How long a Job may have no pod before its Events are read for the reason.
const NO_POD_YET: Duration = Duration::from_secs(10);

/// The glibc of the default image (`debian:bookworm-slim`).
pub const DEFAULT_IMAGE_GLIBC: (u32, u32) = (2, 36);

/// How long a presigned binary URL stays valid: the longest S3 allows (7 days), less a margin,
/// for pods that wait long to be scheduled.
const URL_LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);

/// New Jobs get a freshly signed URL this often: a URL signed with temporary credentials
/// (STS, workload identity) stops working when they expire, whatever its own lifetime.
const RESIGN_AFTER: Duration = Duration::from_secs(30 * 60);

/// Runs task attempts as Jobs.
pub struct KubernetesExecutor {
    ctx: RunContext,
    cluster: Cluster,
    flow: String,
    steps: HashMap<&'static str, Resolved>,
    /// How pods get the binary, and when its URL was signed (re-signed now and then, so URLs
    /// signed with temporary credentials do not outlive them).
    binary: Mutex<(Binary, Instant)>,
    /// The binary's key in the datastore, when pods fetch it.
    binary_key: Option<crate::datastore::Key>,
    arch: Option<String>,
    pod_env: Vec<(String, String)>,
    watches: HashMap<String, PodWatch>,
    selector: String,
    /// How long a pod may wait for a node (`KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT`).
    scheduling_timeout: Duration,
    /// Deletions of Jobs whose attempts were dropped, still in flight.
    cleanup: Cleanup,
    /// Set when another orchestrator takes the run over: attempts dropped then keep their Jobs.
    handed_over: Arc<AtomicBool>,
}

type Cleanup = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

/// Names of environment variables that hold credentials: never copied into a pod spec; pods
/// get credentials only through the step's `secrets`.
fn is_credential(var: &str) -> bool {
    [
        "SECRET",
        "KEY",
        "TOKEN",
        "PASSWORD",
        "CREDENTIAL",
        "SAS",
        "SERVICE_ACCOUNT",
    ]
    .iter()
    .any(|w| var.contains(w))
}

/// The datastore settings a pod needs (endpoint, region, ...), from this process's environment,
/// without credentials.
pub fn datastore_env(
    kind: crate::datastore::Kind,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    use crate::datastore::Kind;
    let prefixes: &[&str] = match kind {
        Kind::Local => &[],
        Kind::S3 => &["AWS_"],
        Kind::Azure => &["AZURE_", "AZURITE_"],
        Kind::Gs => &["GOOGLE_"],
    };
    let mut env: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)) && !is_credential(k))
        .collect();
    env.sort();
    env
}

/// Every step's settings as if `--with kubernetes` sent it to Kubernetes, under `with` too: what
/// a program that embeds steps launches, and where `kubernetes list|kill|rbac` look.
pub fn resolve_all(
    steps: impl Iterator<Item = &'static StepDecl>,
    defaults: &kubestep_core::resolve::Defaults,
    with: &[kubestep_core::resolve::WithArg],
) -> Result<Vec<(&'static StepDecl, Resolved)>, kubestep_core::resolve::Error> {
    let mut all = with.to_vec();
    all.push(kubestep_core::resolve::with_arg::parse("kubernetes").expect("a valid --with"));
    steps
        .map(|d| Ok((d, kubestep_core::resolve::resolve(d, defaults, &all)?)))
        .collect()
}

impl KubernetesExecutor {
    /// Connects, ships the binary (or uses the one in the image) and starts one pod watch per
    /// namespace the steps use.
    pub async fn start(
        ctx: RunContext,
        flow: &Flow,
        steps: Vec<(&'static StepDecl, Resolved)>,
        settings: &Settings,
    ) -> Result<KubernetesExecutor, Error> {
        let cluster = Cluster::connect(settings.api_qps).await?;
        Self::with_cluster(ctx, cluster, flow, steps, settings).await
    }

    /// [`KubernetesExecutor::start`] with a given client. Before anything is uploaded or
    /// created, the API server is asked (SelfSubjectAccessReview) whether this user has every
    /// permission the run needs in every namespace it uses; what it lacks is named.
    pub async fn with_cluster(
        ctx: RunContext,
        cluster: Cluster,
        flow: &Flow,
        steps: Vec<(&'static StepDecl, Resolved)>,
        settings: &Settings,
    ) -> Result<KubernetesExecutor, Error> {
        // A multi-node step's name and member count.
        let gangs: HashMap<&str, u32> = flow
            .stages()
            .iter()
            .filter_map(|s| match s.kind {
                crate::flow::StageKind::Parallel(n) => Some((s.steps[0].name, n)),
                _ => None,
            })
            .collect();
        let mut namespaces: Vec<(String, bool)> = Vec::new();
        for (d, r) in &steps {
            let gang = gangs.contains_key(d.name);
            match namespaces
                .iter_mut()
                .find(|(ns, _)| *ns == r.namespace.value)
            {
                Some((_, g)) => *g |= gang,
                None => namespaces.push((r.namespace.value.clone(), gang)),
            }
        }
        let missing = rbac::missing(&cluster, &namespaces)
            .await
            .map_err(|e| cluster.first_contact(e))?;
        if !missing.is_empty() {
            return Err(Error::Permissions { missing });
        }
        ctx.datastore
            .check_writable()
            .await
            .map_err(Error::Unwritable)?;
        let flow = flow.name();
        let (binary, binary_key, arch) = match &settings.binary_in_image {
            Some(path) => (Binary::InImage { path: path.clone() }, None, None),
            None => {
                // Reading and hashing a large executable blocks: off the async workers.
                let exe = crate::blocking(binary::current).await?;
                check_glibc(
                    exe.glibc,
                    steps.iter().map(|(d, r)| {
                        let default = r.image.source == kubestep_core::resolve::Source::BuiltIn;
                        (d.name, r.image.value.as_str(), default)
                    }),
                )?;
                let key = ctx.datastore.put_binary(&exe.path, &exe.sha256).await?;
                let url = ctx.datastore.presigned_get(&key, URL_LIFETIME).await?;
                (
                    Binary::Fetched {
                        url,
                        sha256: exe.sha256,
                    },
                    Some(key),
                    Some(exe.arch.to_string()),
                )
            }
        };
        let selector = Selector::flow(flow).run(&ctx.run_id).to_string();
        let mut watches = HashMap::new();
        for (_, r) in &steps {
            let ns = &r.namespace.value;
            if !watches.contains_key(ns) {
                watches.insert(ns.clone(), PodWatch::start(cluster.pods(ns), &selector));
            }
        }
        let executor = KubernetesExecutor {
            pod_env: datastore_env(ctx.datastore.kind(), std::env::vars()),
            ctx,
            cluster,
            flow: flow.to_string(),
            steps: steps.iter().map(|(d, r)| (d.name, r.clone())).collect(),
            binary: Mutex::new((binary, Instant::now())),
            binary_key,
            arch,
            watches,
            selector,
            scheduling_timeout: Duration::from_secs(settings.scheduling_timeout_seconds),
            cleanup: Cleanup::default(),
            handed_over: Arc::default(),
        };
        for (decl, _) in &steps {
            executor
                .dry_run(decl, gangs.get(decl.name).copied())
                .await?;
        }
        Ok(executor)
    }

    /// Sends the step's first Job to the API server as a server-side dry run: what admission
    /// (policies, webhooks, quotas on Jobs), validation or a missing namespace would refuse is
    /// said before anything is launched, not when the first task of that step starts.
    async fn dry_run(&self, decl: &'static StepDecl, gang: Option<u32>) -> Result<(), Error> {
        let first = TaskSpec {
            step: decl,
            task_id: "0".into(),
            attempt: 0,
            input: "dry-run".into(),
            timeout: None,
        };
        let (_, _, launch) = self
            .render(&first, gang)
            .await
            .map_err(|message| Error::Refused {
                step: decl.name.into(),
                message,
            })?;
        let warnings =
            self.cluster
                .dry_run(&launch.job)
                .await
                .map_err(|message| Error::Refused {
                    step: decl.name.into(),
                    message,
                })?;
        // Pod Security warns of a Job whose pods a namespace's level would refuse: whether
        // that level is enforced or only warned of, only the namespace's labels say, which a
        // run may not read; so it is said, and the pods' own refusal, if any, ends the step.
        for w in warnings {
            self.ctx.progress.println(
                &format!(
                    "kubestep: step `{}`: the API server warns about its Job: {w}",
                    decl.name
                ),
                true,
            );
        }
        Ok(())
    }

    /// The client it uses.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// How a pod gets this run's binary now, and the binary's `kubernetes.io/arch`: what a
    /// detached run's orchestrator pod fetches.
    pub async fn pod_binary(&self) -> Result<(Binary, Option<String>), crate::datastore::Error> {
        Ok((self.binary().await?, self.arch.clone()))
    }

    /// Leaves the run's Jobs running when this orchestrator stops: another one (a replacement
    /// orchestrator pod, `run --recover`) takes them over. Call before dropping the run.
    pub fn hand_over(&self) {
        self.handed_over.store(true, Ordering::SeqCst);
    }

    /// Waits until the Jobs of attempts that were stopped (a sibling failed) are deleted; call
    /// before the process exits, which would drop those deletions.
    pub async fn settle(&self) {
        let pending: Vec<_> = std::mem::take(&mut *self.cleanup.lock().expect("not poisoned"));
        for p in pending {
            let _ = p.await;
        }
    }

    /// Deletes every Job of the run (the garbage collector removes their pods) and waits, at most
    /// `wait`, until the run has no pod left. Returns the pods still there.
    pub async fn shutdown(&self, wait: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut left = Vec::new();
        // Twice: a create the interrupted orchestrator had in flight may land after the first
        // deletion; by the time the first Jobs' pods are gone, it has.
        for _ in 0..2 {
            for ns in self.watches.keys() {
                if let Err(e) = self.cluster.delete_jobs(ns, &self.selector).await {
                    self.ctx
                        .progress
                        .println(&format!("kubestep: {}", report(&e)), true);
                }
            }
            left.clear();
            for w in self.watches.values() {
                left.extend(w.wait_empty(deadline).await);
            }
        }
        left
    }

    /// How this attempt's pod gets the binary: the URL re-signed when it is older than
    /// [`RESIGN_AFTER`].
    async fn binary(&self) -> Result<Binary, crate::datastore::Error> {
        let (current, signed) = self.binary.lock().expect("not poisoned").clone();
        let (Binary::Fetched { sha256, .. }, Some(key)) = (&current, &self.binary_key) else {
            return Ok(current);
        };
        if signed.elapsed() < RESIGN_AFTER {
            return Ok(current);
        }
        let url = self.ctx.datastore.presigned_get(key, URL_LIFETIME).await?;
        let fresh = Binary::Fetched {
            url,
            sha256: sha256.clone(),
        };
        *self.binary.lock().expect("not poisoned") = (fresh.clone(), Instant::now());
        Ok(fresh)
    }

    fn job_task(&self, spec: &TaskSpec, binary: Binary, gang: Option<u32>) -> render::Task {
        render::Task {
            flow: self.flow.clone(),
            invocation: self.ctx.invocation(spec),
            env: self.pod_env.clone(),
            binary,
            arch: self.arch.clone(),
            gang,
        }
    }

    /// The step's settings and the Job of this attempt (of its gang when `gang` is set).
    async fn render(
        &self,
        spec: &TaskSpec,
        gang: Option<u32>,
    ) -> Result<(&Resolved, render::Task, Launch), String> {
        let Some(step) = self.steps.get(spec.step.name) else {
            return Err(format!(
                "step `{}` has no Kubernetes settings",
                spec.step.name
            ));
        };
        let binary = self
            .binary()
            .await
            .map_err(|e| format!("cannot sign the binary's URL: {}", report(&e)))?;
        let task = self.job_task(spec, binary, gang);
        let job = render::job(step, &task).job;
        // The step's container: the only one of its pod.
        let main = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first());
        let memory = main
            .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
            .map(|q| q.0.clone());
        let launch = Launch {
            ns: step.namespace.value.clone(),
            name: task.job_name(),
            container: main.map(|c| c.name.clone()).unwrap_or_default(),
            limits: Limits {
                step: spec.step.name.into(),
                memory,
                timeout_seconds: spec.timeout.map(|t| t.as_secs()),
            },
            job,
        };
        Ok((step, task, launch))
    }

    /// A guard that deletes the attempt's Job if the attempt is dropped.
    fn guard(&self, launch: &Launch) -> JobGuard {
        JobGuard {
            cleanup: self.cleanup.clone(),
            handed_over: self.handed_over.clone(),
            cluster: self.cluster.clone(),
            ns: launch.ns.clone(),
            name: launch.name.clone(),
            armed: true,
        }
    }

    async fn attempt(&self, spec: &TaskSpec) -> Ended {
        let (_, _, launch) = match self.render(spec, None).await {
            Ok(r) => r,
            Err(cause) => return Outcome::Failed(cause).into(),
        };
        let registration = self.watches[&launch.ns].register(&launch.name);
        let mut guard = self.guard(&launch);
        if let Err(e) = self.cluster.create_or_adopt(&launch.job).await {
            guard.armed = false;
            return Outcome::Failed(e).into();
        }
        let notes = Mutex::default();
        let ended = self
            .follow_pod(spec, &launch, registration.rx.clone(), None, &notes)
            .await;
        guard.armed = false;
        ended
    }

    /// One attempt of a gang: one Indexed Job whose pods are the members, and a headless
    /// Service, owned by the Job, through which they find the control member. Each member's pod
    /// is followed as a lone task's is; the first member that fails (or is lost, or cannot
    /// start) ends the attempt and the whole gang is deleted.
    async fn gang_attempt(&self, gang: &GangSpec) -> GangEnded {
        let failed = |cause: String| GangEnded::failed(gang.size as usize, cause);
        let (step, task, launch) = match self.render(&gang.member(0), Some(gang.size)).await {
            Ok(r) => r,
            Err(cause) => return failed(cause),
        };
        let watch = &self.watches[&launch.ns];
        let registrations: Vec<_> = (0..gang.size)
            .map(|rank| watch.register(&watch::member_key(&launch.name, rank)))
            .collect();
        let mut guard = self.guard(&launch);
        let uid = match self.cluster.create_or_adopt(&launch.job).await {
            Ok(uid) => uid,
            Err(e) => {
                guard.armed = false;
                return failed(e);
            }
        };
        let mut service = render::gang_service(step, &task);
        service.metadata.owner_references = Some(vec![owner(&launch.job, uid)]);
        if let Err(e) = self.cluster.create_service(&service).await {
            return failed(e);
        }
        let notes: Vec<Mutex<Vec<(u64, String)>>> =
            (0..gang.size).map(|_| Mutex::default()).collect();
        let mut ended = super::run_members(gang, |member, stop| {
            let rank: usize = member
                .task_id
                .parse()
                .expect("a member's task id is its rank");
            let (launch, rx, notes) = (&launch, registrations[rank].rx.clone(), &notes[rank]);
            async move {
                self.follow_pod(&member, launch, rx, Some(stop), notes)
                    .await
            }
        })
        .await;
        if !matches!(ended.outcome, Outcome::Succeeded(_)) {
            let _ = self.cluster.delete_job(&launch.ns, &launch.name).await;
            // A worker that gave up on the control member often failed because that member
            // never started: say why it did not (unless the cause already says it).
            let cause = ended.outcome.cause().unwrap_or_default().to_string();
            let waiting: Vec<String> = notes
                .iter()
                .enumerate()
                .filter(|(rank, _)| !registrations[*rank].rx.borrow().has_pod_placed())
                .filter_map(|(rank, n)| {
                    let n = n.lock().expect("not poisoned");
                    let (_, note) = n
                        .last()
                        .filter(|(_, note)| !cause.contains(note.as_str()))?;
                    Some(format!("member {rank} was still pending: {note}"))
                })
                .collect();
            if !waiting.is_empty() {
                let why = waiting.join("; ");
                ended.outcome = ended.outcome.map_cause(|c| format!("{c} ({why})"));
            }
        }
        guard.armed = false;
        ended
    }

    /// Follows one pod of the attempt's Job (a lone task's, or a gang member's) to its end:
    /// prints its pending notes, follows and saves its log, and names how it ended. `stop`
    /// (a gang's) ends the wait early when another member failed.
    async fn follow_pod(
        &self,
        spec: &TaskSpec,
        launch: &Launch,
        rx: tokio::sync::watch::Receiver<Seen>,
        stop: Option<tokio::sync::watch::Receiver<bool>>,
        notes: &Mutex<Vec<(u64, String)>>,
    ) -> Ended {
        let (ns, name) = (launch.ns.as_str(), launch.name.as_str());
        let log = Mutex::new(Vec::<u8>::new());
        let (start_logs, logs_start) = tokio::sync::oneshot::channel::<String>();
        let (waited_tx, waited_rx) = tokio::sync::oneshot::channel::<()>();
        let follow = self.follow_log(
            spec,
            (ns, &launch.container),
            rx.clone(),
            (logs_start, waited_rx),
            &log,
        );
        let waited = async {
            let ended = self
                .wait(
                    spec,
                    &launch.limits,
                    rx.clone(),
                    start_logs,
                    stop,
                    (ns, name),
                    notes,
                )
                .await;
            let _ = waited_tx.send(());
            ended
        };
        let (ended, ()) = tokio::join!(waited, follow);
        let log = log.into_inner().expect("not poisoned");
        let last_line = super::last_line(&log);
        self.ctx.save_log(spec, log).await;
        let notes = notes.lock().expect("not poisoned").clone();
        let (end, pod) = match ended {
            Ok(ended) => ended,
            Err(cause) => {
                // Stuck or never started: the Job would wait forever; remove it now.
                let _ = self.cluster.delete_job(ns, name).await;
                let pod = match &*rx.borrow() {
                    Seen::Pod(p) | Seen::Gone(p) => Some(record::attempt_pod(p, &notes)),
                    Seen::None => None,
                };
                return Ended {
                    outcome: Outcome::Failed(cause),
                    pod,
                };
            }
        };
        let outcome = self
            .conclude(spec, &launch.limits, (ns, name), end, &pod, last_line)
            .await;
        Ended {
            outcome,
            pod: Some(record::attempt_pod(&pod, &notes)),
        }
    }

    /// Follows the step container's log from when the fold says it runs, printing each line
    /// with the task's prefix and keeping it in `log`; once the pod has ended the rest of the log
    /// gets a bounded grace period, so a connection gone silent (half-open) never holds the task.
    async fn follow_log(
        &self,
        spec: &TaskSpec,
        (ns, container): (&str, &str),
        seen: tokio::sync::watch::Receiver<Seen>,
        (logs_start, waited): (
            tokio::sync::oneshot::Receiver<String>,
            tokio::sync::oneshot::Receiver<()>,
        ),
        log: &Mutex<Vec<u8>>,
    ) {
        let Ok(pod) = logs_start.await else { return };
        let prefix = format!("[{}/{}] ", spec.step.name, spec.task_id);
        let following = logs::follow(&self.cluster, ns, &pod, container, seen, |raw| {
            let line = String::from_utf8_lossy(raw);
            if self.ctx.echo {
                self.ctx.progress.println(&format!("{prefix}{line}"), false);
            }
            let mut log = log.lock().expect("not poisoned");
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        });
        let grace = async {
            let _ = waited.await;
            tokio::time::sleep(LOG_GRACE).await;
        };
        let failed = tokio::select! {
            r = following => r.err(),
            () = grace => Some(format!("the log was still open {} s after the pod ended", LOG_GRACE.as_secs())),
        };
        if let Some(e) = failed {
            self.ctx.say(spec, &format!("kubestep: {e}"));
        }
    }

    /// The outcome of an attempt whose pod ended: its output, or its cause told in full (an
    /// init container's from its own log, the step's from its last line).
    async fn conclude(
        &self,
        spec: &TaskSpec,
        limits: &Limits,
        (ns, name): (&str, &str),
        end: End,
        pod: &k8s_openapi::api::core::v1::Pod,
        last_line: Option<String>,
    ) -> Outcome {
        let lost = match end {
            End::Succeeded => return self.ctx.attempt_output(spec).await,
            End::Lost(cause) => Some(cause),
            End::Failed(_) => None,
        };
        // The step records its output last: a pod failed or lost after that (a deadline that
        // counted an API server outage, a node lost once the work was done) finished its work.
        if let Outcome::Succeeded(output) = self.ctx.attempt_output(spec).await {
            return Outcome::Succeeded(output);
        }
        if let Some(cause) = lost {
            // The Job controller would replace the lost pod; the orchestrator retries instead.
            let _ = self.cluster.delete_job(ns, name).await;
            return Outcome::Lost(cause);
        }
        let last = match diagnose::failed_init_container(pod) {
            Some(c) => {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let tail = self.cluster.tail(ns, &pod_name, &c, 5).await;
                super::last_line(tail.as_bytes())
            }
            None => last_line,
        };
        match diagnose::phase(pod, limits, last.as_deref()) {
            Phase::Ended(End::Failed(cause)) => Outcome::Failed(cause),
            Phase::Ended(End::Lost(cause)) => Outcome::Lost(cause),
            other => Outcome::Failed(format!("the pod ended unexpectedly: {other:?}")),
        }
    }

    /// Folds the attempt's events (the watch, the Job's Events, the scheduling timeout) until
    /// it is over; prints its pending notes and starts the log as the fold says. Returns how
    /// the pod ended, or why the attempt never ran, and the pending notes with when they came.
    #[allow(clippy::too_many_arguments)]
    async fn wait(
        &self,
        spec: &TaskSpec,
        limits: &Limits,
        mut rx: tokio::sync::watch::Receiver<Seen>,
        start_logs: tokio::sync::oneshot::Sender<String>,
        mut stop: Option<tokio::sync::watch::Receiver<bool>>,
        job: (&str, &str),
        notes: &Mutex<Vec<(u64, String)>>,
    ) -> Result<(End, Arc<k8s_openapi::api::core::v1::Pod>), String> {
        let watch = &self.watches[job.0];
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.scheduling_timeout;
        let events_at = tokio::time::Instant::now() + NO_POD_YET;
        let mut asked_events = false;
        let mut start_logs = Some(start_logs);
        let mut state = State::START;
        let mut event = Event::Seen(rx.borrow_and_update().clone());
        loop {
            let (next, effects) = attempt::fold(state, event, limits);
            state = next;
            for effect in effects {
                match effect {
                    Effect::Pending(note) => {
                        self.ctx.say(spec, &format!("pending: {note}"));
                        let mut notes = notes.lock().expect("not poisoned");
                        notes.push((crate::datastore::now_ms(), note));
                    }
                    Effect::FollowLog(pod) => {
                        if let Some(tx) = start_logs.take() {
                            let _ = tx.send(pod);
                        }
                    }
                }
            }
            match state {
                State::Ended(end, pod) => return Ok((end, pod)),
                State::Abandoned(cause) => return Err(cause),
                State::Waiting { .. } | State::Running => {}
            }
            let scheduling = async {
                if state.awaits_a_node() {
                    tokio::time::sleep_until(deadline).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            // A Job whose pod the Job controller cannot create (a quota, an admission webhook)
            // says why only in its Events: read them once when no pod has come after a while.
            let ask_events = async {
                if state.has_no_pod() && !asked_events {
                    tokio::time::sleep_until(events_at).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            event = tokio::select! {
                () = super::stopped(stop.as_mut()) => return Err("stopped with its gang".into()),
                changed = rx.changed() => match changed {
                    Ok(()) => Event::Seen(rx.borrow_and_update().clone()),
                    Err(_) => Event::WatchStopped,
                },
                () = ask_events => {
                    asked_events = true;
                    Event::Events(self.cluster.job_event(job.0, job.1).await)
                },
                () = scheduling => Event::NotScheduled {
                    waited: started.elapsed(),
                    job_event: if state.has_no_pod() {
                        self.cluster.job_event(job.0, job.1).await
                    } else {
                        None
                    },
                    watch_error: watch.error(),
                },
            };
        }
    }
}

/// Refuses an executable that needs a newer glibc (`needs`) than the default image has, naming
/// the first step (`(name, image, whether the image is the default)`) that runs that image.
fn check_glibc<'a>(
    needs: Option<(u32, u32)>,
    steps: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
) -> Result<(), Error> {
    let Some(needs) = needs.filter(|v| *v > DEFAULT_IMAGE_GLIBC) else {
        return Ok(());
    };
    match steps.into_iter().find(|(_, _, default)| *default) {
        Some((step, image, _)) => Err(Error::Glibc {
            step: step.into(),
            image: image.into(),
            needs,
        }),
        None => Ok(()),
    }
}

/// Deletes the attempt's Job if the attempt is dropped before it ends (a failed sibling, or
/// Ctrl-C), so no pod outlives the task that wanted it; unless the run was handed over to
/// another orchestrator, which takes the Job over.
struct JobGuard {
    cleanup: Cleanup,
    handed_over: Arc<AtomicBool>,
    cluster: Cluster,
    ns: String,
    name: String,
    armed: bool,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if self.armed
            && !self.handed_over.load(Ordering::SeqCst)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (cluster, ns, name) = (self.cluster.clone(), self.ns.clone(), self.name.clone());
            let deletion = rt.spawn(async move {
                let _ = cluster.delete_job(&ns, &name).await;
            });
            self.cleanup.lock().expect("not poisoned").push(deletion);
        }
    }
}

impl Executor for KubernetesExecutor {
    fn run<'a>(&'a self, task: &'a TaskSpec) -> BoxFuture<'a, Ended> {
        Box::pin(self.attempt(task))
    }

    fn run_gang<'a>(&'a self, gang: &'a GangSpec) -> BoxFuture<'a, GangEnded> {
        Box::pin(self.gang_attempt(gang))
    }

    /// A Job runs on without its orchestrator; its name is the attempt's, so creating it again
    /// adopts it.
    fn adopts(&self, _step: &str) -> bool {
        true
    }
}

/// What an attempt creates and how its pods are read: the rendered Job, where it goes, the step
/// container's name and the limits that explain its end.
struct Launch {
    job: k8s_openapi::api::batch::v1::Job,
    ns: String,
    name: String,
    container: String,
    limits: Limits,
}

/// An owner reference to the Job `job` (created, with `uid`): what it owns goes with it.
fn owner(
    job: &k8s_openapi::api::batch::v1::Job,
    uid: String,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::Kind;

    #[test]
    fn a_glibc_newer_than_the_default_images_is_refused_with_the_fix() {
        let steps = [
            ("prep", "debian:trixie-slim", false),
            ("train", "debian:bookworm-slim", true),
        ];
        let e = check_glibc(Some((2, 39)), steps).unwrap_err().to_string();
        assert_eq!(
            e,
            "this executable needs glibc 2.39 but step `train` runs the default image debian:bookworm-slim, which has glibc 2.36; set `image` to one with a newer glibc (for example debian:trixie-slim, glibc 2.41), or build against an older one (for example `cargo zigbuild --target x86_64-unknown-linux-gnu.2.36`)"
        );
        assert!(check_glibc(Some((2, 36)), steps).is_ok());
        assert!(check_glibc(None, steps).is_ok());
        // Every step names its own image: nothing to refuse.
        assert!(check_glibc(Some((2, 39)), [steps[0]]).is_ok());
    }

    #[test]
    fn pods_get_store_settings_but_never_credentials() {
        let vars = [
            ("AWS_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_REGION", "us-east-1"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "k"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = datastore_env(Kind::S3, vars.clone());
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["AWS_ENDPOINT", "AWS_REGION"]);
        assert!(datastore_env(Kind::Azure, vars).is_empty());
    }
}
