//! RemoteAddressClaims plus a view of the host → the actions each claim needs. Pure.
//!
//! Per claim (spec observer-and-apply.md §4, with the WireGuard step added on purpose):
//! a `/32` delivery route into the tunnel at metric 120, the capture (the address must not be a
//! local address, or a proxy neighbour entry), and the claim address in the delivery peer's
//! WireGuard allowed IPs. A claim whose plan cannot be built carries a [`Problem`] and no
//! actions; the other claims are planned as usual (in Go one bad claim blocks all of them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use routerd_model::kinds::{RemoteAddressClaimSpec, WireGuardInterfaceSpec};
use routerd_model::net::parse_ipv4_prefix;
use routerd_model::resource::pick;
use routerd_model::{Resource, Router};
use serde::{Deserialize, Serialize};

/// Go's synthetic IPv4Route metric for delivery routes.
pub const DELIVERY_METRIC: u32 = 120;

/// One change to the host, described by what it leaves in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// `ip route replace <destination> dev <device> metric <metric>`.
    #[serde(rename_all = "camelCase")]
    Route {
        destination: Ipv4Addr,
        device: String,
        metric: u32,
    },
    /// Add `<destination>/32` to a WireGuard peer's allowed IPs. `allowedIps` is the peer's
    /// list after this action, as `wg set` needs it.
    #[serde(rename_all = "camelCase")]
    AllowedIp {
        interface: String,
        public_key: String,
        destination: Ipv4Addr,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowed_ips: Vec<String>,
    },
    /// `ip neigh replace proxy <address> dev <interface>`.
    #[serde(rename_all = "camelCase")]
    ProxyNeighbour {
        address: Ipv4Addr,
        interface: String,
    },
    /// `ip addr del <address>/<prefixLen> dev <interface>`: the cloud OS must not own a
    /// provider secondary IP. Nothing to undo.
    #[serde(rename_all = "camelCase")]
    RemoveAddress {
        address: Ipv4Addr,
        prefix_len: u8,
        interface: String,
    },
}

impl Action {
    /// Names the host object; the journal's primary key.
    pub fn key(&self) -> String {
        match self {
            Action::Route {
                destination,
                device,
                metric,
            } => format!("route {destination}/32 dev {device} metric {metric}"),
            Action::AllowedIp {
                interface,
                public_key,
                destination,
                ..
            } => format!("allowed-ip {destination}/32 wg {interface} peer {public_key}"),
            Action::ProxyNeighbour { address, interface } => {
                format!("proxy-neighbour {address} dev {interface}")
            }
            Action::RemoveAddress {
                address,
                prefix_len,
                interface,
            } => format!("remove-address {address}/{prefix_len} dev {interface}"),
        }
    }

    /// The equivalent command an operator could run.
    pub fn command(&self) -> String {
        match self {
            Action::Route {
                destination,
                device,
                metric,
            } => format!("ip route replace {destination}/32 dev {device} metric {metric}"),
            Action::AllowedIp {
                interface,
                public_key,
                allowed_ips,
                ..
            } => format!(
                "wg set {interface} peer {public_key} allowed-ips {}",
                allowed_ips.join(",")
            ),
            Action::ProxyNeighbour { address, interface } => {
                format!("ip neigh replace proxy {address} dev {interface}")
            }
            Action::RemoveAddress {
                address,
                prefix_len,
                interface,
            } => format!("ip addr del {address}/{prefix_len} dev {interface}"),
        }
    }

    /// The command that undoes it; `None` when withdrawal leaves it alone. `remaining` is the
    /// peer's allowed IPs after removal, for the WireGuard form.
    pub fn undo_command(&self, remaining: Option<&[String]>) -> Option<String> {
        match self {
            Action::Route {
                destination,
                device,
                metric,
            } => Some(format!(
                "ip route del {destination}/32 dev {device} metric {metric}"
            )),
            Action::AllowedIp {
                interface,
                public_key,
                destination,
                ..
            } => Some(match remaining {
                Some(list) => format!(
                    "wg set {interface} peer {public_key} allowed-ips {}",
                    list.join(",")
                ),
                None => format!(
                    "wg set {interface} peer {public_key} allowed-ips <current without {destination}/32>"
                ),
            }),
            Action::ProxyNeighbour { address, interface } => {
                Some(format!("ip neigh del proxy {address} dev {interface}"))
            }
            Action::RemoveAddress { .. } => None,
        }
    }

    /// The form kept in the apply journal: enough to undo, without the peer's whole list.
    pub fn journal_form(&self) -> Action {
        match self {
            Action::AllowedIp {
                interface,
                public_key,
                destination,
                ..
            } => Action::AllowedIp {
                interface: interface.clone(),
                public_key: public_key.clone(),
                destination: *destination,
                allowed_ips: Vec::new(),
            },
            other => other.clone(),
        }
    }

    /// Whether routerd installs something it must later take away.
    pub fn is_withdrawable(&self) -> bool {
        !matches!(self, Action::RemoveAddress { .. })
    }
}

/// An action and whether the host already has what it would leave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAction {
    pub action: Action,
    pub in_place: bool,
}

/// Why a claim has no plan. `pending` problems may clear by themselves (a device that is not
/// up yet); the others need the config fixed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub pending: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    fn pending(reason: &'static str, message: String) -> Problem {
        Problem {
            pending: true,
            reason,
            message,
        }
    }
    fn error(reason: &'static str, message: String) -> Problem {
        Problem {
            pending: false,
            reason,
            message,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPlan {
    pub claim: String,
    pub address: String,
    /// Go's synthetic IPv4Route name, `sam-<safe(name)>-delivery`.
    pub route_name: String,
    pub actions: Vec<PlannedAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// What the host has, as far as the plan needs it. Read by [`crate::host`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    /// Interface name → index.
    pub links: BTreeMap<String, u32>,
    pub addresses: Vec<HostAddress>,
    /// IPv4 routes of the main table.
    pub routes: Vec<HostRoute>,
    /// Proxy neighbour entries: (address, interface).
    pub proxies: BTreeSet<(Ipv4Addr, String)>,
    /// Live WireGuard state of the interfaces the plan asked about.
    pub wireguard: BTreeMap<String, Result<Vec<WgPeer>, String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostAddress {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    pub device: String,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WgPeer {
    /// Base64, as `wg` prints it.
    pub public_key: String,
    pub allowed_ips: Vec<(IpAddr, u8)>,
}

impl WgPeer {
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        self.allowed_ips.iter().any(|(net, len)| match net {
            IpAddr::V4(net) if *len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            _ => false,
        })
    }

    pub fn allowed_ip_strings(&self) -> Vec<String> {
        self.allowed_ips
            .iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect()
    }
}

/// Go's `safe`: runs of characters outside `[A-Za-z0-9.-]` become `-`, then leading and
/// trailing `-` and `.` go; `claim` when nothing is left.
pub fn safe_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    if trimmed.is_empty() {
        "claim".into()
    } else {
        trimmed.into()
    }
}

/// Every interface whose WireGuard state a plan of `router` may need.
pub fn wireguard_interfaces(router: &Router) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (r, claim) in router.specs(pick::remote_address_claim) {
        if let Ok(dev) = delivery_device(router, &r.id().to_string(), claim) {
            out.insert(dev);
        }
    }
    for (_, p) in router.specs(pick::wireguard_peer) {
        out.insert(p.interface.trim().to_string());
    }
    for (r, w) in router.specs(pick::wireguard_interface) {
        out.insert(wg_interface_name(r, w));
    }
    out.remove("");
    out
}

fn wg_interface_name(r: &Resource, w: &WireGuardInterfaceSpec) -> String {
    if w.ifname.trim().is_empty() {
        r.metadata.name.clone()
    } else {
        w.ifname.trim().to_string()
    }
}

/// The delivery device of a claim, with Go's error texts.
fn delivery_device(
    router: &Router,
    id: &str,
    c: &RemoteAddressClaimSpec,
) -> Result<String, Problem> {
    let tunnel = c.delivery.tunnel_interface.trim();
    if !tunnel.is_empty() {
        return Ok(tunnel.to_string());
    }
    let peer_ref = overlay_peer_name(&c.delivery.peer_ref);
    let Some((_, peer)) = router
        .specs(pick::overlay_peer)
        .find(|(r, _)| r.metadata.name == peer_ref)
    else {
        return Err(Problem::error(
            "OverlayPeerMissing",
            format!("{id} spec.delivery.peerRef references missing OverlayPeer {peer_ref:?}"),
        ));
    };
    match peer.underlay.underlay_type.as_str() {
        "wireguard" | "route" | "tailscale" | "ipsec" => {}
        other => {
            return Err(Problem::error(
                "UnsupportedUnderlay",
                format!("{id}: unsupported underlay type {other:?}"),
            ))
        }
    }
    let dev = peer.underlay.interface.trim();
    if dev.is_empty() {
        return Err(Problem::error(
            "RouteNotLowered",
            format!("{id}: spec.underlay.interface is required to lower HybridRoute to IPv4Route"),
        ));
    }
    Ok(dev.to_string())
}

fn overlay_peer_name(peer_ref: &str) -> &str {
    let r = peer_ref.trim();
    r.strip_prefix("OverlayPeer/").unwrap_or(r)
}

/// Plans every RemoteAddressClaim of the effective config, in config order. `host` is `None`
/// when the host could not be read (a dry run then shows every action as to be done).
pub fn plan(router: &Router, host: Option<&HostView>) -> Vec<ClaimPlan> {
    let mut planner = Planner {
        router,
        host,
        names: HashMap::new(),
        destinations: HashMap::new(),
        peer_lists: HashMap::new(),
    };
    let mut plans: Vec<ClaimPlan> = router
        .specs(pick::remote_address_claim)
        .map(|(r, c)| planner.claim(r, c))
        .collect();
    // Removing an interface's last IPv4 address makes the kernel flush its neighbour table,
    // proxy entries included: where an address goes, the proxy entries are put in again.
    let flushed: BTreeSet<String> = plans
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match &a.action {
            Action::RemoveAddress { interface, .. } => Some(interface.clone()),
            _ => None,
        })
        .collect();
    for a in plans.iter_mut().flat_map(|p| &mut p.actions) {
        if let Action::ProxyNeighbour { interface, .. } = &a.action {
            if flushed.contains(interface) {
                a.in_place = false;
            }
        }
    }
    plans
}

struct Planner<'a> {
    router: &'a Router,
    host: Option<&'a HostView>,
    /// Synthetic route name → claim that took it.
    names: HashMap<String, String>,
    /// Destination → claim that took it.
    destinations: HashMap<Ipv4Addr, String>,
    /// (interface, key) → the allowed IPs after the actions planned so far in this pass, so
    /// that printed `wg set` commands stay right when run in order.
    peer_lists: HashMap<(String, String), Vec<String>>,
}

impl Planner<'_> {
    fn claim(&mut self, r: &Resource, c: &RemoteAddressClaimSpec) -> ClaimPlan {
        let name = r.metadata.name.clone();
        let route_name = format!("sam-{}-delivery", safe_name(&name));
        let mut plan = ClaimPlan {
            claim: name.clone(),
            address: c.address.trim().to_string(),
            route_name: route_name.clone(),
            actions: Vec::new(),
            problem: None,
        };
        match self.actions(r, c, &route_name) {
            Ok(actions) => plan.actions = actions,
            Err(p) => plan.problem = Some(p),
        }
        plan
    }

    fn actions(
        &mut self,
        r: &Resource,
        c: &RemoteAddressClaimSpec,
        route_name: &str,
    ) -> Result<Vec<PlannedAction>, Problem> {
        let id = r.id().to_string();
        let dest = match parse_ipv4_prefix(c.address.trim()) {
            Ok(net) if net.len == 32 => net.addr,
            _ => {
                return Err(Problem::error(
                    "SpecInvalid",
                    format!("{id} spec.address: must be an IPv4 /32 CIDR"),
                ))
            }
        };
        if let Some(other) = self.names.get(route_name) {
            return Err(Problem::error(
                "RouteNameNotUnique",
                format!("{id} synthetic IPv4Route name {route_name:?} is not unique (also RemoteAddressClaim/{other})"),
            ));
        }
        if let Some(other) = self.destinations.get(&dest) {
            return Err(Problem::error(
                "DestinationCollision",
                format!("{id} destination {dest}/32 collides with RemoteAddressClaim/{other}"),
            ));
        }
        let device = delivery_device(self.router, &id, c)?;
        self.names
            .insert(route_name.to_string(), r.metadata.name.clone());
        self.destinations.insert(dest, r.metadata.name.clone());

        if let Some(host) = self.host {
            if !host.links.contains_key(&device) {
                return Err(Problem::pending(
                    "DeviceNotReady",
                    format!("delivery device {device} does not exist"),
                ));
            }
        }
        let mut actions = vec![PlannedAction {
            in_place: self.host.is_some_and(|h| {
                h.routes.iter().any(|rt| {
                    rt.destination == dest
                        && rt.prefix_len == 32
                        && rt.device == device
                        && rt.metric == DELIVERY_METRIC
                })
            }),
            action: Action::Route {
                destination: dest,
                device: device.clone(),
                metric: DELIVERY_METRIC,
            },
        }];
        if let Some(a) = self.allowed_ip(&id, c, &device, dest)? {
            actions.push(a);
        }
        actions.extend(self.capture(&id, c, dest)?);
        Ok(actions)
    }

    /// Beyond Go: the claim address must be in the delivery peer's allowed IPs, or WireGuard
    /// drops the traffic. `None` when the device is not WireGuard or the address is covered by
    /// a peer routerd was not told about.
    fn allowed_ip(
        &mut self,
        id: &str,
        c: &RemoteAddressClaimSpec,
        device: &str,
        dest: Ipv4Addr,
    ) -> Result<Option<PlannedAction>, Problem> {
        let peer_ref = c.delivery.peer_ref.trim();
        let peer_ref = peer_ref.strip_prefix("WireGuardPeer/").unwrap_or(peer_ref);
        let on_device: Vec<_> = self
            .router
            .specs(pick::wireguard_peer)
            .filter(|(_, p)| p.interface.trim() == device)
            .collect();
        let named = on_device
            .iter()
            .find(|(r, _)| r.metadata.name == overlay_peer_name(peer_ref));
        let live = self.host.and_then(|h| h.wireguard.get(device));
        let declared_wg = self
            .router
            .specs(pick::wireguard_interface)
            .any(|(r, w)| wg_interface_name(r, w) == device);
        let resource = match (named, on_device.as_slice()) {
            (Some(p), _) => *p,
            (None, [only]) => *only,
            (None, []) => {
                let is_wg = declared_wg || matches!(live, Some(Ok(_)));
                if !is_wg {
                    return Ok(None);
                }
                if let Some(Ok(peers)) = live {
                    if peers.iter().any(|p| p.covers(dest)) {
                        return Ok(None);
                    }
                }
                return Err(Problem::error(
                    "PeerUnknown",
                    format!("{id}: delivery interface {device} is WireGuard but no WireGuardPeer on it is named {peer_ref:?} (or is the only one)"),
                ));
            }
            (None, many) => {
                return Err(Problem::error(
                    "PeerAmbiguous",
                    format!(
                        "{id}: {} WireGuardPeers are on {device} and none is named {peer_ref:?}",
                        many.len()
                    ),
                ))
            }
        };
        let (res, spec) = resource;
        let key = spec.public_key.trim().to_string();
        let current: Vec<String> = match (self.host, live) {
            (None, _) => spec.allowed_ips.clone(),
            (Some(_), None) | (Some(_), Some(Err(_))) => {
                let why = match live {
                    Some(Err(e)) => e.clone(),
                    _ => "not read".into(),
                };
                return Err(Problem::pending(
                    "WireGuardNotReady",
                    format!("cannot read WireGuard interface {device}: {why}"),
                ));
            }
            (Some(_), Some(Ok(peers))) => {
                let Some(peer) = peers.iter().find(|p| p.public_key == key) else {
                    return Err(Problem::pending(
                        "PeerNotReady",
                        format!(
                            "peer {key} (WireGuardPeer/{}) is not configured on {device}",
                            res.metadata.name
                        ),
                    ));
                };
                if peer.covers(dest) {
                    let list = self
                        .peer_lists
                        .entry((device.to_string(), key.clone()))
                        .or_insert_with(|| peer.allowed_ip_strings());
                    return Ok(Some(PlannedAction {
                        in_place: true,
                        action: Action::AllowedIp {
                            interface: device.to_string(),
                            public_key: key,
                            destination: dest,
                            allowed_ips: list.clone(),
                        },
                    }));
                }
                peer.allowed_ip_strings()
            }
        };
        let list = self
            .peer_lists
            .entry((device.to_string(), key.clone()))
            .or_insert(current);
        list.push(format!("{dest}/32"));
        Ok(Some(PlannedAction {
            in_place: false,
            action: Action::AllowedIp {
                interface: device.to_string(),
                public_key: key,
                destination: dest,
                allowed_ips: list.clone(),
            },
        }))
    }

    fn capture(
        &self,
        id: &str,
        c: &RemoteAddressClaimSpec,
        dest: Ipv4Addr,
    ) -> Result<Vec<PlannedAction>, Problem> {
        match c.capture.capture_type.as_str() {
            "provider-secondary-ip" => Ok(self
                .host
                .map(|h| {
                    h.addresses
                        .iter()
                        .filter(|a| a.address == dest)
                        .map(|a| PlannedAction {
                            in_place: false,
                            action: Action::RemoveAddress {
                                address: dest,
                                prefix_len: a.prefix_len,
                                interface: a.interface.clone(),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default()),
            "proxy-arp" => {
                let interface = c.capture.interface.trim().to_string();
                if let Some(h) = self.host {
                    if !h.links.contains_key(&interface) {
                        return Err(Problem::pending(
                            "CaptureInterfaceNotReady",
                            format!("capture interface {interface} does not exist"),
                        ));
                    }
                }
                let in_place = self
                    .host
                    .is_some_and(|h| h.proxies.contains(&(dest, interface.clone())));
                Ok(vec![PlannedAction {
                    in_place,
                    action: Action::ProxyNeighbour {
                        address: dest,
                        interface,
                    },
                }])
            }
            other => Err(Problem::error(
                "CaptureUnsupported",
                format!("{id} spec.capture.type {other:?} is not supported"),
            )),
        }
    }
}
