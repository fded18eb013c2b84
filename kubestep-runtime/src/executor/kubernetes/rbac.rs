//! The least a user (or a service account) needs to run flows on Kubernetes, as a Role and a
//! RoleBinding per namespace: what `kubernetes rbac` prints and the e2e tests run under.

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

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// Each verb, and why kubestep needs it:
/// - Jobs: `create` a task's Job, `get` it to adopt it after a retried create, `list` and
///   `delete`/`deletecollection` for `kubernetes list|kill` and Ctrl-C.
/// - pods: `list` and `watch` (the run's one watch per namespace), `get` is what `list` needs
///   for single names, `delete`/`deletecollection` to remove pods a Job left behind.
/// - pods/log: `get`, to follow each step's output.
/// - events: `list`, to say why a Job has no pod (a quota, an admission webhook).
/// - services: `create` a multi-node step's headless Service, `get` it to adopt it after a
///   retried create; it is deleted with its Job, which owns it.
pub fn role(namespace: &str) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(ROLE.into()),
            namespace: Some(namespace.into()),
            labels: Some([(labels::MANAGED_BY.into(), labels::MANAGER.into())].into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                "batch",
                &["jobs"],
                &["create", "get", "list", "delete", "deletecollection"],
            ),
            rule(
                "",
                &["pods"],
                &["get", "list", "watch", "delete", "deletecollection"],
            ),
            rule("", &["pods/log"], &["get"]),
            rule("", &["events"], &["list"]),
            rule("", &["services"], &["create", "get"]),
        ]),
    }
}

/// The binding of [`role`] to `who` in `namespace`.
pub fn binding(namespace: &str, who: &Who) -> RoleBinding {
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
            name: Some(ROLE.into()),
            namespace: Some(namespace.into()),
            labels: Some([(labels::MANAGED_BY.into(), labels::MANAGER.into())].into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: ROLE.into(),
        },
        subjects: Some(vec![subject]),
    }
}
