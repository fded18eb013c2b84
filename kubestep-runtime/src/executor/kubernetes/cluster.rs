//! The Kubernetes API as kubestep uses it: every request through a client-side rate limit (a
//! 200-task fan-out must not flood the API server) and retried with backoff on 429, 5xx and
//! connection errors; Jobs created idempotently and deleted with their pods.

use crate::report::report;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::{Api, ResourceExt};
use kubestep_core::labels;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// A request failed after its retries.
#[derive(Debug)]
pub struct Error {
    /// What was asked.
    pub what: String,
    /// Why it failed.
    pub source: kube::Error,
}

impl Error {
    /// Whether no cluster is configured at all (no kubeconfig, not in a pod).
    pub fn is_config(&self) -> bool {
        matches!(self.source, kube::Error::InferConfig(_))
    }
}

// An answer from the API server is said in one line (its message and reason) and ends the
// chain: kube's own message for it appends the whole `Status` in Debug form. Anything else
// (no answer: a connection, TLS or timeout error) is left to `source()`.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kubernetes API: {}", self.what)?;
        if let kube::Error::Api(status) = &self.source {
            write!(
                f,
                ": {} ({}, HTTP {})",
                status.message, status.reason, status.code
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            kube::Error::Api(_) => None,
            other => Some(other),
        }
    }
}

/// A kube client with a rate limit and retries.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// Errors worth another try: the server is busy or failing, or the connection broke.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// HTTP status of an API error, if it is one.
pub fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Cluster {
    /// A client from KUBECONFIG (or `~/.kube/config`), else the in-cluster service account.
    pub async fn connect(qps: u32) -> Result<Cluster, Error> {
        let failed = |source| Error {
            what: "connect (from KUBECONFIG, ~/.kube/config or the in-cluster service account)"
                .into(),
            source,
        };
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| failed(kube::Error::InferConfig(e)))?;
        // A half-open connection must end: longer than the watch's own idle limit (290 s + 5),
        // and a log stream cut by it is reopened from its last line.
        config.read_timeout = Some(Duration::from_secs(300));
        let client = kube::Client::try_from(config).map_err(failed)?;
        Ok(Cluster::new(client, qps))
    }

    /// Wraps a client; at most `qps` requests a second, in bursts of up to twice that.
    pub fn new(client: kube::Client, qps: u32) -> Cluster {
        let qps = NonZeroU32::new(qps.max(1)).expect("at least 1");
        let burst = qps.saturating_mul(NonZeroU32::new(2).expect("2"));
        Cluster {
            client,
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(burst),
            )),
        }
    }

    /// Runs a request under the rate limit, retrying transient failures with backoff.
    pub async fn call<T, F, Fut>(&self, what: impl Fn() -> String, mut f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let attempt = || {
            let fut = f();
            async {
                self.limiter.until_ready().await;
                fut.await
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(8)
                    .with_jitter(),
            )
            .when(transient)
            .await
            .map_err(|source| Error {
                what: what(),
                source,
            })
    }

    /// Jobs of a namespace.
    pub fn jobs(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Pods of a namespace.
    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates the Job, or adopts the one a previous try of the same create already made (the
    /// name is deterministic per task attempt, so a retried create never duplicates it).
    /// Returns the Job's uid.
    pub async fn create_or_adopt(&self, job: &Job) -> Result<String, String> {
        create_or_adopt(self, &self.jobs(&job.namespace().unwrap_or_default()), job).await
    }

    /// Creates `job` as a server-side dry run (admission and validation run, nothing is
    /// stored); the API server's refusal, if any.
    pub async fn dry_run(&self, job: &Job) -> Result<(), String> {
        let api = self.jobs(&job.namespace().unwrap_or_default());
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let what = || format!("dry-run Job {}", job.name_any());
        self.call(what, || api.create(&params, job))
            .await
            .map(|_| ())
            .map_err(|e| match e.source {
                kube::Error::Api(s) => s.message,
                other => report(&other),
            })
    }

    /// Whether the current user may `verb` `resource` (`pods/log`: a subresource) of API group
    /// `group` in `ns`, as the API server's authorizer says (a SelfSubjectAccessReview).
    pub async fn may(
        &self,
        ns: &str,
        group: &str,
        resource: &str,
        verb: &str,
    ) -> Result<bool, Error> {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, sub)) => (r, Some(sub.to_string())),
            None => (resource, None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.into()),
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    subresource,
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let params = PostParams::default();
        let reviewed = self
            .call(
                || format!("review whether this user may {verb} {resource} in {ns}"),
                || api.create(&params, &review),
            )
            .await?;
        Ok(reviewed.status.is_some_and(|s| s.allowed))
    }

    /// Creates a gang's Service, or adopts the one a previous try of the same create made.
    pub async fn create_service(&self, service: &Service) -> Result<String, String> {
        let api = Api::namespaced(
            self.client.clone(),
            &service.namespace().unwrap_or_default(),
        );
        create_or_adopt(self, &api, service).await
    }

    /// Deletes a Job and (in the background, through the garbage collector) its pods.
    pub async fn delete_job(&self, ns: &str, name: &str) -> Result<(), Error> {
        let api = self.jobs(ns);
        let params = DeleteParams::background();
        match self
            .call(
                || format!("delete Job {ns}/{name}"),
                || api.delete(name, &params),
            )
            .await
        {
            Err(e) if code(&e.source) == Some(404) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Deletes every Job matching `selector` in `ns`, with their pods.
    pub async fn delete_jobs(&self, ns: &str, selector: &str) -> Result<(), Error> {
        let api = self.jobs(ns);
        let (delete, list) = (
            DeleteParams::background(),
            ListParams::default().labels(selector),
        );
        self.call(
            || format!("delete Jobs {selector} in {ns}"),
            || api.delete_collection(&delete, &list),
        )
        .await
        .map(|_| ())
    }

    /// Deletes every pod matching `selector` in `ns` (pods whose Job was deleted without them).
    pub async fn delete_pods(&self, ns: &str, selector: &str) -> Result<(), Error> {
        let api = self.pods(ns);
        let (delete, list) = (
            DeleteParams::default(),
            ListParams::default().labels(selector),
        );
        self.call(
            || format!("delete pods {selector} in {ns}"),
            || api.delete_collection(&delete, &list),
        )
        .await
        .map(|_| ())
    }

    /// Pods matching `selector` in `ns`.
    pub async fn list_pods(&self, ns: &str, selector: &str) -> Result<Vec<Pod>, Error> {
        let api = self.pods(ns);
        let list = ListParams::default().labels(selector);
        self.call(
            || format!("list pods {selector} in {ns}"),
            || api.list(&list),
        )
        .await
        .map(|l| l.items)
    }

    /// The latest warning the Job's Events give (`FailedCreate: ...`), if any.
    pub async fn job_event(&self, ns: &str, job: &str) -> Option<String> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), ns);
        let list = ListParams::default().fields(&format!(
            "involvedObject.kind=Job,involvedObject.name={job}"
        ));
        let events = self
            .call(|| format!("events of Job {ns}/{job}"), || api.list(&list))
            .await
            .ok()?;
        events
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
    }

    /// The last lines a container printed.
    pub async fn tail(&self, ns: &str, pod: &str, container: &str, lines: i64) -> String {
        let api = self.pods(ns);
        let params = LogParams {
            container: Some(container.into()),
            tail_lines: Some(lines),
            ..LogParams::default()
        };
        self.call(|| format!("logs of {ns}/{pod}"), || api.logs(pod, &params))
            .await
            .unwrap_or_default()
    }
}

/// Creates `obj`, or adopts the object of its name that a previous try of the same create made
/// (kubestep's labels must match); its uid.
async fn create_or_adopt<K>(cluster: &Cluster, api: &Api<K>, obj: &K) -> Result<String, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let params = PostParams::default();
    let what = || format!("create {kind} {ns}/{name}");
    let found = match cluster.call(what, || api.create(&params, obj)).await {
        Ok(created) => created,
        Err(e) if code(&e.source) == Some(409) => {
            let found = cluster
                .call(|| format!("get {kind} {ns}/{name}"), || api.get(&name))
                .await
                .map_err(|e| report(&e))?;
            let ours = [
                labels::FLOW,
                labels::RUN_ID,
                labels::STEP,
                labels::TASK_ID,
                labels::ATTEMPT,
            ]
            .iter()
            .all(|k| found.labels().get(*k) == obj.labels().get(*k));
            if !ours {
                return Err(format!(
                    "{kind} {ns}/{name} exists and belongs to another task (its labels differ); delete it or use another run id"
                ));
            }
            found
        }
        Err(e) => return Err(report(&e)),
    };
    Ok(found.meta().uid.clone().unwrap_or_default())
}
