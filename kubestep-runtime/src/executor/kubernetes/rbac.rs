//! The least a user (or a service account) needs to run flows on Kubernetes, as a Role and a
//! RoleBinding per namespace: what `kubernetes rbac` prints and the e2e tests run under.

use super::cluster::Cluster;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubestep_core::labels;

/// The Role's name.
pub const ROLE: &str = "kubestep";

/// Who the binding grants the Role to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// A user, as the API server authenticates it.
    User(String),
    /// A group.
    Group(String),
    /// A service account (`namespace/name`), for an orchestrator that runs in the cluster.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// What needs a verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Every run.
    Run,
    /// A run with a multi-node step there.
    Gang,
    /// `kubernetes list|kill` only.
    Manage,
    /// `deploy` only: a deployer's (`kubernetes rbac --deployer`).
    Deploy,
}

/// An API group, a resource, and its verbs with what needs each.
type Grant = (&'static str, &'static str, &'static [(&'static str, Need)]);

/// Every permission kubestep uses, once: (API group, resource, verbs with who needs each). The
/// Role grants them all; a run checks the ones it needs before it launches anything.
/// - Jobs: `create` a task's Job, `get` it to adopt it after a retried create, `delete` a stuck
///   or failed gang's, `deletecollection` on Ctrl-C and for `kubernetes kill`, `list` for
///   `kubernetes list`.
/// - pods: `list` and `watch` (the run's one watch per namespace), `get` what `list` needs for
///   single names, `delete`/`deletecollection` to remove pods a Job left behind.
/// - pods/log: `get`, to follow each step's output.
/// - events: `list`, to say why a Job has no pod (a quota, an admission webhook).
/// - services: `create` a multi-node step's headless Service, `get` it to adopt it after a
///   retried create; it is deleted with its Job, which owns it.
/// - leases: `create`, `get`, `update` and `delete` the run's Lease (one orchestrator per run),
///   `deletecollection` for `kubernetes kill`.
/// - cronjobs: `create` a schedule, `get` and `update` it when deployed again, `list` and
///   `delete` for `deploy --list|--delete`.
const GRANTS: [Grant; 7] = [
    (
        "batch",
        "jobs",
        &[
            ("create", Need::Run),
            ("get", Need::Run),
            ("list", Need::Manage),
            ("delete", Need::Run),
            ("deletecollection", Need::Run),
        ],
    ),
    (
        "",
        "pods",
        &[
            ("get", Need::Run),
            ("list", Need::Run),
            ("watch", Need::Run),
            ("delete", Need::Manage),
            ("deletecollection", Need::Manage),
        ],
    ),
    ("", "pods/log", &[("get", Need::Run)]),
    ("", "events", &[("list", Need::Run)]),
    (
        "",
        "services",
        &[("create", Need::Gang), ("get", Need::Gang)],
    ),
    (
        "coordination.k8s.io",
        "leases",
        &[
            ("create", Need::Run),
            ("get", Need::Run),
            ("update", Need::Run),
            ("delete", Need::Run),
            ("deletecollection", Need::Manage),
        ],
    ),
    (
        "batch",
        "cronjobs",
        &[
            ("create", Need::Deploy),
            ("get", Need::Deploy),
            ("update", Need::Deploy),
            ("list", Need::Deploy),
            ("delete", Need::Deploy),
        ],
    ),
];

/// One permission a run needs in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, with a subresource after `/` (`pods/log`).
    pub resource: &'static str,
    /// The verb.
    pub verb: &'static str,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)
    }
}

/// What a run needs in a namespace: with `gang`, what its multi-node steps need too.
pub fn needed_by_run(gang: bool) -> Vec<Permission> {
    GRANTS
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .filter(move |(_, need)| *need == Need::Run || (gang && *need == Need::Gang))
                .map(move |(verb, _)| Permission {
                    group,
                    resource,
                    verb,
                })
        })
        .collect()
}

/// The Role of a user who also schedules flows (`deploy`).
pub const DEPLOYER_ROLE: &str = "kubestep-deployer";

/// The Role that grants the permissions in [`GRANTS`] in `namespace`: what runs need (a user's,
/// or a detached run's orchestrator's), and with `deployer` what `deploy` needs too.
pub fn role(namespace: &str, deployer: bool) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(role_name(deployer).into()),
            namespace: Some(namespace.into()),
            labels: Some([(labels::MANAGED_BY.into(), labels::MANAGER.into())].into()),
            ..ObjectMeta::default()
        },
        rules: Some(
            GRANTS
                .iter()
                .filter_map(|(group, resource, verbs)| {
                    let verbs: Vec<String> = verbs
                        .iter()
                        .filter(|(_, need)| deployer || *need != Need::Deploy)
                        .map(|(v, _)| v.to_string())
                        .collect();
                    (!verbs.is_empty()).then(|| PolicyRule {
                        api_groups: Some(vec![group.to_string()]),
                        resources: Some(vec![resource.to_string()]),
                        verbs,
                        ..PolicyRule::default()
                    })
                })
                .collect(),
        ),
    }
}

fn role_name(deployer: bool) -> &'static str {
    if deployer { DEPLOYER_ROLE } else { ROLE }
}

/// The ServiceAccount `name` in `namespace`: what detached runs' orchestrator pods run as.
pub fn service_account(namespace: &str, name: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some([(labels::MANAGED_BY.into(), labels::MANAGER.into())].into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// The binding of [`role`] (the deployer's with `deployer`) to `who` in `namespace`, named
/// after `who`, so the bindings of a user and of the orchestrators' ServiceAccount live side by
/// side.
pub fn binding(namespace: &str, who: &Who, deployer: bool) -> RoleBinding {
    let name = match who {
        Who::User(name) => format!("{ROLE}-user-{name}"),
        Who::Group(name) => format!("{ROLE}-group-{name}"),
        Who::ServiceAccount { namespace, name } => format!("{ROLE}-sa-{namespace}-{name}"),
    };
    let subject = match who {
        Who::User(name) => Subject {
            kind: "User".into(),
            name: name.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        },
        Who::Group(name) => Subject {
            kind: "Group".into(),
            name: name.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        },
        Who::ServiceAccount { namespace, name } => Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            api_group: None,
            namespace: Some(namespace.clone()),
        },
    };
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(kubestep_core::names::to_dns_label(&name)),
            namespace: Some(namespace.into()),
            labels: Some([(labels::MANAGED_BY.into(), labels::MANAGER.into())].into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role_name(deployer).into(),
        },
        subjects: Some(vec![subject]),
    }
}

/// The permissions a run needs that the API server says this user lacks, in each namespace
/// (`(namespace, whether a multi-node step runs there)`), as `verb resource in namespace NS`.
/// One SelfSubjectAccessReview per permission, all at once.
pub async fn missing(
    cluster: &Cluster,
    namespaces: &[(String, bool)],
) -> Result<Vec<String>, super::cluster::Error> {
    let checks = namespaces.iter().flat_map(|(ns, gang)| {
        needed_by_run(*gang)
            .into_iter()
            .map(move |p| (ns.as_str(), p))
    });
    let reviews = futures::future::join_all(checks.map(|(ns, p)| async move {
        let allowed = cluster.may(ns, p.group, p.resource, p.verb).await?;
        Ok((!allowed).then(|| format!("{p} in namespace {ns}")))
    }))
    .await;
    reviews.into_iter().filter_map(Result::transpose).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_checks_the_roles_own_verbs_and_services_only_for_a_gang() {
        let names = |gang| -> Vec<String> {
            needed_by_run(gang)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let lone = names(false);
        assert!(lone.contains(&"watch pods".into()) && lone.contains(&"get pods/log".into()));
        assert!(!lone.iter().any(|p| p.ends_with("services")), "{lone:?}");
        // What `kubernetes list|kill` alone use is not asked of a run.
        assert!(!lone.contains(&"deletecollection pods".into()), "{lone:?}");
        let gang = names(true);
        assert!(gang.contains(&"create services".into()) && gang.contains(&"get services".into()));
        // Everything a run checks, the Role grants.
        let role = role("ml", false);
        for p in needed_by_run(true) {
            assert!(
                role.rules.as_ref().unwrap().iter().any(|r| {
                    r.api_groups.as_deref() == Some(&[p.group.to_string()][..])
                        && r.resources.as_deref() == Some(&[p.resource.to_string()][..])
                        && r.verbs.iter().any(|v| v == p.verb)
                }),
                "{p} is checked but not granted"
            );
        }
        // Schedules are a deployer's to make, not a run's.
        let grants = |r: Role| -> bool {
            r.rules
                .unwrap()
                .iter()
                .any(|r| r.resources.as_deref() == Some(&["cronjobs".to_string()][..]))
        };
        assert!(grants(super::role("ml", true)) && !grants(super::role("ml", false)));
    }
}
