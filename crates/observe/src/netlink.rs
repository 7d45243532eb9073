//! The kernel side: dump links, addresses and IPv4 neighbours, then follow their notifications
//! (RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR) over one rtnetlink socket.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::TryStreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
    NeighbourState as KernelState,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::{Handle, IpVersion};

use crate::tracker::{Neighbour, NeighbourState};

const RTMGRP_LINK: u32 = 1;
const RTMGRP_NEIGH: u32 = 4;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;

/// What the kernel told us, in the tracker's terms.
#[derive(Debug)]
pub enum KernelEvent {
    Neighbour(Neighbour),
    LinkUp { index: u32, name: String },
    LinkGone { index: u32, name: String },
    OwnAddress(Ipv4Addr),
    OwnAddressGone(Ipv4Addr),
}

pub type Messages =
    futures_channel::mpsc::UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// A connection subscribed to link, neighbour and IPv4 address notifications.
///
/// A burst of notifications (a switch full of clients powering up) can overflow the socket and
/// the kernel then drops messages; the receive buffer is raised to [`RECEIVE_BUFFER`] and, should
/// it still overflow, [`crate::Observer::run`] notices the drop and resynchronises from a dump.
pub fn connect() -> std::io::Result<(Handle, Messages)> {
    let (mut conn, handle, messages) = rtnetlink::new_connection()?;
    let socket = conn.socket_mut().socket_mut();
    socket.bind(&SocketAddr::new(
        0,
        RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR,
    ))?;
    // SAFETY: the descriptor belongs to `socket`, which outlives this borrow.
    let fd =
        unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(socket)) };
    if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RECEIVE_BUFFER)
        .is_err()
    {
        // Without CAP_NET_ADMIN the kernel caps this at net.core.rmem_max.
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER);
    }
    tokio::spawn(conn);
    Ok((handle, messages))
}

/// Room for several thousand neighbour notifications.
pub const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// Interface index → name.
#[derive(Debug, Default)]
pub struct Links(pub HashMap<u32, String>);

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn own_v4(m: &AddressMessage) -> Option<Ipv4Addr> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
            Some(*ip)
        }
        _ => None,
    })
}

/// A neighbour message in the tracker's terms; `None` for non-IPv4 or unknown interfaces.
pub fn neighbour(m: &NeighbourMessage, links: &Links, deleted: bool) -> Option<Neighbour> {
    let ip = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    let mac = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLocalAddress(b) if b.len() == 6 => {
            Some([b[0], b[1], b[2], b[3], b[4], b[5]])
        }
        _ => None,
    });
    let ifname = links.0.get(&m.header.ifindex)?.clone();
    let state = if deleted {
        NeighbourState::Gone
    } else {
        match m.header.state {
            KernelState::Reachable
            | KernelState::Stale
            | KernelState::Delay
            | KernelState::Probe => NeighbourState::Present,
            KernelState::Failed => NeighbourState::Gone,
            KernelState::Permanent | KernelState::Noarp => NeighbourState::Static,
            _ => NeighbourState::Unknown,
        }
    };
    Some(Neighbour {
        ip,
        mac,
        ifname,
        state,
        proxy: m.header.flags.contains(NeighbourFlags::Proxy),
    })
}

/// The current links, own IPv4 addresses and neighbours.
pub async fn dump(
    handle: &Handle,
) -> Result<(Links, HashSet<Ipv4Addr>, Vec<NeighbourMessage>), rtnetlink::Error> {
    let mut links = Links::default();
    let mut stream = handle.link().get().execute();
    while let Some(m) = stream.try_next().await? {
        if let Some(name) = link_name(&m) {
            links.0.insert(m.header.index, name);
        }
    }
    let mut own = HashSet::new();
    let mut stream = handle.address().get().execute();
    while let Some(m) = stream.try_next().await? {
        own.extend(own_v4(&m));
    }
    let mut neighbours = vec![];
    let mut stream = handle
        .neighbours()
        .get()
        .set_family(IpVersion::V4)
        .execute();
    while let Some(m) = stream.try_next().await? {
        neighbours.push(m);
    }
    Ok((links, own, neighbours))
}

/// Translates one notification, keeping `links` current.
pub fn translate(
    msg: NetlinkMessage<RouteNetlinkMessage>,
    links: &mut Links,
) -> Option<KernelEvent> {
    let NetlinkPayload::InnerMessage(inner) = msg.payload else {
        return None;
    };
    match inner {
        RouteNetlinkMessage::NewNeighbour(m) => {
            neighbour(&m, links, false).map(KernelEvent::Neighbour)
        }
        RouteNetlinkMessage::DelNeighbour(m) => {
            neighbour(&m, links, true).map(KernelEvent::Neighbour)
        }
        RouteNetlinkMessage::NewLink(m) => {
            let name = link_name(&m)?;
            links.0.insert(m.header.index, name.clone());
            Some(KernelEvent::LinkUp {
                index: m.header.index,
                name,
            })
        }
        RouteNetlinkMessage::DelLink(m) => {
            let name = links.0.remove(&m.header.index).or_else(|| link_name(&m))?;
            Some(KernelEvent::LinkGone {
                index: m.header.index,
                name,
            })
        }
        RouteNetlinkMessage::NewAddress(m) => own_v4(&m).map(KernelEvent::OwnAddress),
        RouteNetlinkMessage::DelAddress(m) => own_v4(&m).map(KernelEvent::OwnAddressGone),
        _ => None,
    }
}

/// How often the observer re-reads the whole table in case notifications were dropped.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(600);

/// How long the loop may sleep at most (the captured-address set is re-read this often).
pub const MAX_IDLE: Duration = Duration::from_secs(30);
