//! What one EventGroup's transport needs, derived from the Router config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use routerd_model::resource::pick;
use routerd_model::{duration::parse_optional, GoDuration, Router};

use crate::FederationError;

pub const DEFAULT_REPLAY_WINDOW: GoDuration = GoDuration::from_secs(300);

/// A push target: an EventPeer of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub node_name: String,
    pub endpoint: String,
    pub types: Vec<String>,
    pub subject_prefixes: Vec<String>,
}

impl Peer {
    /// Exact type match and byte-prefix subject match; empty lists match everything.
    pub fn wants(&self, event_type: &str, subject: &str) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && (self.subject_prefixes.is_empty()
                || self
                    .subject_prefixes
                    .iter()
                    .any(|p| subject.starts_with(p.as_str())))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub group: String,
    pub node_name: String,
    pub listen: Option<SocketAddr>,
    pub secret_file: PathBuf,
    pub replay_window: GoDuration,
    pub peers: Vec<Peer>,
    pub max_age: Option<GoDuration>,
    pub max_events: i64,
}

impl GroupConfig {
    /// One entry per EventGroup, in config order. The config is assumed validated.
    pub fn all(router: &Router) -> Result<Vec<GroupConfig>, FederationError> {
        router
            .specs(pick::event_group)
            .map(|(res, g)| {
                let name = res.name().to_string();
                let listen =
                    if g.listen.address.trim().is_empty() {
                        None
                    } else {
                        let ip = g.listen.address.trim().parse().map_err(|_| {
                            FederationError::Config {
                                group: name.clone(),
                                message: format!(
                                    "spec.listen.address {:?} is not an IP address",
                                    g.listen.address
                                ),
                            }
                        })?;
                        Some(SocketAddr::new(ip, g.listen.port as u16))
                    };
                let replay_window = parse_optional(&g.replay_window)
                    .ok()
                    .flatten()
                    .filter(|d| d.is_positive())
                    .unwrap_or(DEFAULT_REPLAY_WINDOW);
                let mut peers: Vec<Peer> = Vec::new();
                for (_, p) in router
                    .specs(pick::event_peer)
                    .filter(|(_, p)| p.group_ref.trim() == name)
                {
                    let peer = Peer {
                        node_name: p.node_name.trim().to_string(),
                        endpoint: p.endpoint.trim().to_string(),
                        types: p.types.clone(),
                        subject_prefixes: p.subject_prefixes.clone(),
                    };
                    // A later peer with the same nodeName replaces the earlier one (as in Go).
                    peers.retain(|q| q.node_name != peer.node_name);
                    peers.push(peer);
                }
                Ok(GroupConfig {
                    node_name: g.node_name.trim().to_string(),
                    listen,
                    secret_file: PathBuf::from(g.auth.secret_file.trim()),
                    replay_window,
                    peers,
                    max_age: parse_optional(&g.retention.max_age)
                        .ok()
                        .flatten()
                        .filter(|d| d.is_positive()),
                    max_events: g.retention.max_events,
                    group: name,
                })
            })
            .collect()
    }
}

/// Reads the group's shared secret: trimmed; a missing or empty file is an error, and a file
/// readable by group or others gets a warning.
pub fn read_secret(group: &str, path: &Path) -> Result<Vec<u8>, FederationError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |message: String| FederationError::Secret {
        group: group.into(),
        path: path.display().to_string(),
        message,
    };
    if path.as_os_str().is_empty() {
        return Err(err("spec.auth.secretFile is not set".into()));
    }
    let content = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let secret = routerd_model::signature::parse_secret(&content)
        .ok_or_else(|| err("empty secret file".into()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(group, path = %path.display(), "secret file is readable by group or others; chmod 600 it");
        }
    }
    Ok(secret)
}
