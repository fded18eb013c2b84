//! What each member of a multi-node (`.parallel`) step is told, as environment variables: the
//! contract between whoever starts the members (the renderer's Indexed Job, the local executor's
//! processes) and the member itself (`kubestep::current::parallel`, and frameworks such as
//! PyTorch's `env://` rendezvous that read the same values under their own names).
//!
//! A member's rank is its task id: member `i` of a gang is task `i` of its step.

use std::fmt;

/// kubestep's name for the member's rank (0 is the control member).
pub const NODE_INDEX: &str = "KUBESTEP_PARALLEL_NODE_INDEX";
/// kubestep's name for the number of members.
pub const NUM_NODES: &str = "KUBESTEP_PARALLEL_NUM_NODES";
/// kubestep's name for the control member's address.
pub const MAIN_ADDR: &str = "KUBESTEP_PARALLEL_MAIN_ADDR";
/// kubestep's name for the control member's port (only when the step sets `port`).
pub const MAIN_PORT: &str = "KUBESTEP_PARALLEL_MAIN_PORT";
/// Seconds a worker waits for the control member's name (and port) before it fails.
pub const RESOLUTION_TIMEOUT: &str = "KUBESTEP_HOSTNAME_RESOLUTION_TIMEOUT";

/// Every name the rank goes by: kubestep's, PyTorch's `RANK`, torchrun's `NODE_RANK`.
pub const RANK_VARS: [&str; 3] = [NODE_INDEX, "RANK", "NODE_RANK"];
/// Every name the member count goes by: kubestep's, `WORLD_SIZE`, torchrun's `NNODES`.
pub const SIZE_VARS: [&str; 3] = [NUM_NODES, "WORLD_SIZE", "NNODES"];
/// Every name the control member's address goes by.
pub const ADDR_VARS: [&str; 2] = [MAIN_ADDR, "MASTER_ADDR"];
/// Every name the control member's port goes by.
pub const PORT_VARS: [&str; 2] = [MAIN_PORT, "MASTER_PORT"];

/// What `hostname_resolution_timeout` is when nothing sets it.
pub const DEFAULT_RESOLUTION_TIMEOUT: u64 = 600;

/// One member of a multi-node step, as it sees itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its rank, from 0; 0 is the control member.
    pub index: u32,
    /// How many members the step runs on.
    pub size: u32,
    /// The control member's address: its DNS name on Kubernetes, `127.0.0.1` locally.
    pub main_addr: String,
    /// The control member's port, when the step sets `port`.
    pub main_port: Option<u16>,
    /// Seconds a worker waits for `main_addr` to resolve (and `main_port` to accept).
    pub resolution_timeout: u64,
}

/// A variable the member's starter set wrongly (a bug, or a variable the user overrode).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} {rule}")]
pub struct BadVar {
    /// The variable.
    pub var: &'static str,
    /// Its text.
    pub value: String,
    /// What it must be.
    pub rule: &'static str,
}

impl Member {
    /// Every variable of this member, in order: the rank's, the size's, the address's, the
    /// port's (only with a port) and the timeout.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(RANK_VARS.map(|v| (v, self.index.to_string())));
        out.extend(self.shared_env());
        out
    }

    /// The variables every member has alike: all but the rank's (a pod template renders the
    /// rank from the pod's completion index instead).
    pub fn shared_env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(SIZE_VARS.map(|v| (v, self.size.to_string())));
        out.extend(ADDR_VARS.map(|v| (v, self.main_addr.clone())));
        if let Some(port) = self.main_port {
            out.extend(PORT_VARS.map(|v| (v, port.to_string())));
        }
        out.push((RESOLUTION_TIMEOUT, self.resolution_timeout.to_string()));
        out
    }

    /// The member this process is, read through `var` (the environment); `None` when it is not
    /// a member of a multi-node step.
    ///
    /// # Errors
    /// A variable that is set but does not hold what it must.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Member>, BadVar> {
        let Some(index) = var(NODE_INDEX) else {
            return Ok(None);
        };
        fn number<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
            rule: &'static str,
        ) -> Result<T, BadVar> {
            let value = value.unwrap_or_default();
            value.trim().parse().map_err(|_| BadVar {
                var: name,
                value,
                rule,
            })
        }
        let index: u32 = number(NODE_INDEX, Some(index), "must be a rank: 0, 1, 2, ...")?;
        let size: u32 = number(NUM_NODES, var(NUM_NODES), "must be the number of members")?;
        if index >= size {
            return Err(BadVar {
                var: NODE_INDEX,
                value: index.to_string(),
                rule: "must be below KUBESTEP_PARALLEL_NUM_NODES",
            });
        }
        let main_addr = var(MAIN_ADDR).filter(|a| !a.is_empty()).ok_or(BadVar {
            var: MAIN_ADDR,
            value: String::new(),
            rule: "must name the control member's host",
        })?;
        let main_port = match var(MAIN_PORT) {
            None => None,
            Some(p) => Some(number(MAIN_PORT, Some(p), "must be a port, 1 to 65535")?),
        };
        let resolution_timeout = match var(RESOLUTION_TIMEOUT) {
            None => DEFAULT_RESOLUTION_TIMEOUT,
            Some(t) => number(RESOLUTION_TIMEOUT, Some(t), "must be whole seconds")?,
        };
        Ok(Some(Member {
            index,
            size,
            main_addr,
            main_port,
            resolution_timeout,
        }))
    }

    /// Whether this is the control member (rank 0), which the others reach.
    pub fn is_control(&self) -> bool {
        self.index == 0
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member {} of {}", self.index, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn member(port: Option<u16>) -> Member {
        Member {
            index: 2,
            size: 3,
            main_addr: "ctl.svc".into(),
            main_port: port,
            resolution_timeout: 30,
        }
    }

    #[test]
    fn a_member_reads_back_what_its_starter_wrote() {
        for port in [None, Some(29500)] {
            let m = member(port);
            let env: HashMap<&str, String> = m.env().into_iter().collect();
            assert_eq!(env["RANK"], "2");
            assert_eq!(env["NODE_RANK"], "2");
            assert_eq!(env["WORLD_SIZE"], "3");
            assert_eq!(env["NNODES"], "3");
            assert_eq!(env["MASTER_ADDR"], "ctl.svc");
            // No port: no port variable at all, never a placeholder.
            assert_eq!(env.get("MASTER_PORT").cloned(), port.map(|p| p.to_string()));
            let read = Member::from_env(|k| env.get(k).cloned()).unwrap();
            assert_eq!(read, Some(m));
        }
        assert_eq!(Member::from_env(|_| None), Ok(None));
    }

    #[test]
    fn a_wrong_variable_is_named_with_its_rule() {
        let m = member(Some(1));
        let mut env: HashMap<&str, String> = m.env().into_iter().collect();
        env.insert(NODE_INDEX, "5".into());
        let e = Member::from_env(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "KUBESTEP_PARALLEL_NODE_INDEX=\"5\" must be below KUBESTEP_PARALLEL_NUM_NODES"
        );
        env.insert(NODE_INDEX, "1".into());
        env.insert(MAIN_PORT, "http".into());
        let e = Member::from_env(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(e.var, MAIN_PORT);
    }
}
