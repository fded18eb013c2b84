//! The rules across `#[kubernetes]` parameters, one function each, all listed in [`check`].
//!
//! They read the layered view, so the macro applies them to a step's decorators at compile time
//! (pointing at the token) and resolve applies them to the merged layers at run time (naming
//! each value's source): one rule, one place.

use super::Qos;
use super::layered::{Layered, Source};

/// A broken rule: the parameter to point at, where its value came from, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The parameter the message is about.
    pub(crate) key: &'static str,
    /// Where that parameter's value came from.
    pub(crate) source: Source,
    /// What is wrong, naming each value's source, and the fix.
    pub(crate) message: String,
}

/// Every rule, in order; `compute_pool_label` is the node label `compute_pool` selects on.
/// `layers` says whether the view merges several layers (run time), whose messages then name
/// each value's source; on the decorators alone (compile time) the error points at the token.
pub(crate) fn check(view: &Layered, compute_pool_label: &str, layers: bool) -> Vec<Violation> {
    let from = Naming(layers);
    let mut out = Vec::new();
    best_effort_has_no_requests(view, from, &mut out);
    tmpfs_size_needs_use_tmpfs(view, from, &mut out);
    tmpfs_settings_need_a_tmpfs(view, from, &mut out);
    mounts_do_not_collide(view, from, &mut out);
    compute_pool_agrees_with_node_selector(view, compute_pool_label, from, &mut out);
    non_root_on_the_default_image_needs_a_user(view, from, &mut out);
    out
}

/// How a message names where a value came from.
#[derive(Clone, Copy)]
struct Naming(bool);

impl Naming {
    fn of(self, source: &Source) -> String {
        match source {
            _ if self.0 => format!(" (from {source})"),
            Source::Resources => " in #[resources]".into(),
            _ => String::new(),
        }
    }
}

// A BestEffort pod has no requests at all, so a cpu, memory or disk the user wrote for this step
// would be dropped without a word. Defaults from the environment apply to every step and are
// not the user's request for this one: they give way to BestEffort silently.
fn best_effort_has_no_requests(view: &Layered, from: Naming, out: &mut Vec<Violation>) {
    let Some(qos) = view.qos.as_ref().filter(|q| q.value == Qos::BestEffort) else {
        return;
    };
    for (key, source) in [
        ("cpu", view.cpu.as_ref().map(|c| &c.source)),
        ("memory", view.memory.as_ref().map(|m| &m.source)),
        ("disk", view.disk.as_ref().map(|d| &d.source)),
    ] {
        if let Some(source) = source.filter(|s| s.explicit()) {
            out.push(Violation {
                key,
                source: source.clone(),
                message: format!(
                    "`{key}`{} conflicts with qos = \"BestEffort\"{}: a BestEffort pod has no cpu, memory or disk requests; remove `{key}` or choose qos \"Burstable\"",
                    from.of(source),
                    from.of(&qos.source)
                ),
            });
        }
    }
}

// The default image runs as root, so `run_as_non_root` alone makes the kubelet refuse to start
// the container ("image will run as root") after the pod was scheduled. Only the merged layers
// know the image is the default (the environment or `--with` may name another).
fn non_root_on_the_default_image_needs_a_user(
    view: &Layered,
    from: Naming,
    out: &mut Vec<Violation>,
) {
    let Some(sc) = view.security_context.as_ref() else {
        return;
    };
    if from.0
        && view.image.is_none()
        && sc.value.run_as_non_root == Some(true)
        && sc.value.run_as_user.is_none()
    {
        out.push(Violation {
            key: "security_context",
            source: sc.source.clone(),
            message: format!(
                "security_context run_as_non_root = true{} needs run_as_user: the default image `{}` runs as root, so the kubelet would refuse to start it; add run_as_user = 1000 (any uid but 0) or name an image whose user is not root",
                from.of(&sc.source),
                crate::resolve::DEFAULT_IMAGE
            ),
        });
    }
}

// `use_tmpfs = false` with a size is a contradiction, not a choice for either.
fn tmpfs_size_needs_use_tmpfs(view: &Layered, from: Naming, out: &mut Vec<Violation>) {
    if let (Some(off), Some(size)) = (
        view.use_tmpfs.as_ref().filter(|u| !u.value),
        &view.tmpfs_size,
    ) {
        out.push(Violation {
            key: "tmpfs_size",
            source: size.source.clone(),
            message: format!(
                "`tmpfs_size`{} is given but use_tmpfs = false{}; remove one of them",
                from.of(&size.source),
                from.of(&off.source)
            ),
        });
    }
}

// A setting is never silently ignored: the tmpfs path and TMPDIR need a tmpfs. (Metaflow
// ignores them.)
fn tmpfs_settings_need_a_tmpfs(view: &Layered, from: Naming, out: &mut Vec<Violation>) {
    if view.tmpfs_on() {
        return;
    }
    for (key, source) in [
        ("tmpfs_path", view.tmpfs_path.as_ref().map(|t| &t.source)),
        (
            "tmpfs_tempdir",
            view.tmpfs_tempdir.as_ref().map(|t| &t.source),
        ),
    ] {
        if let Some(source) = source {
            out.push(Violation {
                key,
                source: source.clone(),
                message: format!(
                    "`{key}`{} has no effect without a tmpfs; set use_tmpfs = true or tmpfs_size",
                    from.of(source)
                ),
            });
        }
    }
}

// Two volumes at one path, or one over a path kubestep mounts itself, fail at pod creation
// (or hide the binary); say so before.
fn mounts_do_not_collide(view: &Layered, from: Naming, out: &mut Vec<Violation>) {
    let claims = view.persistent_volume_claims.iter().map(|(c, m)| {
        (
            "persistent_volume_claims",
            &m.source,
            format!("persistent_volume_claims {c:?}{}", from.of(&m.source)),
            m.value.as_str(),
        )
    });
    // The built-in tmpfs path counts too: a claim there would collide with it.
    let tmpfs_mount = view.tmpfs_mount();
    let tmpfs = tmpfs_mount.iter().map(|p| {
        (
            "tmpfs_path",
            &p.source,
            format!("tmpfs_path{}", from.of(&p.source)),
            p.value.as_str(),
        )
    });
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (key, source, what, path) in claims.chain(tmpfs) {
        let norm = path.trim_end_matches('/');
        let message = if norm == "/dev/shm" || norm == "/kubestep" || norm.starts_with("/kubestep/")
        {
            format!("{what} mounts at {path:?}, a path kubestep uses itself (/dev/shm, /kubestep)")
        } else if let Some((other, _)) = seen.iter().find(|(_, p)| p.trim_end_matches('/') == norm)
        {
            format!("{what} and {other} both mount at {path:?}")
        } else {
            seen.push((what, path));
            continue;
        };
        out.push(Violation {
            key,
            source: source.clone(),
            message,
        });
        return;
    }
}

// `compute_pool` is a node selector on one label. Given with a different value for that label
// in the same layer, neither can be meant; across layers the higher one wins (resolve).
fn compute_pool_agrees_with_node_selector(
    view: &Layered,
    label: &str,
    from: Naming,
    out: &mut Vec<Violation>,
) {
    if let Some(pool) = &view.compute_pool
        && let Some(sel) = view.node_selector.get(label)
        && sel.value != pool.value
        && sel.source.rank() == pool.source.rank()
    {
        out.push(Violation {
            key: "compute_pool",
            source: pool.source.clone(),
            message: format!(
                "compute_pool {:?}{} conflicts with node_selector {label}={:?}{}; give the pool once",
                pool.value,
                from.of(&pool.source),
                sel.value,
                from.of(&sel.source)
            ),
        });
    }
}
