//! The small HTTP/1 client the pusher needs: one POST per connection, with timeouts.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `http://host[:port][/prefix]` split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to (IPv6 in brackets).
    pub authority: String,
    /// The Host header value.
    pub host: String,
    /// The path prefix, without a trailing slash.
    pub prefix: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.trim().strip_prefix("http://").ok_or_else(|| {
            format!("endpoint {url:?} must start with http:// (the overlay carries plain HTTP)")
        })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if hostport.is_empty() {
            return Err(format!("endpoint {url:?} has no host"));
        }
        let has_port = match hostport.rfind(':') {
            Some(i) => !hostport[i..].contains(']'),
            None => false,
        };
        let authority = if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        Ok(Endpoint {
            authority,
            host: hostport.to_string(),
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// The status code and body of a completed request.
pub type Answer = (u16, Bytes);

/// POSTs `body` to `endpoint` + `path` with `headers`. Errors are transport errors as text.
pub async fn post(
    endpoint: &Endpoint,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Answer, String> {
    let work = async {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&endpoint.authority))
            .await
            .map_err(|_| format!("dial tcp {}: i/o timeout", endpoint.authority))?
            .map_err(|e| format!("dial tcp {}: {e}", endpoint.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::post(format!("{}{path}", endpoint.prefix))
            .header("host", &endpoint.host)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| "request timed out after 30s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let e = Endpoint::parse("http://169.254.110.2:8787/").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.prefix.as_str()),
            ("169.254.110.2:8787", "")
        );
        let e = Endpoint::parse("http://peer/base/").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.prefix.as_str()),
            ("peer:80", "/base")
        );
        let e = Endpoint::parse("http://[fd00::2]:8787").unwrap();
        assert_eq!(e.authority, "[fd00::2]:8787");
        let e = Endpoint::parse("http://[fd00::2]").unwrap();
        assert_eq!(e.authority, "[fd00::2]:80");
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("http:///x").is_err());
    }
}
