//! A fault-injecting proxy in front of the API server, for the reliability suite. It listens
//! with TLS under the API server's own certificate (whose names include 127.0.0.1), so a
//! kubeconfig that names the proxy in place of the server needs nothing else changed. Each
//! request goes upstream on a connection of its own, unless a fault drawn at the proxy's rate
//! answers it instead:
//! - 429 with `Retry-After: 1`, as API Priority and Fairness throttles;
//! - 500, as an etcd timeout;
//! - 503, as a restarting or overloaded server;
//! - a slow answer (1 to 3 s before it is forwarded);
//! - a lost reply: forwarded, the server acts on it, and the client gets a 500 instead of the
//!   answer (a create then finds its object already there on the retry).
//!
//! Every forwarded watch stream is cut at a random moment 1 to 10 s in, as a load balancer's
//! idle timeout or an API server's shutdown cuts them.

use crate::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_rustls::rustls;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What the proxy has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received.
    pub requests: u64,
    /// Answered 429 without forwarding.
    pub throttled: u64,
    /// Answered 500 without forwarding.
    pub failed: u64,
    /// Answered 503 without forwarding.
    pub unavailable: u64,
    /// Forwarded after a delay.
    pub slow: u64,
    /// Forwarded, then answered 500 in place of the server's answer.
    pub lost_replies: u64,
    /// Watch streams cut mid-way.
    pub cut_watches: u64,
}

impl FaultCounts {
    /// Requests that met a fault (cut watches aside).
    pub fn faults(&self) -> u64 {
        self.throttled + self.failed + self.unavailable + self.slow + self.lost_replies
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} with a fault: {} answered 429, {} answered 500, {} answered 503, \
             {} slow, {} replies lost after the server acted; {} watch streams cut",
            self.requests,
            self.faults(),
            self.throttled,
            self.failed,
            self.unavailable,
            self.slow,
            self.lost_replies,
            self.cut_watches
        )
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
    unavailable: AtomicU64,
    slow: AtomicU64,
    lost_replies: AtomicU64,
    cut_watches: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FaultCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            requests: get(&self.requests),
            throttled: get(&self.throttled),
            failed: get(&self.failed),
            unavailable: get(&self.unavailable),
            slow: get(&self.slow),
            lost_replies: get(&self.lost_replies),
            cut_watches: get(&self.cut_watches),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// A kubeconfig naming the proxy, with the restricted user's token.
    pub kubeconfig: PathBuf,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// What it has done so far.
    pub fn counts(&self) -> FaultCounts {
        self.counters.snapshot()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where requests go and how the proxy reaches it.
struct State {
    upstream: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    rate: f64,
    rng: std::sync::Mutex<fastrand::Rng>,
    counters: Arc<Counters>,
}

#[derive(Clone, Copy)]
enum Fault {
    Throttle,
    Fail,
    Unavailable,
    Slow,
    LoseReply,
}

impl State {
    /// The fault for the next request, if any, and how long a forwarded watch may stream.
    fn draw(&self) -> (Option<Fault>, Duration, Duration) {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let fault = (rng.f64() < self.rate).then(|| {
            [
                Fault::Throttle,
                Fault::Fail,
                Fault::Unavailable,
                Fault::Slow,
                Fault::LoseReply,
            ][rng.usize(..5)]
        });
        let delay = Duration::from_millis(rng.u64(1000..3000));
        let stream = Duration::from_millis(rng.u64(1000..10_000));
        (fault, delay, stream)
    }

    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Incoming>, BoxError> {
        let tcp = tokio::net::TcpStream::connect(self.upstream).await?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(send.send_request(req).await?)
    }
}

/// A Kubernetes `Status` answer, as the API server writes one.
fn status(code: u16, reason: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (injected by the test cluster's fault proxy)"),
        "reason": reason, "code": code,
    });
    let mut response = Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if code == 429 {
        response = response.header(hyper::header::RETRY_AFTER, "1");
    }
    response
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(BoxBody::default()))
}

fn is_watch(req: &Request<Incoming>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let c = &state.counters;
    bump(&c.requests);
    let watch = is_watch(&req);
    let (fault, delay, stream) = state.draw();
    match fault {
        Some(Fault::Throttle) => {
            bump(&c.throttled);
            return status(429, "TooManyRequests");
        }
        Some(Fault::Fail) => {
            bump(&c.failed);
            return status(500, "InternalError");
        }
        Some(Fault::Unavailable) => {
            bump(&c.unavailable);
            return status(503, "ServiceUnavailable");
        }
        Some(Fault::Slow) => {
            bump(&c.slow);
            tokio::time::sleep(delay).await;
        }
        Some(Fault::LoseReply) | None => {}
    }
    let response = match state.forward(req).await {
        Ok(r) => r,
        Err(e) => return status(503, &format!("ServiceUnavailable: upstream: {e}")),
    };
    if let Some(Fault::LoseReply) = fault {
        bump(&c.lost_replies);
        // The server has acted; wait for its whole answer, then drop it.
        let _ = response.into_body().collect().await;
        return status(500, "InternalError");
    }
    if watch && response.status().is_success() {
        let counters = state.counters.clone();
        return response.map(|body| {
            Cut {
                body,
                at: Box::pin(tokio::time::sleep(stream)),
                counters,
            }
            .boxed()
        });
    }
    response.map(|b| b.map_err(BoxError::from).boxed())
}

/// A response body that fails at a set moment: the client sees its stream end mid-message.
struct Cut {
    body: Incoming,
    at: Pin<Box<tokio::time::Sleep>>,
    counters: Arc<Counters>,
}

impl Body for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.at.as_mut().poll(cx).is_ready() {
            bump(&this.counters.cut_watches);
            return Poll::Ready(Some(Err("watch cut by the fault proxy".into())));
        }
        Pin::new(&mut this.body)
            .poll_frame(cx)
            .map_err(BoxError::from)
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("fault proxy: {what}: {e}"))
}

/// Starts a proxy for the API server at `upstream` (https://IP:PORT) on a free loopback port,
/// faulting `rate` of requests with the random sequence `seed` gives; writes its kubeconfig,
/// for `token`, to `dir/kubeconfig-fault-proxy`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    upstream: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
    dir: &Path,
    token: &str,
    rate: f64,
    seed: u64,
) -> Result<FaultProxy, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let addr: SocketAddr = upstream
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| tls_error(upstream, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_error("CA", e))? {
        roots
            .add(c.map_err(|e| tls_error("CA", e))?)
            .map_err(|e| tls_error("CA", e))?;
    }
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error("certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("certificate", e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("key", e))?;
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error("certificate", e))?;
    // Clients speak HTTP/1.1 to it, so each request is one exchange the proxy can fault.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| tls_error("listen", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| tls_error("listen", e))?
        .port();
    let kubeconfig = dir.join("kubeconfig-fault-proxy");
    crate::control_plane::kubeconfig(&kubeconfig, &format!("https://127.0.0.1:{port}"), ca, token)?;
    let counters = Arc::new(Counters::default());
    let state = Arc::new(State {
        upstream: addr,
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        server_name: rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
        rate,
        rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        counters: counters.clone(),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, state) = (acceptor.clone(), state.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(FaultProxy {
        kubeconfig,
        counters,
        task,
    })
}
