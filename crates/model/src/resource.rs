//! Resources and the Router document that holds them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::kinds::*;

pub const ROUTER_API_VERSION: &str = "routerd.net/v1alpha1";
pub const FEDERATION_API: &str = "federation.routerd.net/v1alpha1";
pub const PLUGIN_API: &str = "plugin.routerd.net/v1alpha1";
pub const CONFIG_API: &str = "config.routerd.net/v1alpha1";
pub const HYBRID_API: &str = "hybrid.routerd.net/v1alpha1";
pub const NET_API: &str = "net.routerd.net/v1alpha1";

macro_rules! kinds {
    ($($kind:ident($spec:ty) = $api:expr;)*) => {
        /// The typed spec of a resource, chosen by its `kind` alone (as Go does).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec {
            $($kind($spec),)*
        }

        impl Spec {
            /// Decodes `value` into the spec type of `kind`; `None` for an unknown kind.
            pub fn decode(kind: &str, value: serde_yaml::Value) -> Option<Result<Spec, serde_yaml::Error>> {
                let value = if value.is_null() { serde_yaml::Value::Mapping(Default::default()) } else { value };
                match kind {
                    $(stringify!($kind) => Some(serde_yaml::from_value::<$spec>(value).map(Spec::$kind)),)*
                    _ => None,
                }
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(Spec::$kind(_) => stringify!($kind),)*
                }
            }
        }

        /// The apiVersion a Kind must use; `None` for an unknown kind.
        pub fn api_version_of(kind: &str) -> Option<&'static str> {
            match kind {
                $(stringify!($kind) => Some($api),)*
                _ => None,
            }
        }

        impl Serialize for Spec {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Spec::$kind(v) => v.serialize(s),)*
                }
            }
        }
    };
}

kinds! {
    EventGroup(EventGroupSpec) = FEDERATION_API;
    EventPeer(EventPeerSpec) = FEDERATION_API;
    EventSubscription(EventSubscriptionSpec) = FEDERATION_API;
    ClientObserver(ClientObserverSpec) = FEDERATION_API;
    Plugin(PluginSpec) = PLUGIN_API;
    DynamicConfigSource(DynamicConfigSourceSpec) = PLUGIN_API;
    DynamicOverridePolicy(DynamicOverridePolicySpec) = CONFIG_API;
    RemoteAddressClaim(RemoteAddressClaimSpec) = HYBRID_API;
    AddressMobilityDomain(AddressMobilityDomainSpec) = HYBRID_API;
    OverlayPeer(OverlayPeerSpec) = HYBRID_API;
    CloudProviderProfile(CloudProviderProfileSpec) = HYBRID_API;
    WireGuardInterface(WireGuardInterfaceSpec) = NET_API;
    WireGuardPeer(WireGuardPeerSpec) = NET_API;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_refs: Vec<OwnerRef>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One configuration resource with a typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
    /// Free-form status; carried through, never validated.
    pub status: Option<serde_yaml::Value>,
}

/// A resource's identity: apiVersion + kind + name, printed as `<apiVersion>/<Kind>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.api_version, self.kind, self.name)
    }
}

impl From<&ResourceRef> for ResourceId {
    fn from(r: &ResourceRef) -> Self {
        ResourceId {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
        }
    }
}

impl Resource {
    /// Builds a resource with the canonical apiVersion of the spec's kind.
    pub fn new(name: impl Into<String>, spec: Spec) -> Self {
        let kind = spec.kind();
        Resource {
            api_version: api_version_of(kind).unwrap_or_default().to_string(),
            kind: kind.to_string(),
            metadata: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }

    pub fn id(&self) -> ResourceId {
        ResourceId {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.metadata.name.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Decodes a resource whose spec is still untyped, naming it in any error.
    pub fn from_raw(raw: RawResource) -> Result<Resource, String> {
        let id = format!("{}/{}/{}", raw.api_version, raw.kind, raw.metadata.name);
        match Spec::decode(&raw.kind, raw.spec) {
            None => Err(format!("unsupported resource kind {} in {}", raw.kind, id)),
            Some(Err(e)) => Err(format!("{id} spec: {e}")),
            Some(Ok(spec)) => Ok(Resource {
                api_version: raw.api_version,
                kind: raw.kind,
                metadata: raw.metadata,
                spec,
                status: raw.status.filter(|s| !s.is_null()),
            }),
        }
    }
}

/// A resource as parsed, before its spec is decoded by kind.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RawResource {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: serde_yaml::Value,
    pub status: Option<serde_yaml::Value>,
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Resource", 5)?;
        st.serialize_field("apiVersion", &self.api_version)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            st.serialize_field("status", status)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Resource::from_raw(RawResource::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// The top-level Router document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    pub api_version: String,
    pub kind: String,
    pub metadata: RouterMeta,
    pub spec: RouterSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RouterMeta {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RouterSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Reconcile {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protected_interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protected_zones: Vec<String>,
}

impl Router {
    /// Resources of one kind with their typed spec, in file order.
    pub fn specs<'a, T: 'a>(
        &'a self,
        pick: fn(&'a Spec) -> Option<&'a T>,
    ) -> impl Iterator<Item = (&'a Resource, &'a T)> {
        self.spec
            .resources
            .iter()
            .filter_map(move |r| pick(&r.spec).map(|s| (r, s)))
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Resource> {
        self.spec
            .resources
            .iter()
            .find(|r| r.kind == kind && r.metadata.name == name)
    }
}

/// Accessors used with [`Router::specs`], one per kind that other crates iterate.
pub mod pick {
    use super::*;
    macro_rules! picker {
        ($($fn:ident => $kind:ident($spec:ty);)*) => {
            $(pub fn $fn(s: &Spec) -> Option<&$spec> {
                match s { Spec::$kind(v) => Some(v), _ => None }
            })*
        };
    }
    picker! {
        event_group => EventGroup(EventGroupSpec);
        event_peer => EventPeer(EventPeerSpec);
        event_subscription => EventSubscription(EventSubscriptionSpec);
        client_observer => ClientObserver(ClientObserverSpec);
        plugin => Plugin(PluginSpec);
        override_policy => DynamicOverridePolicy(DynamicOverridePolicySpec);
        remote_address_claim => RemoteAddressClaim(RemoteAddressClaimSpec);
        mobility_domain => AddressMobilityDomain(AddressMobilityDomainSpec);
        overlay_peer => OverlayPeer(OverlayPeerSpec);
        provider_profile => CloudProviderProfile(CloudProviderProfileSpec);
        wireguard_interface => WireGuardInterface(WireGuardInterfaceSpec);
        wireguard_peer => WireGuardPeer(WireGuardPeerSpec);
    }
}
