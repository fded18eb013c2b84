//! A multi-node step: three members add up their numbers through the control member over TCP,
//! an all-reduce in miniature, as the members of a distributed training job do. Each member
//! reads what PyTorch's `env://` rendezvous reads (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`); workers reach the control member by its DNS name on Kubernetes and by
//! `127.0.0.1` locally.
//!
//! `cargo run --example allreduce -- run --local`; with `--fail-rank 2` the member of rank 2
//! fails its first attempt and `#[retry]` runs the whole gang again.
use kubestep::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// The flow's parameters.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone)]
pub struct Params {
    /// The rank that fails its first attempt (none by default).
    #[arg(long)]
    pub fail_rank: Option<u32>,
}

/// What one member saw and computed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Reduced {
    /// `RANK`.
    pub rank: u32,
    /// `WORLD_SIZE`.
    pub world_size: u32,
    /// `MASTER_ADDR`.
    pub master_addr: String,
    /// `MASTER_PORT`.
    pub master_port: u16,
    /// This member's host name (its pod's, on Kubernetes).
    pub host: String,
    /// The sum of every member's number.
    pub sum: u64,
}

/// Member `rank`'s number.
pub fn number(rank: u32) -> u64 {
    u64::from(rank + 1) * 100 + u64::from(rank)
}

#[step]
fn start(p: Params) -> Params {
    p
}

fn var<T: std::str::FromStr>(name: &str) -> Result<T, String> {
    let v = std::env::var(name).map_err(|_| format!("{name} is not set"))?;
    v.parse().map_err(|_| format!("{name}={v:?} is not valid"))
}

/// The control member (rank 0) takes every worker's number, adds its own and sends the sum
/// back; a worker sends its number and reads the sum.
#[step]
#[kubernetes(
    cpu = 0.2,
    memory = 256,
    port = 29500,
    hostname_resolution_timeout = 120
)]
#[retry(times = 1, minutes_between_retries = 0)]
fn reduce(p: Params) -> Result<Reduced, String> {
    let me = kubestep::current::parallel()
        .map_err(|e| e.to_string())?
        .ok_or("not a member of a multi-node step")?;
    let attempt = kubestep::current::task().map_or(0, |t| t.attempt);
    if p.fail_rank == Some(me.index) && attempt == 0 {
        return Err(format!(
            "rank {} fails its first attempt on purpose",
            me.index
        ));
    }
    let (rank, world_size): (u32, u32) = (var("RANK")?, var("WORLD_SIZE")?);
    let (master_addr, master_port): (String, u16) = (var("MASTER_ADDR")?, var("MASTER_PORT")?);
    let io = |e: std::io::Error| e.to_string();
    let sum = if rank == 0 {
        let listener = TcpListener::bind(("0.0.0.0", master_port)).map_err(io)?;
        let (mut sum, mut peers) = (number(0), Vec::new());
        while peers.len() + 1 < world_size as usize {
            let (mut peer, _) = listener.accept().map_err(io)?;
            let mut n = [0u8; 8];
            // kubestep's check that this port accepts connects and closes without a word.
            if peer.read_exact(&mut n).is_ok() {
                sum += u64::from_le_bytes(n);
                peers.push(peer);
            }
        }
        for mut peer in peers {
            peer.write_all(&sum.to_le_bytes()).map_err(io)?;
        }
        sum
    } else {
        let mut control = TcpStream::connect((master_addr.as_str(), master_port)).map_err(io)?;
        control.write_all(&number(rank).to_le_bytes()).map_err(io)?;
        let mut n = [0u8; 8];
        control.read_exact(&mut n).map_err(io)?;
        u64::from_le_bytes(n)
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(io)?
        .trim()
        .to_string();
    println!(
        "rank {rank} of {world_size} on {host}: sum {sum} through {master_addr}:{master_port}"
    );
    Ok(Reduced {
        rank,
        world_size,
        master_addr,
        master_port,
        host,
        sum,
    })
}

/// Every member must have the same sum.
#[step]
fn gather(members: Vec<Reduced>) -> Result<u64, String> {
    let sum = members.first().map_or(0, |m| m.sum);
    if let Some(m) = members.iter().find(|m| m.sum != sum) {
        return Err(format!("rank {} has sum {}, rank 0 {sum}", m.rank, m.sum));
    }
    Ok(sum)
}

fn main() {
    Flow::new("allreduce")
        .start_with_params(start)
        .parallel(reduce, 3)
        .join(gather)
        .main()
}
