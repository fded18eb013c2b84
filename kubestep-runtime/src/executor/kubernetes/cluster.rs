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

/// Why no client could be made: the configuration, not the server, is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing names a cluster.
    #[error(
        "no cluster is configured (no KUBECONFIG, no ~/.kube/config, and not in a pod); point KUBECONFIG at one"
    )]
    NotConfigured,
    /// The kubeconfig is missing, unreadable or not a usable kubeconfig.
    #[error(
        "the kubeconfig {path} cannot be used: {reason}; fix it, or point KUBECONFIG at another"
    )]
    Kubeconfig {
        /// Where it was looked for (KUBECONFIG's value, or ~/.kube/config).
        path: String,
        /// Why, on one line.
        reason: String,
    },
    /// In a pod, its service account's token or CA could not be read.
    #[error("this pod's service account cannot reach the cluster: {0}")]
    InCluster(String),
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
    /// The API server's URL, to name it when it cannot be reached.
    pub server: String,
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

/// Exponential backoff with jitter from 100 ms, each wait at most `max_delay`, `times` retries.
fn backoff(max_delay: Duration, times: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(max_delay)
        .with_max_times(times)
        .with_jitter()
}

/// The text of a `Warning` header (RFC 7234: `299 - "text"`).
fn warning_text(header: &str) -> String {
    let text = header
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or(header)
        .trim()
        .trim_matches('"');
    text.replace("\\\"", "\"")
}

/// The kubeconfig kube reads: KUBECONFIG's value when set, else `~/.kube/config` if it exists.
fn kubeconfig_path() -> Option<String> {
    match std::env::var("KUBECONFIG") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let home = std::env::var_os("HOME")?;
            let default = std::path::Path::new(&home).join(".kube/config");
            default.exists().then(|| default.display().to_string())
        }
    }
}

impl Cluster {
    /// A client from KUBECONFIG (or `~/.kube/config`), else the in-cluster service account.
    /// A kubeconfig that is named but cannot be used is an error, never skipped for another.
    pub async fn connect(qps: u32) -> Result<Cluster, ConnectError> {
        let kubeconfig = kubeconfig_path();
        let mut config = match &kubeconfig {
            Some(path) => {
                let unusable = |e: &dyn std::error::Error| ConnectError::Kubeconfig {
                    path: path.clone(),
                    reason: report(e),
                };
                let kc = kube::config::Kubeconfig::read().map_err(|e| unusable(&e))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| unusable(&e))?
            }
            None if std::env::var("KUBERNETES_SERVICE_HOST").is_ok_and(|h| !h.is_empty()) => {
                kube::Config::incluster().map_err(|e| ConnectError::InCluster(report(&e)))?
            }
            None => return Err(ConnectError::NotConfigured),
        };
        // A half-open connection must end: longer than the watch's own idle limit (290 s + 5),
        // and a log stream cut by it is reopened from its last line.
        config.read_timeout = Some(Duration::from_secs(300));
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| ConnectError::Kubeconfig {
            path: kubeconfig.unwrap_or_else(|| "of this pod".into()),
            reason: report(&e),
        })?;
        Ok(Cluster::new(client, server, qps))
    }

    /// Wraps a client of the API server at `server`; at most `qps` requests a second, in
    /// bursts of up to twice that.
    pub fn new(client: kube::Client, server: String, qps: u32) -> Cluster {
        let qps = NonZeroU32::new(qps.max(1)).expect("at least 1");
        let burst = qps.saturating_mul(NonZeroU32::new(2).expect("2"));
        Cluster {
            client,
            server,
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(burst),
            )),
        }
    }

    /// What a run's first request failing means: a server that cannot be reached, or one that
    /// refuses the credentials, each said with its fix; any other answer as it is.
    pub fn first_contact(&self, e: Error) -> super::Error {
        match &e.source {
            kube::Error::Api(s) if s.code == 401 => super::Error::Unauthorized {
                server: self.server.clone(),
            },
            kube::Error::Api(_) => super::Error::Cluster(e),
            other => super::Error::Unreachable {
                server: self.server.clone(),
                cause: report(other),
            },
        }
    }

    /// Runs a request under the rate limit, retrying transient failures with backoff for about
    /// 40 s (an API server's restart).
    pub async fn call<T, F, Fut>(&self, what: impl Fn() -> String, f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.call_with(backoff(Duration::from_secs(10), 8), what, f)
            .await
    }

    /// [`Cluster::call`] with `backoff`.
    async fn call_with<T, F, Fut>(
        &self,
        backoff: ExponentialBuilder,
        what: impl Fn() -> String,
        mut f: F,
    ) -> Result<T, Error>
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
            .retry(backoff)
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

    /// CronJobs of a namespace (schedules).
    pub fn cron_jobs(&self, ns: &str) -> Api<k8s_openapi::api::batch::v1::CronJob> {
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
    /// stored): the API server's warnings if it accepts it (Pod Security's "would violate"
    /// among them), its refusal if not.
    pub async fn dry_run(&self, job: &Job) -> Result<Vec<String>, String> {
        let ns = job.namespace().unwrap_or_default();
        let body = serde_json::to_vec(job).map_err(|e| e.to_string())?;
        let url = format!("/apis/batch/v1/namespaces/{ns}/jobs?dryRun=All");
        let send = || async {
            // By hand: kube's typed create drops the response's `Warning` headers.
            let request = http::Request::post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(kube::client::Body::from(body.clone()))
                .map_err(kube::Error::HttpError)?;
            let response = self.client.send(request).await?;
            let warnings: Vec<String> = response
                .headers()
                .get_all(http::header::WARNING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(warning_text)
                .collect();
            let code = response.status();
            let bytes = response.into_body().collect_bytes().await?;
            // A Job of this name exists only when the run's own first attempt made it: a run
            // continued by `run --recover`, whose Job admission accepted then.
            if code.is_success() || code == http::StatusCode::CONFLICT {
                return Ok(warnings);
            }
            let status =
                serde_json::from_slice::<kube::core::Status>(&bytes).unwrap_or_else(|_| {
                    kube::core::Status::failure(&String::from_utf8_lossy(&bytes), "")
                        .with_code(code.as_u16())
                });
            Err(kube::Error::Api(Box::new(status)))
        };
        self.call(|| format!("dry-run Job {}", job.name_any()), send)
            .await
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
        // A run's first requests give up after a few seconds: a server that does not answer at
        // the start is named at once, not after the patient retries of `call`.
        let reviewed = self
            .call_with(
                backoff(Duration::from_secs(1), 5),
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

    /// Deletes every Lease matching `selector` in `ns` (a run's, for `kubernetes kill`).
    pub async fn delete_leases(&self, ns: &str, selector: &str) -> Result<(), Error> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), ns);
        let (delete, list) = (
            DeleteParams::default(),
            ListParams::default().labels(selector),
        );
        self.call(
            || format!("delete Leases {selector} in {ns}"),
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
