//! The kubelet's log endpoint: `GET /containerLogs/<ns>/<pod>/<container>` over HTTPS, which
//! the API server proxies `pods/log` to, `follow`, `tailLines`, `timestamps`, `sinceTime`,
//! `sinceSeconds` and `limitBytes` included.

use super::Registry;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(http_body_util::Full::new(Bytes::from(body)).boxed())
        .expect("static response")
}

struct Query {
    follow: bool,
    tail: Option<usize>,
    timestamps: bool,
    since: Option<Timestamp>,
    limit: Option<usize>,
}

fn parse_query(q: Option<&str>) -> Query {
    let map: HashMap<&str, &str> = q
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let since_seconds = map.get("sinceSeconds").and_then(|s| s.parse::<i64>().ok());
    let since_time = map
        .get("sinceTime")
        .and_then(|s| s.replace("%3A", ":").parse::<Timestamp>().ok());
    Query {
        follow: map.get("follow").is_some_and(|v| *v == "true" || *v == "1"),
        tail: map.get("tailLines").and_then(|s| s.parse().ok()),
        timestamps: map
            .get("timestamps")
            .is_some_and(|v| *v == "true" || *v == "1"),
        since: since_time.or_else(|| {
            since_seconds.and_then(|s| {
                Timestamp::now()
                    .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s))
                    .ok()
            })
        }),
        limit: map.get("limitBytes").and_then(|s| s.parse().ok()),
    }
}

/// Turns stored records (`<timestamp> <line>`) into what the client asked for.
fn render(records: &[&str], q: &Query) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let (ts, line) = r.split_once(' ').unwrap_or((r, ""));
        if let (Some(since), Ok(t)) = (q.since, ts.parse::<Timestamp>())
            && t < since
        {
            continue;
        }
        if q.timestamps {
            out.extend_from_slice(r.as_bytes());
        } else {
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

async fn serve(
    registry: Arc<Registry>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {path}\n"),
        ));
    };
    let Some((log, done)) = registry.log_of(ns, pod, container) else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} of pod {ns}/{pod} has no log on this node\n"),
        ));
    };
    let q = parse_query(req.uri().query());
    let data = tokio::fs::read_to_string(&log).await.unwrap_or_default();
    let records: Vec<&str> = data.lines().collect();
    let start = q.tail.map_or(0, |n| records.len().saturating_sub(n));
    let mut first = render(&records[start..], &q);
    if let Some(limit) = q.limit {
        first.truncate(limit);
    }
    if !q.follow {
        return Ok(Response::new(
            http_body_util::Full::new(Bytes::from(first)).boxed(),
        ));
    }
    // Follow: send what is there, then poll the file until the container has ended and the
    // last bytes are out.
    let mut offset = data.len() as u64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(Bytes::from(first)))).await.is_err() {
            return;
        }
        let mut pending = String::new();
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut f) = tokio::fs::File::open(&log).await {
                let _ = f.seek(std::io::SeekFrom::Start(offset)).await;
                let mut buf = String::new();
                if let Ok(n) = f.read_to_string(&mut buf).await {
                    offset += n as u64;
                    pending.push_str(&buf);
                }
            }
            if let Some(cut) = pending.rfind('\n') {
                let complete: String = pending.drain(..=cut).collect();
                let records: Vec<&str> = complete.lines().collect();
                let bytes = render(&records, &q);
                if !bytes.is_empty() && tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_err()
                {
                    return;
                }
            }
            if finished {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))))
}

/// Serves the log endpoint on `listener` with the given certificate.
pub async fn run(
    listener: tokio::net::TcpListener,
    cert: &Path,
    key: &Path,
    registry: Arc<Registry>,
) -> Result<(), crate::Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| crate::Error::Setup(format!("kubelet certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| crate::Error::Setup(format!("kubelet key: {e}")))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| crate::Error::Setup(format!("kubelet TLS: {e}")))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, registry) = (acceptor.clone(), registry.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| serve(registry.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(())
}
