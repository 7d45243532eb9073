//! The receiver: `POST /v1/events` and `GET /v1/status`, exactly as Go's routerd-eventd answers.

use std::convert::Infallible;
use std::net::SocketAddr;
// AtomicUsize, not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use routerd_model::event::decode_wire;
use routerd_model::signature;
use routerd_state::{Recorded, Store};

use crate::group::GroupConfig;

/// Bodies are read through a 1 MiB limit that truncates silently (Go's `LimitReader`).
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicUsize,
    pub duplicate: AtomicUsize,
    pub rejected: AtomicUsize,
}

/// Everything a request handler needs; shared by the connections of one listener.
pub struct Receiver {
    pub group: GroupConfig,
    pub secret: Vec<u8>,
    pub store: Arc<Mutex<Store>>,
    pub counters: Counters,
    /// Told after every stored event (the subscription controller wakes on it).
    pub stored: Option<Arc<tokio::sync::Notify>>,
}

/// A reply before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub json: bool,
    pub body: String,
}

impl Reply {
    fn text(status: u16, message: &str) -> Reply {
        Reply {
            status,
            json: false,
            body: format!("{message}\n"),
        }
    }
}

impl Receiver {
    /// The push pipeline: timestamp → replay window → signature → decode → validate → store.
    /// `now_unix` is the receiver's clock in whole seconds.
    pub fn push(
        &self,
        timestamp: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Reply {
        let reply = self.push_inner(timestamp, sig, body, now_unix);
        if reply.status != 200 {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        reply
    }

    fn push_inner(
        &self,
        timestamp: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Reply {
        let Some(ts) = timestamp.and_then(|t| t.parse::<i64>().ok()) else {
            return Reply::text(400, "bad timestamp");
        };
        let window = self.group.replay_window.whole_secs();
        if window > 0 && (now_unix as i128 - ts as i128).abs() > window as i128 {
            return Reply::text(403, "stale timestamp");
        }
        if !signature::verify(&self.secret, ts, body, sig.unwrap_or("")) {
            return Reply::text(401, "bad signature");
        }
        let Ok(mut event) = decode_wire(body) else {
            return Reply::text(400, "bad event body");
        };
        if let Err(e) = event.normalize() {
            return Reply::text(400, &format!("invalid event: {e}"));
        }
        if event.group != self.group.group {
            return Reply::text(
                400,
                &format!(
                    "invalid event: group {:?} is not this receiver's group {:?}",
                    event.group, self.group.group
                ),
            );
        }
        let recorded = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_event(&event);
        match recorded {
            Err(e) => {
                tracing::error!(group = %self.group.group, id = %event.id, "store event: {e}");
                Reply::text(500, "store error")
            }
            Ok(r) => {
                let duplicate = r == Recorded::Duplicate;
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if duplicate {
                    self.counters.duplicate.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(n) = &self.stored {
                    n.notify_one();
                }
                let id = serde_json::to_string(&event.id).expect("a string encodes");
                Reply {
                    status: 200,
                    json: true,
                    body: format!("{{\"accepted\":true,\"duplicate\":{duplicate},\"id\":{id}}}\n"),
                }
            }
        }
    }

    /// `/v1/status`: node, group, counters since start, stored events (expired included).
    pub fn status(&self) -> Reply {
        let stored = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count_events(&self.group.group)
            .unwrap_or(-1);
        let c = &self.counters;
        let body = format!(
            "{{\"node\":{},\"group\":{},\"received\":{},\"duplicate\":{},\"rejected\":{},\"storedEvents\":{},\"replayWindowSeconds\":{}}}\n",
            serde_json::to_string(&self.group.node_name).expect("a string encodes"),
            serde_json::to_string(&self.group.group).expect("a string encodes"),
            c.received.load(Ordering::Relaxed),
            c.duplicate.load(Ordering::Relaxed),
            c.rejected.load(Ordering::Relaxed),
            stored,
            self.group.replay_window.whole_secs(),
        );
        Reply {
            status: 200,
            json: true,
            body,
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        match (req.uri().path(), req.method()) {
            ("/v1/status", _) => self.status(),
            ("/v1/events", &Method::POST) => {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (ts, sig) = (header("x-routerd-timestamp"), header("x-routerd-signature"));
                let body = match read_limited(req.into_body(), BODY_LIMIT).await {
                    Ok(b) => b,
                    Err(_) => {
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        return Reply::text(400, "read body");
                    }
                };
                let now = self
                    .store
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .now()
                    .unix_secs();
                self.push(ts.as_deref(), sig.as_deref(), &body, now)
            }
            ("/v1/events", _) => Reply {
                status: 405,
                json: false,
                body: String::new(),
            },
            _ => Reply::text(404, "404 page not found"),
        }
    }
}

/// Reads at most `limit` bytes and stops: the rest is never buffered.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            None => break,
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    let room = limit - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
        if body.is_end_stream() {
            break;
        }
    }
    Ok(out)
}

fn to_response(r: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if r.json {
        h.insert(
            "content-type",
            "application/json".parse().expect("static header"),
        );
    } else if r.status != 405 {
        h.insert(
            "content-type",
            "text/plain; charset=utf-8".parse().expect("static header"),
        );
        h.insert(
            "x-content-type-options",
            "nosniff".parse().expect("static header"),
        );
    }
    resp
}

/// Accepts connections until `shutdown` turns true, then waits for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // Reap finished connections so the set holds only live ones.
                while conns.try_join_next().is_some() {}
                let Ok((stream, peer)) = accepted else { continue };
                let receiver = receiver.clone();
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let r = receiver.clone();
                        async move { Ok::<_, Infallible>(to_response(r.handle(req).await)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        res = conn.as_mut() => if let Err(e) = res { tracing::debug!(%peer, "connection: {e}") },
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Binds `addr` and, on Linux, ties the socket to the device that owns the address
/// (SO_BINDTODEVICE), so the receiver only answers packets that arrive on that interface.
pub fn bind(addr: SocketAddr) -> Result<(TcpListener, Option<String>), String> {
    use nix::sys::socket::{
        bind as nix_bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
        SockType, SockaddrStorage,
    };
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("listen {addr}: socket: {e}"))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)
        .map_err(|e| format!("listen {addr}: SO_REUSEADDR: {e}"))?;
    let device = device_of(addr.ip());
    if let Some(dev) = &device {
        if let Err(e) = setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(dev)) {
            tracing::warn!(%addr, device = %dev, "cannot bind the receiver to its device ({e}); it answers on every interface");
        }
    }
    nix_bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
        .map_err(|e| format!("listen {addr}: {e}"))?;
    // The platform's SOMAXCONN: a fixed number can be out of range (musl).
    listen(&fd, Backlog::MAXCONN).map_err(|e| format!("listen {addr}: {e}"))?;
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd.into_raw_fd()) };
    let listener =
        TcpListener::from_std(std_listener).map_err(|e| format!("listen {addr}: {e}"))?;
    Ok((listener, device))
}

/// The interface that has `ip` configured, if any.
pub fn device_of(ip: std::net::IpAddr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifa in addrs {
        let Some(a) = ifa.address else { continue };
        let found = match ip {
            std::net::IpAddr::V4(v4) => a.as_sockaddr_in().map(|s| s.ip() == v4).unwrap_or(false),
            std::net::IpAddr::V6(v6) => a.as_sockaddr_in6().map(|s| s.ip() == v6).unwrap_or(false),
        };
        if found {
            return Some(ifa.interface_name);
        }
    }
    None
}
