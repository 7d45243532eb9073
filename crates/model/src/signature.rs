//! The push signature: lowercase hex HMAC-SHA256 over `"<unix seconds>\n" || body`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::gojson::hex;

/// The signature a sender puts in `X-Routerd-Signature` for `body` sent at `timestamp`.
/// The timestamp is rendered canonically (base 10, no sign, no leading zeros).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// Constant-time comparison of the hex strings; upper-case hex does not verify (as in Go).
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str) -> bool {
    let expected = sign(secret, timestamp, body);
    let (a, b) = (expected.as_bytes(), signature.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a shared secret file: surrounding whitespace trimmed, the rest used as raw bytes.
pub fn parse_secret(content: &[u8]) -> Option<Vec<u8>> {
    let start = content.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = content.iter().rposition(|b| !b.is_ascii_whitespace())?;
    Some(content[start..=end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    // wire-protocol.md §3.
    #[test]
    fn vector_v1() {
        let body = br#"{"id":"evt-1","type":"routerd.client.ipv4.observed"}"#;
        assert_eq!(
            sign(b"shared-key", 1_748_600_000, body),
            "feaf85c8afb7fabd6ce806146c34e30f2088092f9a88a0a192ed3f9613dee5dc"
        );
    }

    #[test]
    fn vector_v2() {
        let body = br#"{"id":"evt-1","group":"cloudedge","sourceNode":"onprem-router","type":"routerd.client.ipv4.observed","subject":"10.88.60.9/32","dedupeKey":"evt-1","payload":{"address":"10.88.60.9/32","domain":"cloudedge-same-subnet","ownerSide":"onprem"},"observedAt":"2026-05-30T12:00:00Z","expiresAt":"2026-05-30T12:30:00Z"}"#;
        assert_eq!(
            sign(b"0123456789abcdef0123456789abcdef", 1_780_142_400, body),
            "dfb38e3cbc088b7907f8712e0c5525f9fe839878e47d65e0821a825703fd7180"
        );
    }

    #[test]
    fn vectors_v3_v4_with_a_trimmed_secret_file() {
        let secret = parse_secret(b"s3cr3t\n").unwrap();
        assert_eq!(
            sign(&secret, 1_780_142_401, b"{}"),
            "1ed2605355d8b1d74d3ade172fd90cf57fe766004a192757d154f4cb838e0673"
        );
        assert_eq!(
            sign(&secret, 1_780_142_401, b""),
            "c5c78b92b4a15dd0430bcb3a2b390eb298ef9712ce123b2ef14a4cdf370f788a"
        );
    }

    #[test]
    fn verify_rejects_uppercase_truncated_and_wrong_signatures() {
        let sig = sign(b"k", 1, b"body");
        assert!(verify(b"k", 1, b"body", &sig));
        assert!(!verify(b"k", 1, b"body", &sig.to_uppercase()));
        assert!(!verify(b"k", 1, b"body", &sig[..63]));
        assert!(!verify(b"k", 2, b"body", &sig));
        assert!(!verify(b"other", 1, b"body", &sig));
        assert!(!verify(b"k", 1, b"body", ""));
    }

    #[test]
    fn empty_secret_files_have_no_secret() {
        assert_eq!(parse_secret(b" \n\t"), None);
        assert_eq!(parse_secret(b"  ab cd \n").unwrap(), b"ab cd");
    }
}
