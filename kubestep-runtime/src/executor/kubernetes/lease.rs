//! One orchestrator per run: a `coordination.k8s.io` Lease named after the run, held while an
//! orchestrator (a local `run`, a `run --recover`, a detached run's pod) drives it. A second
//! orchestrator of the same run waits for the Lease to be released or to expire, or is refused;
//! one that can no longer renew it stops before it could act beside its successor.
//!
//! The holder renews every [`RENEW_EVERY`]; a holder that dies (SIGKILL, a lost node) leaves a
//! Lease that expires [`DURATION`] after its last renewal. A holder that stops in order
//! deletes it, so the next one starts at once.

use super::cluster::{Cluster, Error as ClusterError, code};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// How long a Lease stays valid after its last renewal.
pub const DURATION: Duration = Duration::from_secs(20);

/// How often the holder renews it: several tries fit in [`DURATION`].
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The run's Lease cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another orchestrator holds it, and kept it for as long as this one would wait.
    #[error(
        "run {run_id} is driven by another orchestrator, {holder} (it holds the Lease {namespace}/{name}, renewed {ago} s ago); only one orchestrator drives a run: let it finish, or stop it (`kubernetes kill --run-id {run_id}` stops the run)"
    )]
    Held {
        /// The run.
        run_id: String,
        /// Who holds it.
        holder: String,
        /// The Lease's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Seconds since its last renewal.
        ago: i64,
    },
    /// The API server failed or refused.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Where a run's Lease is and what it says.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (the run's selector, so `kubernetes kill` finds it).
    pub labels: BTreeMap<String, String>,
    /// The run, to name it in errors.
    pub run_id: String,
    /// This orchestrator, as the Lease names its holder.
    pub holder: String,
}

/// A held Lease. While it lives it is renewed; [`Held::lost`] fires if it stops being this
/// orchestrator's.
pub struct Held {
    spec: Spec,
    api: Api<Lease>,
    cluster: Cluster,
    lost: watch::Receiver<Option<String>>,
    renewal: tokio::task::JoinHandle<()>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Seconds from `t` to now.
fn age(t: Option<&MicroTime>) -> i64 {
    t.map_or(i64::MAX, |t| Timestamp::now().as_second() - t.0.as_second())
}

/// Whether `lease` binds anyone now: a holder that renewed it within its duration.
fn holder(lease: &Lease) -> Option<(String, i64)> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let ago = age(spec.renew_time.as_ref().or(spec.acquire_time.as_ref()));
    let valid = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    (ago <= valid).then_some((holder, ago))
}

fn held_by(spec: &Spec, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(spec.holder.clone()),
        lease_duration_seconds: Some(DURATION.as_secs() as i32),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Takes the run's Lease, waiting up to `wait` for another holder to release it or let it
/// expire; then renews it in the background until it is released or dropped.
///
/// # Errors
/// Another orchestrator holds it still after `wait`, or the API server fails.
pub async fn acquire(cluster: &Cluster, spec: Spec, wait: Duration) -> Result<Held, Error> {
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), &spec.namespace);
    let deadline = tokio::time::Instant::now() + wait;
    let what = || format!("take Lease {}/{}", spec.namespace, spec.name);
    let post = PostParams::default();
    // A new run's Lease does not exist yet: its create comes first, without a read.
    let mut read = false;
    let written = loop {
        let current = if read {
            match cluster.call(what, || api.get(&spec.name)).await {
                Ok(l) => Some(l),
                Err(e) if code(&e.source) == Some(404) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        read = true;
        let taken = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(spec.name.clone()),
                        namespace: Some(spec.namespace.clone()),
                        labels: Some(spec.labels.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_by(&spec, 0)),
                };
                cluster.call(what, || api.create(&post, &lease)).await
            }
            Some(lease) => match holder(&lease) {
                Some((other, ago)) if other != spec.holder => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Held {
                            run_id: spec.run_id.clone(),
                            holder: other,
                            namespace: spec.namespace.clone(),
                            name: spec.name.clone(),
                            ago,
                        });
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                _ => {
                    // Free or expired: taken over, guarded by its resourceVersion so two
                    // takers cannot both win.
                    let transitions = lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.lease_transitions)
                        .unwrap_or(0);
                    let mut next = lease.clone();
                    next.spec = Some(held_by(&spec, transitions + 1));
                    cluster
                        .call(what, || api.replace(&spec.name, &post, &next))
                        .await
                }
            },
        };
        match taken {
            Ok(written) => break written,
            // Someone else created or changed it between our read and write: read again.
            Err(e) if code(&e.source) == Some(409) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let (tell, lost) = watch::channel(None);
    let renewal = tokio::spawn(renew(
        cluster.clone(),
        api.clone(),
        spec.clone(),
        written,
        tell,
    ));
    Ok(Held {
        spec,
        api,
        cluster: cluster.clone(),
        lost,
        renewal,
    })
}

/// Renews the Lease until it is no longer ours, saying why on `tell`. One request a renewal:
/// the last written Lease is written again with a new renewal time; a conflict (someone else
/// wrote it) is read, and ends the renewals if the Lease changed hands.
async fn renew(
    cluster: Cluster,
    api: Api<Lease>,
    spec: Spec,
    mut last: Lease,
    tell: watch::Sender<Option<String>>,
) {
    let what = || format!("renew Lease {}/{}", spec.namespace, spec.name);
    let holder = |l: &Lease| l.spec.as_ref().and_then(|s| s.holder_identity.clone());
    let mut renewed = tokio::time::Instant::now();
    let mut wait = RENEW_EVERY;
    let why = loop {
        tokio::time::sleep(wait).await;
        wait = RENEW_EVERY;
        let mut next = last.clone();
        if let Some(s) = next.spec.as_mut() {
            s.renew_time = Some(now());
        }
        let post = PostParams::default();
        match cluster
            .call(what, || api.replace(&spec.name, &post, &next))
            .await
        {
            Ok(written) => {
                last = written;
                renewed = tokio::time::Instant::now();
            }
            Err(e) if code(&e.source) == Some(409) => match api.get(&spec.name).await {
                Ok(current) if holder(&current).as_deref() == Some(spec.holder.as_str()) => {
                    last = current;
                    wait = Duration::ZERO;
                }
                Ok(current) => {
                    break format!(
                        "is now held by {}",
                        holder(&current).unwrap_or_else(|| "nobody".into())
                    );
                }
                Err(_) => {}
            },
            Err(e) if code(&e.source) == Some(404) => {
                break "was deleted (the run was killed, or its orchestrator Job deleted)".into();
            }
            // Not renewed for its whole duration: another orchestrator may take it now.
            Err(e) if renewed.elapsed() >= DURATION => {
                break format!(
                    "could not be renewed for {} s: {}",
                    DURATION.as_secs(),
                    crate::report::report(&e)
                );
            }
            Err(_) => {}
        }
    };
    let _ = tell.send(Some(format!(
        "the Lease {}/{} of run {} {why}",
        spec.namespace, spec.name, spec.run_id
    )));
}

impl Held {
    /// Resolves when the Lease stops being this orchestrator's, with why.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The renewal task ended without a word: it was aborted by `release`.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops renewing and deletes the Lease (if still ours), so the next orchestrator of the run
    /// need not wait for it to expire.
    pub async fn release(self) {
        self.renewal.abort();
        let Ok(lease) = self.api.get(&self.spec.name).await else {
            return;
        };
        let mine = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.spec.holder.as_str());
        if mine {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.metadata.resource_version,
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            let _ = self
                .cluster
                .call(
                    || format!("release Lease {}/{}", self.spec.namespace, self.spec.name),
                    || self.api.delete(&self.spec.name, &params),
                )
                .await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_ago: i64, duration: i32) -> Lease {
        let t = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago);
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(t)),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_binds_only_while_renewed_within_its_duration() {
        assert_eq!(
            holder(&lease(Some("a"), 3, 20)).map(|h| h.0),
            Some("a".into())
        );
        assert_eq!(holder(&lease(Some("a"), 25, 20)), None);
        assert_eq!(holder(&lease(None, 0, 20)), None);
        assert_eq!(holder(&lease(Some(""), 0, 20)), None);
    }
}
