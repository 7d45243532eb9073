//! JSON bytes as Go's `encoding/json` writes them.
//!
//! Digests (`DynamicConfigPart.digest`) and signed event bodies are computed over Go's exact
//! output: compact, struct fields in declaration order, map keys sorted, and HTML-safe escaping
//! of `<`, `>`, `&`, U+2028 and U+2029. serde_json gives the first three; this formatter adds the
//! escaping.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Byte scan: the escaped characters are ASCII or start with 0xE2 (U+2028/U+2029).
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (esc, len) = match bytes[i] {
                b'<' => ("\\u003c", 1),
                b'>' => ("\\u003e", 1),
                b'&' => ("\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                    ("\\u2028", 3)
                }
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                    ("\\u2029", 3)
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            w.write_all(&bytes[start..i])?;
            w.write_all(esc.as_bytes())?;
            i += len;
            start = i;
        }
        w.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        CompactFormatter.write_char_escape(w, escape)
    }
}

/// Compact, HTML-escaped JSON of `value`, byte-compatible with Go's `json.Marshal`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// [`to_vec`] as a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    // The formatter only writes valid UTF-8.
    to_vec(value).map(|v| String::from_utf8(v).expect("JSON is UTF-8"))
}

/// Lowercase hex of SHA-256, the digest form used throughout routerd.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_line_separators_like_go() {
        let s = to_string("a<b>&c\u{2028}d\u{2029}\"\n").unwrap();
        assert_eq!(s, r#""a\u003cb\u003e\u0026c\u2028d\u2029\"\n""#);
    }

    #[test]
    fn sha256_hex_of_known_input() {
        assert_eq!(&sha256_hex(b"evt-1")[..16], "7b409f932d2c88e9");
    }
}
