//! One pod's life on the agent, as a kubelet lives it: images, config, volumes, init containers
//! in order, then the containers, the deadline, deletion, and the status after every step.

use super::sandbox::{self, Exit, Mount, Spec};
use super::{Agent, PodEntry, Stop};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kubestep_core::Value;
use kubestep_core::quantity::{Size, Unit};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::watch;

fn now() -> String {
    Timestamp::now().to_string()
}

fn bytes_of(quantity: &str) -> Option<u64> {
    Size::from_value(&Value::string(quantity), Unit::Megabytes)
        .ok()
        .map(|s| s.bytes() as u64)
}

/// The pod's status as the agent reports it.
struct Status {
    phase: &'static str,
    reason: Option<String>,
    message: Option<String>,
    ip: String,
    start: String,
    initialized: bool,
    ready: bool,
    init: Vec<Json>,
    containers: Vec<Json>,
    conditions_extra: Vec<Json>,
}

fn waiting(c: &Container, reason: &str, message: Option<&str>) -> Json {
    let mut w = json!({"reason": reason});
    if let Some(m) = message {
        w["message"] = json!(m);
    }
    json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": w}})
}

fn running(c: &Container, id: &str, started: &str) -> Json {
    json!({"name": c.name, "image": c.image, "imageID": format!("testenv://{}", c.image.as_deref().unwrap_or("")), "containerID": format!("testenv://{id}"),
        "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}})
}

fn terminated(
    c: &Container,
    id: &str,
    started: &str,
    exit: Exit,
    reason: &str,
    message: Option<String>,
) -> Json {
    let mut t = json!({"exitCode": exit.code, "reason": reason, "startedAt": started, "finishedAt": now(), "containerID": format!("testenv://{id}")});
    if let Some(m) = message {
        t["message"] = json!(m);
    }
    json!({"name": c.name, "image": c.image, "imageID": format!("testenv://{}", c.image.as_deref().unwrap_or("")), "containerID": format!("testenv://{id}"),
        "ready": false, "restartCount": 0, "started": false, "state": {"terminated": t}})
}

impl Status {
    fn json(&self) -> Json {
        let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now()});
        let mut conditions = vec![
            cond("Initialized", self.initialized),
            cond("Ready", self.ready),
            cond("ContainersReady", self.ready),
            cond("PodScheduled", true),
        ];
        conditions.extend(self.conditions_extra.iter().cloned());
        let mut s = json!({"phase": self.phase, "hostIP": "127.0.0.1", "podIP": self.ip, "podIPs": [{"ip": self.ip}], "startTime": self.start,
            "conditions": conditions, "containerStatuses": self.containers, "qosClass": null});
        if !self.init.is_empty() {
            s["initContainerStatuses"] = json!(self.init);
        }
        s["reason"] = json!(self.reason);
        s["message"] = json!(self.message);
        s
    }
}

struct Life {
    agent: Arc<Agent>,
    api: Api<Pod>,
    pod: Pod,
    ns: String,
    name: String,
    dir: PathBuf,
    status: Status,
    stop: watch::Receiver<Stop>,
}

impl Life {
    async fn publish(&self) {
        let patch = Patch::Merge(json!({"status": self.status.json()}));
        for _ in 0..5 {
            match self
                .api
                .patch_status(&self.name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        self.pod.spec.as_ref().expect("a bound pod has a spec")
    }

    /// Waits up to `d`; true if the pod must stop meanwhile.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.stop.changed() => true,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() != Stop::Run
    }

    /// Resolves one container's environment; the error is a kubelet's CreateContainerConfigError message.
    async fn env(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let maps: Api<ConfigMap> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let mut out = Vec::new();
        let spec = self.spec();
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.secret_ref {
                match secrets.get_opt(&r.name).await.ok().flatten() {
                    Some(s) => out.extend(s.data.unwrap_or_default().into_iter().map(|(k, v)| {
                        (
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        )
                    })),
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("secret \"{}\" not found", r.name)),
                }
            }
            if let Some(r) = &from.config_map_ref {
                match maps.get_opt(&r.name).await.ok().flatten() {
                    Some(m) => out.extend(
                        m.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (format!("{prefix}{k}"), v)),
                    ),
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("configmap \"{}\" not found", r.name)),
                }
            }
        }
        for e in c.env.iter().flatten() {
            let value = match &e.value_from {
                None => e.value.clone().unwrap_or_default(),
                Some(from) => {
                    if let Some(f) = &from.field_ref {
                        match f.field_path.as_str() {
                            "metadata.name" => self.name.clone(),
                            "metadata.namespace" => self.ns.clone(),
                            "metadata.uid" => self.pod.metadata.uid.clone().unwrap_or_default(),
                            "spec.nodeName" => spec.node_name.clone().unwrap_or_default(),
                            "spec.serviceAccountName" => {
                                spec.service_account_name.clone().unwrap_or_default()
                            }
                            "status.hostIP" => "127.0.0.1".into(),
                            "status.podIP" => self.status.ip.clone(),
                            other => return Err(format!("unsupported fieldRef {other}")),
                        }
                    } else if let Some(k) = &from.secret_key_ref {
                        let data = secrets
                            .get_opt(&k.name)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|s| s.data);
                        match data.as_ref().and_then(|d| d.get(&k.key)) {
                            Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                            None if k.optional == Some(true) => continue,
                            None if data.is_none() => {
                                return Err(format!("secret \"{}\" not found", k.name));
                            }
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    k.key, self.ns, k.name
                                ));
                            }
                        }
                    } else if let Some(k) = &from.config_map_key_ref {
                        let data = maps
                            .get_opt(&k.name)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|m| m.data);
                        match data.as_ref().and_then(|d| d.get(&k.key)) {
                            Some(v) => v.clone(),
                            None if k.optional == Some(true) => continue,
                            None if data.is_none() => {
                                return Err(format!("configmap \"{}\" not found", k.name));
                            }
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    k.key, self.ns, k.name
                                ));
                            }
                        }
                    } else {
                        return Err(format!("unsupported valueFrom for {}", e.name));
                    }
                }
            };
            out.push((e.name.clone(), value));
        }
        Ok(out)
    }

    /// Prepares the pod's volumes as host directories; name -> host path.
    async fn volumes(&self) -> Result<HashMap<String, PathBuf>, String> {
        let mut out = HashMap::new();
        let secrets: Api<Secret> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let maps: Api<ConfigMap> = Api::namespaced(self.agent.client.clone(), &self.ns);
        for v in self.spec().volumes.iter().flatten() {
            let dir = self.dir.join("volumes").join(&v.name);
            let path = if let Some(e) = &v.empty_dir {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                // Retries (a Secret still missing) must not stack a new tmpfs on the old one.
                let mounted = std::fs::read_to_string("/proc/mounts")
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.split(' ').nth(1) == dir.to_str());
                if e.medium.as_deref() == Some("Memory") && !mounted {
                    let size = e
                        .size_limit
                        .as_ref()
                        .and_then(|q| bytes_of(&q.0))
                        .unwrap_or(64 << 20);
                    let out = std::process::Command::new("mount")
                        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                        .arg(&dir)
                        .output()
                        .map_err(|e| e.to_string())?;
                    if !out.status.success() {
                        return Err(format!(
                            "mount tmpfs for {}: {}",
                            v.name,
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                }
                dir
            } else if let Some(c) = &v.persistent_volume_claim {
                let claim = self.agent.claim_dir(&self.ns, &c.claim_name);
                std::fs::create_dir_all(&claim).map_err(|e| e.to_string())?;
                claim
            } else if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let secret = secrets
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("secret \"{name}\" not found"))?;
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                for (k, v) in secret.data.unwrap_or_default() {
                    std::fs::write(dir.join(k), &v.0).map_err(|e| e.to_string())?;
                }
                dir
            } else if let Some(m) = &v.config_map {
                let map = maps
                    .get_opt(&m.name)
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("configmap \"{}\" not found", m.name))?;
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                for (k, v) in map.data.unwrap_or_default() {
                    std::fs::write(dir.join(k), v).map_err(|e| e.to_string())?;
                }
                dir
            } else if let Some(h) = &v.host_path {
                PathBuf::from(&h.path)
            } else {
                return Err(format!(
                    "volume {} has a type the testenv agent does not support",
                    v.name
                ));
            };
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }

    fn container_spec(
        &self,
        c: &Container,
        env: Vec<(String, String)>,
        volumes: &HashMap<String, PathBuf>,
        id: &str,
    ) -> Spec {
        let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
        argv.extend(c.args.clone().unwrap_or_default());
        if argv.is_empty() {
            argv.push("sh".into());
        }
        let mounts = c
            .volume_mounts
            .iter()
            .flatten()
            .filter_map(|m| {
                volumes.get(&m.name).map(|h| Mount {
                    host: h.clone(),
                    path: m.mount_path.clone(),
                    read_only: m.read_only == Some(true),
                })
            })
            .collect();
        let memory_limit = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| bytes_of(&q.0));
        let mut env = env;
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(
                0,
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
            );
        }
        env.push(("HOSTNAME".into(), self.hostname()));
        Spec {
            argv,
            env,
            workdir: c.working_dir.clone().unwrap_or_else(|| "/".into()),
            mounts,
            memory_limit,
            hostname: self.hostname(),
            hosts_file: self.dir.join("hosts"),
            log: self.dir.join(format!("{}.log", c.name)),
            id: id.to_string(),
        }
    }

    fn hostname(&self) -> String {
        let h = self
            .spec()
            .hostname
            .clone()
            .unwrap_or_else(|| self.name.clone());
        h.chars().take(63).collect()
    }

    /// Runs one container to its end, honouring stops and the pod deadline.
    async fn run_container(
        &mut self,
        c: &Container,
        spec: Spec,
        deadline: Option<tokio::time::Instant>,
        init: bool,
    ) -> (Exit, Option<&'static str>) {
        let id = spec.id.clone();
        let started = now();
        let running_container = match sandbox::start(&spec).await {
            Ok(r) => r,
            Err(e) => {
                let exit = Exit {
                    code: 128,
                    oom_killed: false,
                };
                let status = terminated(c, &id, &started, exit, "StartError", Some(e.to_string()));
                self.set_container(c, status, init);
                return (exit, None);
            }
        };
        self.set_container(c, running(c, &id, &started), init);
        self.publish().await;
        let grace = self.spec().termination_grace_period_seconds.unwrap_or(30);
        let cgroup = sandbox::cgroup_of(&id);
        let sandbox_pid = running_container.sandbox_pid();
        let wait = running_container.wait();
        tokio::pin!(wait);
        let mut why = None;
        let sleep_until = deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));
        let signal = |sig| {
            sandbox::signal_cgroup(
                &cgroup,
                sig,
                if sig == libc::SIGKILL {
                    None
                } else {
                    sandbox_pid
                },
            )
        };
        let exit = loop {
            tokio::select! {
                exit = &mut wait => break exit,
                _ = tokio::time::sleep_until(sleep_until), if why.is_none() => {
                    why = Some("DeadlineExceeded");
                    signal(libc::SIGKILL);
                }
                changed = self.stop.changed(), if why.is_none() => {
                    if changed.is_err() { continue; }
                    let stop = self.stop.borrow().clone();
                    match stop {
                        Stop::Run => {}
                        Stop::Delete(g) => {
                            why = Some("Deleted");
                            signal(libc::SIGTERM);
                            let g = if g > 0 { g } else { grace };
                            let cg = cgroup.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(g.max(0) as u64)).await;
                                sandbox::signal_cgroup(&cg, libc::SIGKILL, None);
                            });
                        }
                        Stop::Evict => { why = Some("Evicted"); signal(libc::SIGKILL); }
                        Stop::Kill(ref name) if *name == c.name => { why = Some("Killed"); signal(libc::SIGKILL); }
                        Stop::Kill(_) => {}
                    }
                }
            }
        };
        let (reason, message) = if exit.oom_killed {
            ("OOMKilled", None)
        } else if exit.code == 0 {
            ("Completed", None)
        } else {
            ("Error", None)
        };
        self.set_container(c, terminated(c, &id, &started, exit, reason, message), init);
        (exit, why)
    }

    fn set_container(&mut self, c: &Container, status: Json, init: bool) {
        let list = if init {
            &mut self.status.init
        } else {
            &mut self.status.containers
        };
        if let Some(slot) = list.iter_mut().find(|s| s["name"] == json!(c.name)) {
            *slot = status;
        }
    }
}

/// Runs a pod from binding to its end.
pub async fn run(agent: Arc<Agent>, pod: Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = agent.dir.join("pods").join(&uid);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n");
    let spec = pod.spec.clone().unwrap_or_default();
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let ip = agent.next_ip();
    let mut logs = HashMap::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        logs.insert(
            c.name.clone(),
            (
                dir.join(format!("{}.log", c.name)),
                Arc::new(AtomicBool::new(false)),
            ),
        );
    }
    {
        let entry = PodEntry {
            uid: uid.clone(),
            ip: ip.clone(),
            hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
            subdomain: spec.subdomain.clone(),
            hosts_file: dir.join("hosts"),
            logs: logs.clone(),
            stop: stop_tx,
        };
        agent
            .registry
            .pods
            .lock()
            .expect("registry lock")
            .insert((ns.clone(), name.clone()), entry);
    }
    agent.registry.refresh_hosts();
    let status = Status {
        phase: "Pending",
        reason: None,
        message: None,
        ip,
        start: now(),
        initialized: spec.init_containers.as_ref().is_none_or(|i| i.is_empty()),
        ready: false,
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| waiting(c, "PodInitializing", None))
            .collect(),
        containers: spec
            .containers
            .iter()
            .map(|c| waiting(c, "ContainerCreating", None))
            .collect(),
        conditions_extra: Vec::new(),
    };
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &ns);
    let mut life = Life {
        agent: agent.clone(),
        api,
        pod,
        ns: ns.clone(),
        name: name.clone(),
        dir: dir.clone(),
        status,
        stop: stop_rx,
    };
    life.publish().await;
    let deadline = spec
        .active_deadline_seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s.max(0) as u64));
    let outcome = lifecycle(&mut life, &spec, deadline).await;
    for (_, done) in logs.values() {
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // Memory-backed emptyDirs are tmpfs mounts; unmount them with the pod.
    for v in spec.volumes.iter().flatten().filter(|v| {
        v.empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() == Some("Memory"))
    }) {
        let _ = std::process::Command::new("umount")
            .arg(dir.join("volumes").join(&v.name))
            .output();
    }
    if outcome == Outcome::Finished {
        life.publish().await;
        // Wait for the deletion (by the Job's TTL, the garbage collector or a user).
        let mut stop = life.stop.clone();
        while stop.changed().await.is_ok() {
            if matches!(*stop.borrow(), Stop::Delete(_)) {
                break;
            }
        }
    }
    agent.forget(&ns, &name).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Finished,
    Deleted,
}

async fn lifecycle(
    life: &mut Life,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    deadline: Option<tokio::time::Instant>,
) -> Outcome {
    let all: Vec<Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .cloned()
        .collect();
    // Held pods (a test fault) stay Pending until released or deleted.
    while life.agent.is_held(&life.ns, &life.name) {
        if life.sleep_or_stop(Duration::from_millis(200)).await {
            return Outcome::Deleted;
        }
    }
    // Images: anything outside the catalogue fails to pull, then backs off, as on a real node.
    let mut attempts = 0;
    loop {
        let missing: Vec<&Container> = all
            .iter()
            .filter(|c| {
                !life
                    .agent
                    .images
                    .contains(&super::normalise_image(c.image.as_deref().unwrap_or("")))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        let reason = if attempts % 2 == 0 {
            "ErrImagePull"
        } else {
            "ImagePullBackOff"
        };
        for c in &missing {
            let image = c.image.clone().unwrap_or_default();
            let message = if reason == "ErrImagePull" {
                format!(
                    "rpc error: code = Unknown desc = failed to pull and unpack image \"{image}\": not found in the testenv image catalogue"
                )
            } else {
                format!("Back-off pulling image \"{image}\"")
            };
            let status = waiting(c, reason, Some(&message));
            let init = spec
                .init_containers
                .iter()
                .flatten()
                .any(|i| i.name == c.name);
            life.set_container(c, status, init);
        }
        life.publish().await;
        attempts += 1;
        if life.sleep_or_stop(Duration::from_secs(2)).await {
            return Outcome::Deleted;
        }
    }
    let volumes = loop {
        match life.volumes().await {
            Ok(v) => break v,
            Err(message) => {
                life.status.message = Some(message);
                life.publish().await;
                if life.sleep_or_stop(Duration::from_secs(1)).await {
                    return Outcome::Deleted;
                }
            }
        }
    };
    let uid = life.pod.metadata.uid.clone().unwrap_or_default();
    // Init containers, in order; the first failure fails the pod (restartPolicy Never).
    for c in spec.init_containers.iter().flatten() {
        let Some(env) = config_or_wait(life, c, true).await else {
            return Outcome::Deleted;
        };
        let id = format!("{uid}-{}", c.name);
        let cs = life.container_spec(c, env, &volumes, &id);
        let (exit, why) = life.run_container(c, cs, deadline, true).await;
        if let Some(o) = ended_by(life, why) {
            return o;
        }
        if exit.code != 0 {
            life.status.phase = "Failed";
            for main in &spec.containers {
                life.set_container(main, waiting(main, "PodInitializing", None), false);
            }
            return Outcome::Finished;
        }
    }
    life.status.initialized = true;
    // Containers: kubelet starts them one after another and they run side by side; with one
    // container per step pod, in turn is enough here.
    let mut envs = Vec::new();
    for c in &spec.containers {
        let Some(env) = config_or_wait(life, c, false).await else {
            return Outcome::Deleted;
        };
        envs.push(env);
    }
    life.status.phase = "Running";
    life.status.ready = true;
    let mut failed = false;
    for (c, env) in spec.containers.iter().zip(envs) {
        let id = format!("{uid}-{}", c.name);
        let cs = life.container_spec(c, env, &volumes, &id);
        let (exit, why) = life.run_container(c, cs, deadline, false).await;
        if let Some(o) = ended_by(life, why) {
            return o;
        }
        failed |= exit.code != 0;
    }
    life.status.ready = false;
    life.status.phase = if failed { "Failed" } else { "Succeeded" };
    Outcome::Finished
}

/// Resolves a container's config, waiting (CreateContainerConfigError) while a Secret or
/// ConfigMap is missing, as a kubelet retries; None if the pod is deleted meanwhile.
async fn config_or_wait(
    life: &mut Life,
    c: &Container,
    init: bool,
) -> Option<Vec<(String, String)>> {
    loop {
        match life.env(c).await {
            Ok(env) => return Some(env),
            Err(message) => {
                life.set_container(
                    c,
                    waiting(c, "CreateContainerConfigError", Some(&message)),
                    init,
                );
                life.publish().await;
                if life.sleep_or_stop(Duration::from_secs(1)).await {
                    return None;
                }
            }
        }
    }
}

/// The pod-level result of a container stopped from outside, if it was.
fn ended_by(life: &mut Life, why: Option<&'static str>) -> Option<Outcome> {
    match why {
        None | Some("Killed") => None,
        Some("Deleted") => Some(Outcome::Deleted),
        Some("DeadlineExceeded") => {
            life.status.phase = "Failed";
            life.status.ready = false;
            life.status.reason = Some("DeadlineExceeded".into());
            life.status.message =
                Some("Pod was active on the node longer than the specified deadline".into());
            Some(Outcome::Finished)
        }
        Some(_evicted) => {
            life.status.phase = "Failed";
            life.status.ready = false;
            life.status.reason = Some("Evicted".into());
            life.status.message =
                Some("The node was low on resource: memory. (testenv fault)".into());
            life.status.conditions_extra.push(json!({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                "message": "Pod was evicted by the testenv agent", "lastTransitionTime": now()}));
            Some(Outcome::Finished)
        }
    }
}
