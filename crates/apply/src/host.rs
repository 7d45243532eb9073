//! The host side: reads what the plan needs and carries out actions and their undo, through
//! rtnetlink and wireguard-control. Nothing here shells out to `ip` or `wg`.
//!
//! WireGuard is spoken to through whichever backend owns the interface: the userspace UAPI
//! socket (`/var/run/wireguard/<if>.sock`, wireguard-go) when it exists, else the kernel.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};
use wireguard_control::{Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder};

use crate::plan::{Action, HostAddress, HostRoute, HostView, WgPeer};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("interface {0} does not exist")]
    NoDevice(String),
    #[error("WireGuard {interface}: {message}")]
    WireGuard { interface: String, message: String },
}

fn nl(e: impl std::fmt::Display) -> HostError {
    HostError::Netlink(e.to_string())
}

/// "No such route/entry": what an undo of something already gone returns.
fn is_gone(e: &rtnetlink::Error) -> bool {
    match e {
        rtnetlink::Error::NetlinkError(m) => {
            matches!(m.code.map(|c| -c.get()), Some(2) | Some(3) | Some(99))
        }
        _ => false,
    }
}

/// One netlink connection, used for a whole pass.
pub struct Host {
    handle: Handle,
}

impl Host {
    /// Opens a netlink socket; its connection task runs on the current tokio runtime.
    pub fn connect() -> Result<Host, HostError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
        tokio::spawn(conn);
        Ok(Host { handle })
    }

    /// Links, IPv4 addresses, main-table IPv4 routes, proxy neighbours, and the WireGuard
    /// peers of those of `wireguard` that exist.
    pub async fn read(&self, wireguard: &BTreeSet<String>) -> Result<HostView, HostError> {
        let mut view = HostView::default();
        let mut links = self.handle.link().get().execute();
        let mut names = std::collections::HashMap::new();
        while let Some(m) = links.try_next().await.map_err(nl)? {
            for a in &m.attributes {
                if let LinkAttribute::IfName(n) = a {
                    view.links.insert(n.clone(), m.header.index);
                    names.insert(m.header.index, n.clone());
                }
            }
        }
        let name_of = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"));

        let mut addrs = self.handle.address().get().execute();
        while let Some(m) = addrs.try_next().await.map_err(nl)? {
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let address = local.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(address) = address {
                view.addresses.push(HostAddress {
                    interface: name_of(m.header.index),
                    address,
                    prefix_len: m.header.prefix_len,
                });
            }
        }

        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(m) = routes.try_next().await.map_err(nl)? {
            if let Some(r) = host_route(&m, &name_of) {
                view.routes.push(r);
            }
        }

        let mut neigh = self
            .handle
            .neighbours()
            .get()
            .proxies()
            .set_family(IpVersion::V4)
            .execute();
        while let Some(m) = neigh.try_next().await.map_err(nl)? {
            if !m.header.flags.contains(NeighbourFlags::Proxy) {
                continue;
            }
            for a in &m.attributes {
                if let NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) = a {
                    view.proxies.insert((*ip, name_of(m.header.ifindex)));
                }
            }
        }

        for dev in wireguard.iter().filter(|d| view.links.contains_key(*d)) {
            view.wireguard.insert(dev.clone(), read_wireguard(dev));
        }
        Ok(view)
    }

    fn index(&self, view: &HostView, dev: &str) -> Result<u32, HostError> {
        view.links
            .get(dev)
            .copied()
            .ok_or_else(|| HostError::NoDevice(dev.to_string()))
    }

    /// Carries out one action; idempotent.
    pub async fn install(&self, view: &HostView, action: &Action) -> Result<(), HostError> {
        match action {
            Action::Route {
                destination,
                device,
                metric,
            } => {
                let msg = delivery_route(*destination, self.index(view, device)?, *metric);
                self.handle
                    .route()
                    .add(msg)
                    .replace()
                    .execute()
                    .await
                    .map_err(nl)
            }
            Action::AllowedIp {
                interface,
                public_key,
                destination,
                ..
            } => self.add_allowed_ips(interface, public_key, &[*destination]),
            Action::ProxyNeighbour { address, interface } => self
                .handle
                .neighbours()
                .add(self.index(view, interface)?, IpAddr::V4(*address))
                .flags(NeighbourFlags::Proxy)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(nl),
            Action::RemoveAddress {
                address,
                prefix_len,
                interface,
            } => {
                let index = self.index(view, interface)?;
                let mut addrs = self
                    .handle
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute();
                while let Some(m) = addrs.try_next().await.map_err(nl)? {
                    let matches = m.header.prefix_len == *prefix_len
                        && m.attributes.iter().any(|a| {
                            matches!(a, AddressAttribute::Local(IpAddr::V4(ip)) if ip == address)
                        });
                    if matches {
                        match self.handle.address().del(m).execute().await {
                            Err(e) if !is_gone(&e) => return Err(nl(e)),
                            _ => {}
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Takes away what [`Host::install`] put in place, and only that: the exact route, the
    /// one allowed IP, the one proxy entry. Something already gone is not an error.
    pub async fn undo(&self, view: &HostView, action: &Action) -> Result<(), HostError> {
        match action {
            Action::Route {
                destination,
                device,
                metric,
            } => {
                let Some(&index) = view.links.get(device) else {
                    return Ok(()); // the device and its routes are gone
                };
                match self
                    .handle
                    .route()
                    .del(delivery_route(*destination, index, *metric))
                    .execute()
                    .await
                {
                    Err(e) if !is_gone(&e) => Err(nl(e)),
                    _ => Ok(()),
                }
            }
            Action::AllowedIp {
                interface,
                public_key,
                destination,
                ..
            } => self.remove_allowed_ips(view, interface, public_key, &[*destination]),
            Action::ProxyNeighbour { address, interface } => {
                let Some(&index) = view.links.get(interface) else {
                    return Ok(());
                };
                let mut msg = NeighbourMessage::default();
                msg.header.family = AddressFamily::Inet;
                msg.header.ifindex = index;
                msg.header.flags = NeighbourFlags::Proxy;
                msg.attributes
                    .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                        *address,
                    )));
                match self.handle.neighbours().del(msg).execute().await {
                    Err(e) if !is_gone(&e) => Err(nl(e)),
                    _ => Ok(()),
                }
            }
            Action::RemoveAddress { .. } => Ok(()),
        }
    }
}

impl Host {
    /// Adds `ips` (as /32s) to one peer in one WireGuard call. Without `replace_allowed_ips`
    /// WireGuard *adds* to the peer's list, so what else it allows is left as it is.
    pub fn add_allowed_ips(
        &self,
        interface: &str,
        public_key: &str,
        ips: &[Ipv4Addr],
    ) -> Result<(), HostError> {
        let key = parse_key(interface, public_key)?;
        let peer = ips.iter().fold(PeerConfigBuilder::new(&key), |b, ip| {
            b.add_allowed_ip(IpAddr::V4(*ip), 32)
        });
        apply_wireguard(interface, DeviceUpdate::new().add_peer(peer))
    }

    /// Takes exactly `ips`/32 out of one peer's allowed IPs in one call; covering prefixes and
    /// the peer's other entries stay. Entries (or the peer, or the interface) already gone are
    /// not an error.
    pub fn remove_allowed_ips(
        &self,
        view: &HostView,
        interface: &str,
        public_key: &str,
        ips: &[Ipv4Addr],
    ) -> Result<(), HostError> {
        if !view.links.contains_key(interface) {
            return Ok(());
        }
        let peers = read_wireguard(interface).map_err(|message| HostError::WireGuard {
            interface: interface.into(),
            message,
        })?;
        let Some(peer) = peers.iter().find(|p| p.public_key == public_key) else {
            return Ok(());
        };
        let ours = |a: &(IpAddr, u8)| matches!(a, (IpAddr::V4(ip), 32) if ips.contains(ip));
        if !peer.allowed_ips.iter().any(ours) {
            return Ok(());
        }
        // Not every WireGuard can remove one allowed IP: set the rest.
        let key = parse_key(interface, public_key)?;
        let builder = peer.allowed_ips.iter().filter(|a| !ours(a)).fold(
            PeerConfigBuilder::new(&key).replace_allowed_ips(),
            |b, (ip, len)| b.add_allowed_ip(*ip, *len),
        );
        apply_wireguard(interface, DeviceUpdate::new().add_peer(builder))
    }
}

/// `<dest>/32 dev <index> metric <metric>`, scope link, as `ip route replace` makes it.
fn delivery_route(dest: Ipv4Addr, index: u32, metric: u32) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dest, 32)
        .output_interface(index)
        .priority(metric)
        .scope(RouteScope::Link)
        .build()
}

fn host_route(m: &RouteMessage, name_of: &dyn Fn(u32) -> String) -> Option<HostRoute> {
    let mut table = u32::from(m.header.table);
    let (mut dest, mut oif, mut metric) = (None, None, 0);
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = Some(*ip),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != 254 {
        return None;
    }
    Some(HostRoute {
        destination: dest.unwrap_or(Ipv4Addr::UNSPECIFIED),
        prefix_len: m.header.destination_prefix_length,
        device: name_of(oif?),
        metric,
    })
}

fn backend(interface: &str) -> Backend {
    if crate::uapi::socket_path(interface).is_some() {
        Backend::Userspace
    } else {
        Backend::Kernel
    }
}

fn iface_name(interface: &str) -> Result<InterfaceName, String> {
    interface
        .parse::<InterfaceName>()
        .map_err(|e| format!("invalid interface name: {e}"))
}

/// The live peers of a WireGuard interface; an error text when it is not one or cannot be read.
pub fn read_wireguard(interface: &str) -> Result<Vec<WgPeer>, String> {
    if let Some(socket) = crate::uapi::socket_path(interface) {
        return crate::uapi::read_peers(&socket);
    }
    let name = iface_name(interface)?;
    let device = Device::get(&name, Backend::Kernel).map_err(|e| e.to_string())?;
    Ok(device
        .peers
        .iter()
        .map(|p| WgPeer {
            public_key: p.config.public_key.to_base64(),
            allowed_ips: p
                .config
                .allowed_ips
                .iter()
                .map(|a| (a.address, a.cidr))
                .collect(),
        })
        .collect())
}

fn parse_key(interface: &str, key: &str) -> Result<Key, HostError> {
    Key::from_base64(key).map_err(|e| HostError::WireGuard {
        interface: interface.into(),
        message: format!("public key {key:?}: {e}"),
    })
}

fn apply_wireguard(interface: &str, update: DeviceUpdate) -> Result<(), HostError> {
    let err = |message: String| HostError::WireGuard {
        interface: interface.into(),
        message,
    };
    let backend = backend(interface);
    // The userspace backend would *start* a WireGuard process for a missing socket; routerd
    // only changes interfaces that exist.
    if backend == Backend::Userspace
        || Device::get(&iface_name(interface).map_err(err)?, Backend::Kernel).is_ok()
    {
        update
            .apply(&iface_name(interface).map_err(err)?, backend)
            .map_err(|e| err(e.to_string()))
    } else {
        Err(err(
            "not a WireGuard interface (no kernel device and no userspace socket)".into(),
        ))
    }
}
