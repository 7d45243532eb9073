//! Reading a userspace WireGuard interface (wireguard-go) over its UAPI socket.
//!
//! wireguard-control can read these too, but it also loads the interface's private key and
//! derives its public key, which links a curve25519 implementation into the binary (~60 KiB on
//! mipsel, where the size budget is tight). routerd only needs each peer's key and allowed IPs,
//! so it asks for the configuration and skips the private key. Changes still go through
//! wireguard-control.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wireguard_control::Key;

use crate::plan::WgPeer;

/// A `get` answer larger than this is refused rather than read into memory.
const MAX_RESPONSE: u64 = 16 << 20;

/// The UAPI socket of `interface`, when a userspace implementation serves it.
pub fn socket_path(interface: &str) -> Option<PathBuf> {
    ["/var/run/wireguard", "/run/wireguard"]
        .iter()
        .map(|d| Path::new(d).join(format!("{interface}.sock")))
        .find(|p| p.exists())
}

/// The peers of the interface behind `socket`.
pub fn read_peers(socket: &Path) -> Result<Vec<WgPeer>, String> {
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout))
        .and_then(|_| stream.write_all(b"get=1\n\n"))
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    // The answer ends with an empty line; the server keeps the connection open after it.
    let mut answer = String::new();
    let mut reader = BufReader::new((&mut stream).take(MAX_RESPONSE + 1));
    loop {
        let start = answer.len();
        let n = reader
            .read_line(&mut answer)
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        if answer.len() as u64 > MAX_RESPONSE {
            return Err(format!("{}: answer larger than 16 MiB", socket.display()));
        }
        if n == 0 || answer[start..].trim_end_matches('\n').is_empty() {
            break;
        }
    }
    parse_get(&answer)
}

/// Parses the answer to `get=1`: `key=value` lines, peers starting at `public_key=`, ending
/// with `errno=N` and an empty line.
pub fn parse_get(answer: &str) -> Result<Vec<WgPeer>, String> {
    let mut peers: Vec<WgPeer> = Vec::new();
    let mut errno = None;
    for line in answer.lines() {
        if line.is_empty() {
            break;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("malformed UAPI line {line:?}"))?;
        match key {
            "public_key" => {
                let key =
                    Key::from_hex(value).map_err(|_| format!("malformed public_key {value:?}"))?;
                peers.push(WgPeer {
                    public_key: key.to_base64(),
                    allowed_ips: Vec::new(),
                });
            }
            "allowed_ip" => {
                let peer = peers
                    .last_mut()
                    .ok_or_else(|| format!("allowed_ip {value:?} before any peer"))?;
                peer.allowed_ips.push(parse_allowed_ip(value)?);
            }
            "errno" => {
                errno = Some(
                    value
                        .parse::<i32>()
                        .map_err(|_| format!("malformed errno {value:?}"))?,
                )
            }
            _ => {} // private_key, endpoints, counters: not needed
        }
    }
    match errno {
        Some(0) => Ok(peers),
        Some(n) => Err(format!("UAPI get failed: errno {n}")),
        None => Err("UAPI answer ended without errno".into()),
    }
}

fn parse_allowed_ip(value: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("malformed allowed_ip {value:?}");
    let (ip, len) = value.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "80340806c849cadbec1a4bcb88844f0837f1a13a64d06000ca924c1b83c71608";

    #[test]
    fn peers_and_allowed_ips_are_read_and_the_private_key_is_ignored() {
        let answer = format!(
            "private_key=a8dac1d8a70a751f0f699fb14ba1cff7b79cf4fbd8f09f44c6e6a90d0369604f\nlisten_port=51820\npublic_key={KEY_HEX}\nendpoint=198.18.0.1:51820\nallowed_ip=169.254.110.1/32\nallowed_ip=10.88.60.0/24\nrx_bytes=0\npublic_key={}\nerrno=0\n\n",
            "00".repeat(32)
        );
        let peers = parse_get(&answer).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(
            peers[0].public_key,
            "gDQIBshJytvsGkvLiIRPCDfxoTpk0GAAypJMG4PHFgg="
        );
        assert_eq!(
            peers[0].allowed_ip_strings(),
            vec!["169.254.110.1/32", "10.88.60.0/24"]
        );
        assert!(peers[1].allowed_ips.is_empty());
    }

    #[test]
    fn malformed_and_hostile_answers_are_errors() {
        let cases = [
            ("errno=1\n\n", "errno 1"),
            ("public_key=abc\nerrno=0\n\n", "malformed public_key"),
            ("allowed_ip=10.0.0.0/8\nerrno=0\n\n", "before any peer"),
            (
                &format!("public_key={KEY_HEX}\nallowed_ip=10.0.0.0/33\nerrno=0\n\n")[..],
                "malformed allowed_ip",
            ),
            (
                &format!("public_key={KEY_HEX}\nallowed_ip=10.0.0.0\nerrno=0\n\n")[..],
                "malformed allowed_ip",
            ),
            ("garbage\n\n", "malformed UAPI line"),
            (&format!("public_key={KEY_HEX}\n")[..], "without errno"),
            ("errno=x\n\n", "malformed errno"),
        ];
        for (answer, want) in cases {
            let err = parse_get(answer).unwrap_err();
            assert!(err.contains(want), "{answer:?}: {err}");
        }
    }

    #[test]
    fn an_absent_socket_is_a_clear_error() {
        let err = read_peers(Path::new("/nonexistent/wgX.sock")).unwrap_err();
        assert!(err.starts_with("/nonexistent/wgX.sock: "), "{err}");
    }
}
