//! The typed `spec` of every Kind this slice knows, with Go's field names and order.
//!
//! Field order matters: it is the order Go's `encoding/json` writes, and so the order behind
//! DynamicConfigPart digests. Empty fields are omitted like Go's `omitempty`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// YAML scalars of any type read as text, as Go's yaml.v3 does for string fields: `ttl: 30`
/// decodes and then fails as a duration ("missing unit") instead of as a type error.
pub fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Null => String::new(),
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, got {other:?}"
            )))
        }
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A reference to a resource by identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

// ---- federation.routerd.net ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventGroupSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(skip_serializing_if = "Retention::is_empty")]
    pub retention: Retention,
    #[serde(skip_serializing_if = "GroupAuth::is_empty")]
    pub auth: GroupAuth,
    #[serde(skip_serializing_if = "Listen::is_empty")]
    pub listen: Listen,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub replay_window: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Retention {
    #[serde(skip_serializing_if = "is_zero")]
    pub max_events: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub max_age: String,
}
impl Retention {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupAuth {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_file: String,
}
impl GroupAuth {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Listen {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub port: i64,
}
impl Listen {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventPeerSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub direction: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventSubscriptionSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_ref: String,
    #[serde(rename = "match")]
    pub match_: EventMatch,
    pub trigger: SubscriptionTrigger,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventMatch {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_prefixes: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub payload: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionTrigger {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub plugin_ref: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub batch_window: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub debounce: String,
}

/// routerd-edge's own Kind: watch the kernel neighbour table and emit observed facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientObserverSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_ref: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub ttl: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub expire_after: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub payload: BTreeMap<String, String>,
}

// ---- plugin.routerd.net ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub executable: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub timeout: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<PluginTrigger>,
    #[serde(skip_serializing_if = "PluginContext::is_empty")]
    pub context: PluginContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginTrigger {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub trigger_type: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub every: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topic: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginContext {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceRef>,
}
impl PluginContext {
    fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DynamicConfigSourceSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub plugin_ref: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient_string"
    )]
    pub ttl: String,
    #[serde(skip_serializing_if = "MergePolicy::is_empty")]
    pub merge_policy: MergePolicy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<PluginTrigger>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct MergePolicy {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub conflict: String,
}
impl MergePolicy {
    fn is_empty(&self) -> bool {
        self.conflict.is_empty()
    }
}

// ---- config.routerd.net ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DynamicOverridePolicySpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<OverrideRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OverrideRule {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ResourceRef>,
}

// ---- hybrid.routerd.net ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteAddressClaimSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner_side: String,
    pub capture: ClaimCapture,
    pub delivery: ClaimDelivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimCapture {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub capture_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nic_ref: String,
    #[serde(rename = "configureOSAddress", skip_serializing_if = "is_false")]
    pub configure_os_address: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface: String,
    #[serde(rename = "gratuitousARP", skip_serializing_if = "is_false")]
    pub gratuitous_arp: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimDelivery {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tunnel_interface: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AddressMobilityDomainSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_ref: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OverlayPeerSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(rename = "nodeID", skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    pub underlay: OverlayUnderlay,
    #[serde(skip_serializing_if = "OverlayRemote::is_empty")]
    pub remote: OverlayRemote,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OverlayUnderlay {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub underlay_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OverlayRemote {
    #[serde(rename = "nodeID", skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
}
impl OverlayRemote {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CloudProviderProfileSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(rename = "subscriptionID", skip_serializing_if = "String::is_empty")]
    pub subscription_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_group: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "ProviderAuth::is_empty")]
    pub auth: ProviderAuth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderAuth {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command: String,
}
impl ProviderAuth {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

// ---- net.routerd.net -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireGuardInterfaceSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ifname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub private_key_file: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub listen_port: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub mtu: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireGuardPeerSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub public_key: String,
    #[serde(rename = "allowedIPs", skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub persistent_keepalive: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preshared_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preshared_key_file: String,
}
