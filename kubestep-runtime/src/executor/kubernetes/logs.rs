//! Following a step container's log through the pods/log API. A followed stream can end before
//! the container does (a dropped connection, a kubelet or proxy cut-off): then it is reopened
//! from the last timestamp seen, skipping the lines already read, until the watch says the
//! container is over. Nothing the step printed is lost, its last lines included.

use super::cluster::Cluster;
use super::diagnose::step_ended;
use super::watch::Seen;
use futures::AsyncBufReadExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::LogParams;
use std::time::Duration;
use tokio::sync::watch;

/// The container has stopped writing: it ended, or its pod did or is gone.
fn over(seen: &Seen) -> bool {
    match seen {
        Seen::None => false,
        Seen::Gone(_) => true,
        Seen::Pod(p) => {
            let status = p.status.as_ref();
            matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed" | "Unknown")
            ) || step_ended(p)
        }
    }
}

/// `2026-11-27T07:00:00.123456789Z rest` -> (timestamp, rest).
fn split_timestamp(line: &[u8]) -> (Option<Timestamp>, &[u8]) {
    let Some(space) = line.iter().position(|b| *b == b' ') else {
        return (None, line);
    };
    match std::str::from_utf8(&line[..space])
        .ok()
        .and_then(|t| t.parse::<Timestamp>().ok())
    {
        Some(ts) => (Some(ts), &line[space + 1..]),
        None => (None, line),
    }
}

/// Streams the step container's output to `line`, one line at a time without its newline,
/// until the container is over and its whole log has been read. An error says why the log could
/// not be read; it is not part of the step's output.
pub async fn follow(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    container: &str,
    mut seen: watch::Receiver<Seen>,
    mut line: impl FnMut(&[u8]),
) -> Result<(), String> {
    let api = cluster.pods(ns);
    let mut last: Option<Timestamp> = None;
    let mut errors = 0u32;
    loop {
        let ended = over(&seen.borrow());
        let params = LogParams {
            container: Some(container.into()),
            follow: !ended,
            timestamps: true,
            // The API takes whole seconds and would round up, skipping the rest of that
            // second: ask from its start; the lines already read are skipped below.
            since_time: last.map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)),
            ..LogParams::default()
        };
        let clean = match cluster
            .call(
                || format!("logs of {ns}/{pod}"),
                || api.log_stream(pod, &params),
            )
            .await
        {
            Ok(stream) => {
                futures::pin_mut!(stream);
                // After a reopen, `since_time` repeats the lines of the last second read.
                let mut skipping = last;
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    // The kubelet ends a followed stream at its next check of the container
                    // (within about a second); should the stream stay open anyway (a proxy, a
                    // stalled kubelet), the watch saying the container is over is enough: read
                    // the rest plainly from `last`.
                    let read = tokio::select! {
                        r = stream.read_until(b'\n', &mut buf) => r,
                        _ = seen.wait_for(over), if !ended => break false,
                    };
                    match read {
                        Ok(0) => break true,
                        Ok(_) => {
                            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
                            let (ts, rest) = split_timestamp(text);
                            if let (Some(ts), Some(upto)) = (ts, skipping) {
                                if ts <= upto {
                                    continue;
                                }
                                skipping = None;
                            }
                            last = ts.or(last);
                            line(rest);
                        }
                        Err(_) => break false,
                    }
                }
            }
            Err(e) => {
                errors += 1;
                if errors >= 5 || ended {
                    return Err(format!(
                        "cannot read the log of pod {pod}: {}",
                        crate::report::report(&e)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                false
            }
        };
        if ended {
            return Ok(());
        }
        if clean {
            // A followed stream ends when the container does, which the watch confirms in a
            // moment; then one last plain read from `last` gets what a cut stream missed. If
            // the container still runs, the stream was cut: reopen it.
            let _ = tokio::time::timeout(Duration::from_secs(2), seen.wait_for(over)).await;
        }
    }
}

/// Follows `container` of `pod` to its end, told by a watch of that one pod: how `logs --follow`
/// reads a task that an orchestrator elsewhere runs.
pub async fn follow_pod(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    container: &str,
    line: impl FnMut(&[u8]),
) -> Result<(), String> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let (tx, rx) = watch::channel(Seen::None);
    let config = watcher::Config::default().fields(&format!("metadata.name={pod}"));
    let watching = async {
        let events = watcher(cluster.pods(ns), config).default_backoff();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let seen = match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    Seen::Pod(std::sync::Arc::new(p))
                }
                Ok(watcher::Event::Delete(p)) => Seen::Gone(std::sync::Arc::new(p)),
                _ => continue,
            };
            let _ = tx.send(seen);
        }
    };
    // A pod still pending (its image pulling, its binary fetched) has no log to open yet.
    let followed = async {
        let started = |seen: &Seen| match seen {
            Seen::None => false,
            Seen::Gone(_) => true,
            Seen::Pod(p) => p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase != "Pending"),
        };
        let _ = rx.clone().wait_for(started).await;
        follow(cluster, ns, pod, container, rx, line).await
    };
    tokio::select! {
        followed = followed => followed,
        () = watching => Err(format!("the watch of pod {ns}/{pod} ended")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_from_the_line() {
        let (ts, rest) = split_timestamp(b"2026-11-27T07:00:00.5Z hello world");
        assert_eq!(rest, b"hello world");
        assert_eq!(ts.unwrap().to_string(), "2026-11-27T07:00:00.5Z");
        let (ts, rest) = split_timestamp(b"no timestamp here");
        assert!(ts.is_none());
        assert_eq!(rest, b"no timestamp here");
    }
}
