//! The federation Event envelope: an observed fact, never a command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One federation event as it travels between routers and sits in the store.
///
/// Field order is Go's: it decides the bytes a Go-compatible sender signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_node: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dedupe_key: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payload: BTreeMap<String, String>,
    #[serde(default)]
    pub observed_at: Timestamp,
    #[serde(default)]
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("federation event id is required")]
    IdRequired,
    #[error("federation event group is required")]
    GroupRequired,
    #[error("federation event type is required")]
    TypeRequired,
}

impl Event {
    /// Go's `Normalize` + `Validate`: trim the string fields, default `dedupeKey` to `id`, then
    /// require id, group and type (in that order).
    pub fn normalize(&mut self) -> Result<(), EventError> {
        for field in [
            &mut self.id,
            &mut self.group,
            &mut self.event_type,
            &mut self.source_node,
            &mut self.subject,
            &mut self.dedupe_key,
        ] {
            let trimmed = field.trim();
            if trimmed.len() != field.len() {
                *field = trimmed.to_string();
            }
        }
        if self.dedupe_key.is_empty() {
            self.dedupe_key = self.id.clone();
        }
        if self.id.is_empty() {
            return Err(EventError::IdRequired);
        }
        if self.group.is_empty() {
            return Err(EventError::GroupRequired);
        }
        if self.event_type.is_empty() {
            return Err(EventError::TypeRequired);
        }
        Ok(())
    }

    /// Zero `expiresAt` never expires; otherwise expired iff `now > expiresAt`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !self.expires_at.is_zero() && now > self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gojson;

    #[test]
    fn normalize_trims_defaults_and_validates_in_order() {
        let mut e = Event {
            id: " evt-1 ".into(),
            group: " g".into(),
            event_type: "t ".into(),
            ..Default::default()
        };
        e.normalize().unwrap();
        assert_eq!(
            (e.id.as_str(), e.group.as_str(), e.event_type.as_str()),
            ("evt-1", "g", "t")
        );
        assert_eq!(e.dedupe_key, "evt-1");

        let mut none = Event::default();
        assert_eq!(none.normalize(), Err(EventError::IdRequired));
        let mut no_group = Event {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(no_group.normalize(), Err(EventError::GroupRequired));
        let mut no_type = Event {
            id: "x".into(),
            group: "g".into(),
            ..Default::default()
        };
        assert_eq!(
            no_type.normalize().unwrap_err().to_string(),
            "federation event type is required"
        );
    }

    #[test]
    fn serialises_byte_compatible_with_the_go_sender() {
        // wire-protocol.md §3 V2 body.
        let e = Event {
            id: "evt-1".into(),
            group: "cloudedge".into(),
            source_node: "onprem-router".into(),
            event_type: "routerd.client.ipv4.observed".into(),
            subject: "10.88.60.9/32".into(),
            dedupe_key: "evt-1".into(),
            payload: [
                ("ownerSide", "onprem"),
                ("address", "10.88.60.9/32"),
                ("domain", "cloudedge-same-subnet"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            observed_at: Timestamp::from_unix(1_780_142_400),
            expires_at: Timestamp::from_unix(1_780_144_200),
        };
        let body = gojson::to_string(&e).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt-1","group":"cloudedge","sourceNode":"onprem-router","type":"routerd.client.ipv4.observed","subject":"10.88.60.9/32","dedupeKey":"evt-1","payload":{"address":"10.88.60.9/32","domain":"cloudedge-same-subnet","ownerSide":"onprem"},"observedAt":"2026-05-30T12:00:00Z","expiresAt":"2026-05-30T12:30:00Z"}"#
        );
        assert_eq!(body.len(), 310);
    }

    #[test]
    fn expiry_is_strictly_after() {
        let t = Timestamp::from_unix(100);
        let e = Event {
            expires_at: t,
            ..Default::default()
        };
        assert!(!e.is_expired(t));
        assert!(e.is_expired(Timestamp::from_unix(101)));
        assert!(!Event::default().is_expired(Timestamp::from_unix(i64::MAX / 2)));
    }
}

/// Decodes a pushed event body as leniently as Go's receiver: keys match case-insensitively
/// (the last duplicate wins), unknown keys are ignored, `null` times are unset; payload values
/// must be strings and nothing may follow the object.
pub fn decode_wire(body: &[u8]) -> Result<Event, String> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = match value {
        Value::Null => return Ok(Event::default()),
        Value::Object(m) => m,
        other => return Err(format!("expected an object, got {other}")),
    };
    let mut e = Event::default();
    for (key, v) in obj {
        let text = |v: &Value| -> Result<String, String> {
            match v {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("field {key:?} must be a string, got {other}")),
            }
        };
        let time = |v: &Value| -> Result<Timestamp, String> {
            match v {
                Value::Null => Ok(Timestamp::ZERO),
                Value::String(s) => Timestamp::parse_rfc3339(s).map_err(|e| e.to_string()),
                other => Err(format!("field {key:?} must be a time, got {other}")),
            }
        };
        match key.to_lowercase().as_str() {
            "id" => e.id = text(&v)?,
            "group" => e.group = text(&v)?,
            "sourcenode" => e.source_node = text(&v)?,
            "type" => e.event_type = text(&v)?,
            "subject" => e.subject = text(&v)?,
            "dedupekey" => e.dedupe_key = text(&v)?,
            "observedat" => e.observed_at = time(&v)?,
            "expiresat" => e.expires_at = time(&v)?,
            "payload" => {
                e.payload = match v {
                    Value::Null => BTreeMap::new(),
                    Value::Object(m) => m
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => Ok((k, s)),
                            other => {
                                Err(format!("payload value {k:?} must be a string, got {other}"))
                            }
                        })
                        .collect::<Result<_, _>>()?,
                    other => return Err(format!("payload must be an object, got {other}")),
                }
            }
            _ => {}
        }
    }
    Ok(e)
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn decodes_case_insensitively_and_ignores_unknown_keys() {
        let e = decode_wire(br#"{"ID":"a","Group":"g","TYPE":"t","extra":1,"observedAt":null,"expiresAt":"0001-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(
            (e.id.as_str(), e.group.as_str(), e.event_type.as_str()),
            ("a", "g", "t")
        );
        assert!(e.observed_at.is_zero() && e.expires_at.is_zero());
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            &br#"{"id":"a","payload":{"n":1}}"#[..],
            br#"{"id":"a"} trailing"#,
            br#"{"id":"a","observedAt":""}"#,
            br#"{"id":"a","observedAt":"yesterday"}"#,
            br#"{"id":5}"#,
            b"[1,2]",
            b"",
            b"{",
        ] {
            assert!(
                decode_wire(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // `null` decodes to an empty event that then fails validation.
        let mut e = decode_wire(b"null").unwrap();
        assert_eq!(
            e.normalize().unwrap_err().to_string(),
            "federation event id is required"
        );
    }
}
