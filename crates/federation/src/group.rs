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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: t}
spec:
  resources:
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventGroup
      metadata: {name: g}
      spec: {nodeName: a, replayWindow: 1500ms, retention: {maxEvents: 5, maxAge: 1h}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {name: b1}
      spec: {groupRef: g, nodeName: b, endpoint: 'http://old'}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {name: b2}
      spec: {groupRef: g, nodeName: b, endpoint: 'http://new', types: [t], subjectPrefixes: [10.88.]}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {name: other}
      spec: {groupRef: h, nodeName: c, endpoint: 'http://c'}
";

    #[test]
    fn groups_take_their_peers_and_a_later_peer_replaces_an_earlier_one() {
        let router = routerd_model::load_str(CONFIG, "t").unwrap().router;
        let groups = GroupConfig::all(&router).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.listen, None);
        assert_eq!(g.peers.len(), 1);
        assert_eq!(g.peers[0].endpoint, "http://new");
        assert_eq!(
            g.replay_window,
            GoDuration::from_nanos(1_500_000_000),
            "kept; compared in whole seconds"
        );
        assert_eq!(
            (g.max_events, g.max_age),
            (5, Some(GoDuration::from_secs(3600)))
        );
    }

    #[test]
    fn peer_filters_are_exact_types_and_byte_prefixes() {
        let p = Peer {
            node_name: "b".into(),
            endpoint: String::new(),
            types: vec!["t".into()],
            subject_prefixes: vec!["10.88.".into()],
        };
        assert!(p.wants("t", "10.88.60.9/32"));
        assert!(!p.wants("T", "10.88.60.9/32"));
        assert!(!p.wants("t", "10.89.0.1/32"));
        let all = Peer {
            types: vec![],
            subject_prefixes: vec![],
            ..p
        };
        assert!(all.wants("anything", ""));
    }

    #[test]
    fn secrets_must_exist_and_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_secret("g", &dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("EventGroup g: secret file") && missing.contains("No such file"),
            "{missing}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n\n").unwrap();
        assert!(read_secret("g", &empty)
            .unwrap_err()
            .to_string()
            .ends_with("empty secret file"));
        let good = dir.path().join("good");
        std::fs::write(&good, "  s3cr3t\n").unwrap();
        assert_eq!(read_secret("g", &good).unwrap(), b"s3cr3t");
    }
}
