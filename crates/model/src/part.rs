//! DynamicConfigPart: a plugin's validated output, as stored and merged.

use serde::{Deserialize, Serialize};

use crate::kinds::ResourceRef;
use crate::resource::Resource;
use crate::time::Timestamp;

/// A `mask` directive: hide a startup resource while the part is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Directive {
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub target: ResourceRef,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One row of `dynamic_config_parts`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DynamicConfigPart {
    pub id: i64,
    pub source: String,
    pub generation: i64,
    pub observed_at: Timestamp,
    pub expires_at: Timestamp,
    pub digest: String,
    pub resources: Vec<Resource>,
    pub directives: Vec<Directive>,
    /// The stored status column (`active`); readers use [`DynamicConfigPart::status_at`].
    pub stored_status: String,
    pub error: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl DynamicConfigPart {
    /// Expired when `expiresAt` is set and `now >= expiresAt` (Go's `!now.Before(expiresAt)`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !self.expires_at.is_zero() && now >= self.expires_at
    }

    /// The computed status every reader shows: `expired` or `active`.
    pub fn status_at(&self, now: Timestamp) -> &'static str {
        if self.is_expired(now) {
            "expired"
        } else {
            "active"
        }
    }

    /// The subscription key (`EventSubscription/<name>`) of a subscription part's source.
    pub fn subscription_key(&self) -> Option<&str> {
        let rest = self.source.strip_prefix("EventSubscription/")?;
        let name_len = rest.find('/')?;
        Some(&self.source[..("EventSubscription/".len() + name_len)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_and_zero_never_expires() {
        let t = Timestamp::from_unix(100);
        let p = DynamicConfigPart {
            expires_at: t,
            ..Default::default()
        };
        assert!(!p.is_expired(Timestamp::from_unix(99)));
        assert!(p.is_expired(t));
        assert_eq!(DynamicConfigPart::default().status_at(t), "active");
    }

    #[test]
    fn subscription_key_of_source() {
        let p = DynamicConfigPart {
            source: "EventSubscription/cloud-claims/7b409f932d2c88e9".into(),
            ..Default::default()
        };
        assert_eq!(p.subscription_key(), Some("EventSubscription/cloud-claims"));
        let manual = DynamicConfigPart {
            source: "Plugin/x".into(),
            ..Default::default()
        };
        assert_eq!(manual.subscription_key(), None);
    }
}
