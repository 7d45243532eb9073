//! Config validation with Go routerd's messages.
//!
//! Go stops at the first error; this validator reports every error (each prefixed with the
//! resource id) so an operator fixes a config in one round. Warnings never fail validation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use crate::duration::{parse_optional, GoDuration};
use crate::kinds::*;
use crate::net::{parse_ipv4_prefix, parse_prefix, Ipv4Net};
use crate::resource::*;

/// What validation found: errors fail the config, warnings are only printed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates a whole Router document: wrapper, every resource, then cross-references.
pub fn validate(router: &Router) -> Report {
    let mut v = Validator::default();
    if router.api_version != ROUTER_API_VERSION {
        v.error(format!("router apiVersion must be {ROUTER_API_VERSION}"));
    }
    if router.kind != "Router" {
        v.error("router kind must be Router".into());
    }
    if router.metadata.name.trim().is_empty() {
        v.error("router metadata.name is required".into());
    }
    if let Some(r) = &router.spec.reconcile {
        if !matches!(r.mode.as_str(), "" | "strict" | "progressive") {
            v.error("spec.reconcile.mode must be strict or progressive".into());
        }
    }
    let mut seen = HashSet::new();
    for r in &router.spec.resources {
        if !generic_checks(&mut v, r, &mut seen) {
            continue;
        }
        let mut k = KindValidator {
            v: &mut v,
            id: r.id().to_string(),
        };
        k.check(r);
    }
    cross_references(&mut v, router);
    v.report
}

#[derive(Default)]
struct Validator {
    report: Report,
}

impl Validator {
    fn error(&mut self, m: String) {
        self.report.errors.push(m);
    }
    fn warn(&mut self, m: String) {
        self.report.warnings.push(m);
    }
}

/// The checks every resource gets; `false` when the resource is too broken for kind checks.
fn generic_checks(v: &mut Validator, r: &Resource, seen: &mut HashSet<ResourceId>) -> bool {
    if r.api_version.trim().is_empty() {
        v.error("resource apiVersion is required".into());
        return false;
    }
    if r.kind.trim().is_empty() {
        v.error("resource kind is required".into());
        return false;
    }
    if r.metadata.name.trim().is_empty() {
        v.error(format!(
            "{}/{} metadata.name is required",
            r.api_version, r.kind
        ));
        return false;
    }
    if !seen.insert(r.id()) {
        v.error(format!("duplicate resource {}", r.id()));
    }
    if let Some(group) = api_version_of(&r.kind) {
        if r.api_version != group {
            v.error(format!("{} must use apiVersion {group}", r.id()));
        }
    }
    true
}

struct KindValidator<'a> {
    v: &'a mut Validator,
    id: String,
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

impl KindValidator<'_> {
    fn err(&mut self, m: impl AsRef<str>) {
        self.v.error(format!("{} {}", self.id, m.as_ref()));
    }

    fn required(&mut self, value: &str, field: &str) {
        if blank(value) {
            self.err(format!("{field} is required"));
        }
    }

    fn no_blank_items(&mut self, items: &[String], field: &str) {
        for (i, s) in items.iter().enumerate() {
            if blank(s) {
                self.err(format!("{field}[{i}] must not be empty"));
            }
        }
    }

    /// A duration that may be empty; `label` is Go's wording ("a Go duration" / "a valid duration").
    fn optional_duration(&mut self, value: &str, field: &str, label: &str) -> Option<GoDuration> {
        match parse_optional(value) {
            Ok(d) => d,
            Err(e) => {
                self.err(format!("{field} must be {label}: {e}"));
                None
            }
        }
    }

    fn positive_duration(&mut self, value: &str, field: &str) {
        if let Some(d) = self.optional_duration(value, field, "a valid duration") {
            if !d.is_positive() {
                self.err(format!("{field} must be greater than 0"));
            }
        }
    }

    fn check(&mut self, r: &Resource) {
        match &r.spec {
            Spec::EventGroup(s) => self.event_group(s),
            Spec::EventPeer(s) => self.event_peer(s),
            Spec::EventSubscription(s) => self.event_subscription(s),
            Spec::ClientObserver(s) => self.client_observer(s),
            Spec::Plugin(s) => self.plugin(s),
            Spec::DynamicConfigSource(s) => self.dynamic_config_source(s),
            Spec::DynamicOverridePolicy(s) => self.override_policy(s),
            Spec::RemoteAddressClaim(s) => self.remote_address_claim(s),
            Spec::AddressMobilityDomain(s) => self.mobility_domain(s),
            Spec::OverlayPeer(s) => self.overlay_peer(s),
            Spec::CloudProviderProfile(s) => self.provider_profile(s),
            Spec::WireGuardInterface(s) => self.wireguard_interface(r, s),
            Spec::WireGuardPeer(s) => self.wireguard_peer(s),
        }
    }

    fn event_group(&mut self, s: &EventGroupSpec) {
        self.required(&s.node_name, "spec.nodeName");
        if s.retention.max_events < 0 {
            self.err("spec.retention.maxEvents must be >= 0");
        }
        self.optional_duration(
            &s.retention.max_age,
            "spec.retention.maxAge",
            "a Go duration",
        );
        if !matches!(s.auth.mode.trim(), "" | "hmac") {
            self.err("spec.auth.mode must be empty or hmac");
        }
        if !blank(&s.listen.address) {
            if !(1..=65535).contains(&s.listen.port) {
                self.err("spec.listen.port must be 1..65535 when listen.address is set");
            }
            if blank(&s.auth.secret_file) {
                self.err("spec.auth.secretFile is required when spec.listen.address is set");
            }
        } else if s.listen.port != 0 {
            // Go binds every interface here; we refuse (docs/compatibility.md).
            self.err("spec.listen.address is required when spec.listen.port is set (routerd-edge binds only the given address)");
        }
        self.optional_duration(&s.replay_window, "spec.replayWindow", "a Go duration");
    }

    fn event_peer(&mut self, s: &EventPeerSpec) {
        self.required(&s.group_ref, "spec.groupRef");
        self.required(&s.node_name, "spec.nodeName");
        if !matches!(s.direction.trim(), "" | "push") {
            self.err("spec.direction must be empty or push");
        }
        if blank(&s.endpoint) {
            self.err("spec.endpoint is required for push delivery");
        }
        self.no_blank_items(&s.types, "spec.types");
        self.no_blank_items(&s.subject_prefixes, "spec.subjectPrefixes");
    }

    fn event_subscription(&mut self, s: &EventSubscriptionSpec) {
        self.required(&s.group_ref, "spec.groupRef");
        if s.match_.types.is_empty() {
            self.err("spec.match.types is required (at least one type)");
        }
        self.no_blank_items(&s.match_.types, "spec.match.types");
        self.no_blank_items(&s.match_.subject_prefixes, "spec.match.subjectPrefixes");
        self.no_blank_items(&s.match_.source_nodes, "spec.match.sourceNodes");
        if s.match_.payload.keys().any(|k| blank(k)) {
            self.err("spec.match.payload has a blank key");
        }
        self.required(&s.trigger.plugin_ref, "spec.trigger.pluginRef");
        self.optional_duration(
            &s.trigger.batch_window,
            "spec.trigger.batchWindow",
            "a Go duration",
        );
        self.optional_duration(
            &s.trigger.debounce,
            "spec.trigger.debounce",
            "a Go duration",
        );
    }

    fn client_observer(&mut self, s: &ClientObserverSpec) {
        self.required(&s.group_ref, "spec.groupRef");
        if s.interfaces.is_empty() {
            self.err("spec.interfaces is required (at least one interface)");
        }
        self.no_blank_items(&s.interfaces, "spec.interfaces");
        if s.prefixes.is_empty() {
            self.err("spec.prefixes is required (at least one IPv4 CIDR)");
        }
        for (i, p) in s.prefixes.iter().enumerate() {
            match parse_ipv4_prefix(p.trim()) {
                Ok(_) => {}
                Err(None) => self.err(format!("spec.prefixes[{i}] must be an IPv4 CIDR")),
                Err(Some(e)) => {
                    self.err(format!("spec.prefixes[{i}] must be a valid IPv4 CIDR: {e}"))
                }
            }
        }
        self.positive_duration(&s.ttl, "spec.ttl");
        self.positive_duration(&s.expire_after, "spec.expireAfter");
        if s.payload.keys().any(|k| blank(k)) {
            self.err("spec.payload has a blank key");
        }
    }

    fn plugin(&mut self, s: &PluginSpec) {
        let exe = s.executable.trim();
        if exe.is_empty() {
            self.err("spec.executable is required");
        } else if !exe.starts_with('/') {
            self.err("spec.executable must be an absolute path");
        }
        self.positive_duration(&s.timeout, "spec.timeout");
        for (i, c) in s.capabilities.iter().enumerate() {
            if !matches!(c.as_str(), "observe.cloud" | "propose.dynamicConfig") {
                self.err(format!(
                    "spec.capabilities[{i}] must be observe.cloud or propose.dynamicConfig"
                ));
            }
        }
        self.triggers(&s.triggers);
        for (i, r) in s.context.resources.iter().enumerate() {
            for (value, field) in [
                (&r.api_version, "apiVersion"),
                (&r.kind, "kind"),
                (&r.name, "name"),
            ] {
                if blank(value) {
                    self.err(format!("spec.context.resources[{i}].{field} is required"));
                }
            }
        }
    }

    fn triggers(&mut self, triggers: &[PluginTrigger]) {
        for (i, t) in triggers.iter().enumerate() {
            match t.trigger_type.trim() {
                "interval" => {
                    if blank(&t.every) {
                        self.err(format!(
                            "spec.triggers[{i}].every is required for interval triggers"
                        ));
                    } else {
                        self.positive_duration(&t.every, &format!("spec.triggers[{i}].every"));
                    }
                }
                "event" => {}
                _ => self.err(format!("spec.triggers[{i}].type must be interval or event")),
            }
        }
    }

    fn dynamic_config_source(&mut self, s: &DynamicConfigSourceSpec) {
        self.required(&s.plugin_ref, "spec.pluginRef");
        if blank(&s.ttl) {
            self.err("spec.ttl is required");
        } else {
            self.positive_duration(&s.ttl, "spec.ttl");
        }
        if !matches!(s.merge_policy.conflict.trim(), "" | "reject") {
            self.err("spec.mergePolicy.conflict must be reject");
        }
        self.triggers(&s.triggers);
    }

    fn override_policy(&mut self, s: &DynamicOverridePolicySpec) {
        for (i, rule) in s.allow.iter().enumerate() {
            if blank(&rule.source) {
                self.err(format!("spec.allow[{i}].source is required"));
            }
            for (j, op) in rule.operations.iter().enumerate() {
                if op.trim() != "mask" {
                    self.err(format!("spec.allow[{i}].operations[{j}] must be mask"));
                }
            }
            for (j, t) in rule.targets.iter().enumerate() {
                for (value, field) in [
                    (&t.api_version, "apiVersion"),
                    (&t.kind, "kind"),
                    (&t.name, "name"),
                ] {
                    if blank(value) {
                        self.err(format!("spec.allow[{i}].targets[{j}].{field} is required"));
                    }
                }
            }
        }
    }

    fn remote_address_claim(&mut self, s: &RemoteAddressClaimSpec) {
        self.required(&s.domain_ref, "spec.domainRef");
        if blank(&s.address) {
            self.err("spec.address: is required");
        } else {
            match parse_ipv4_prefix(s.address.trim()) {
                Ok(n) if n.len == 32 => {}
                Ok(_) | Err(None) => self.err("spec.address: must be an IPv4 /32 CIDR"),
                Err(Some(e)) => {
                    self.err(format!("spec.address: must be a valid IPv4 /32 CIDR: {e}"))
                }
            }
        }
        if !matches!(s.owner_side.as_str(), "cloud" | "onprem") {
            self.err("spec.ownerSide must be cloud or onprem");
        }
        let c = &s.capture;
        match c.capture_type.as_str() {
            "provider-secondary-ip" => {
                for (value, field) in [
                    (&c.provider_ref, "providerRef"),
                    (&c.provider_mode, "providerMode"),
                    (&c.nic_ref, "nicRef"),
                ] {
                    if blank(value) {
                        self.err(format!(
                            "spec.capture.{field} is required when spec.capture.type is provider-secondary-ip"
                        ));
                    }
                }
                if c.configure_os_address {
                    self.err("spec.capture.configureOSAddress=true is not implemented in the MVP");
                }
            }
            "proxy-arp" => {
                if blank(&c.interface) {
                    self.err(
                        "spec.capture.interface is required when spec.capture.type is proxy-arp",
                    );
                }
            }
            "" => self.err("spec.capture.type is required"),
            other => self.err(format!(
                "spec.capture.type {other:?} is reserved/not implemented in MVP"
            )),
        }
        if !matches!(s.delivery.mode.as_str(), "route") {
            self.err("spec.delivery.mode must be route");
        }
        self.required(&s.delivery.peer_ref, "spec.delivery.peerRef");
    }

    fn mobility_domain(&mut self, s: &AddressMobilityDomainSpec) {
        if blank(&s.prefix) {
            self.err("spec.prefix: is required");
        } else {
            match parse_ipv4_prefix(s.prefix.trim()) {
                Ok(_) => {}
                Err(None) => self.err("spec.prefix: must be an IPv4 CIDR"),
                Err(Some(e)) => self.err(format!("spec.prefix: must be a valid IPv4 CIDR: {e}")),
            }
        }
        if s.mode != "selective-address" {
            self.err("spec.mode full L2 extension is not supported; routerd implements Selective Address Mobility");
        }
    }

    fn overlay_peer(&mut self, s: &OverlayPeerSpec) {
        if !matches!(s.role.as_str(), "onprem" | "cloud") {
            self.err("spec.role must be onprem or cloud");
        }
        self.required(&s.node_id, "spec.nodeID");
        if !matches!(
            s.underlay.underlay_type.as_str(),
            "wireguard" | "tailscale" | "ipsec" | "route"
        ) {
            self.err("spec.underlay.type must be wireguard, tailscale, ipsec, or route");
        }
        if s.underlay.underlay_type == "wireguard" && blank(&s.underlay.interface) {
            self.err("spec.underlay.interface is required when spec.underlay.type is wireguard");
        }
        if !blank(&s.underlay.address) && s.underlay.address.trim().parse::<IpAddr>().is_err() {
            self.err("spec.underlay.address must be an IP address");
        }
    }

    fn provider_profile(&mut self, s: &CloudProviderProfileSpec) {
        if !matches!(s.provider.as_str(), "azure" | "aws" | "oci" | "gcp") {
            self.err("spec.provider must be azure, aws, oci, or gcp");
        }
        if s.capabilities.is_empty() {
            self.err("spec.capabilities is required");
        }
        self.no_blank_items(&s.capabilities, "spec.capabilities");
        match s.auth.mode.as_str() {
            "" => {}
            "external-command" => {
                if blank(&s.auth.command) {
                    self.err(
                        "spec.auth.command is required when spec.auth.mode is external-command",
                    );
                }
            }
            _ => self.err("spec.auth.mode must be external-command"),
        }
    }

    fn wireguard_interface(&mut self, r: &Resource, s: &WireGuardInterfaceSpec) {
        let name = wireguard_ifname(r, s);
        if name.contains([' ', '\t', '\n', '/']) {
            self.err("metadata.name must be usable as a WireGuard interface name");
        }
        if name.len() > 15 {
            self.err("metadata.name must be 15 characters or fewer");
        }
        if !(0..=65535).contains(&s.listen_port) {
            self.err("spec.listenPort must be within 1-65535");
        }
        if s.mtu != 0 && !(576..=9216).contains(&s.mtu) {
            self.err("spec.mtu must be within 576-9216");
        }
        if s.private_key_file.contains(['\r', '\n']) {
            self.err("spec.privateKeyFile is invalid");
        }
    }

    fn wireguard_peer(&mut self, s: &WireGuardPeerSpec) {
        self.required(&s.interface, "spec.interface");
        self.required(&s.public_key, "spec.publicKey");
        if s.allowed_ips.is_empty() {
            self.err("spec.allowedIPs is required");
        }
        for (i, p) in s.allowed_ips.iter().enumerate() {
            if let Err(e) = parse_prefix(p.trim()) {
                self.err(format!("spec.allowedIPs[{i}] must be a CIDR prefix: {e}"));
            }
        }
        if !(0..=65535).contains(&s.persistent_keepalive) {
            self.err("spec.persistentKeepalive must be within 0-65535");
        }
    }
}

/// The kernel interface name of a WireGuardInterface: `spec.ifname`, else its resource name.
pub fn wireguard_ifname<'a>(r: &'a Resource, s: &'a WireGuardInterfaceSpec) -> &'a str {
    if s.ifname.trim().is_empty() {
        &r.metadata.name
    } else {
        s.ifname.trim()
    }
}

fn cross_references(v: &mut Validator, router: &Router) {
    let names = |pick_kind: &str| -> HashSet<&str> {
        router
            .spec
            .resources
            .iter()
            .filter(|r| r.kind == pick_kind)
            .map(|r| r.metadata.name.as_str())
            .collect()
    };
    let overlay_peers = names("OverlayPeer");
    let wg_interfaces: HashSet<&str> = router
        .specs(pick::wireguard_interface)
        .map(|(r, s)| wireguard_ifname(r, s))
        .collect();
    let domains: HashMap<&str, &AddressMobilityDomainSpec> = router
        .specs(pick::mobility_domain)
        .map(|(r, s)| (r.name(), s))
        .collect();
    let profiles: HashMap<&str, &CloudProviderProfileSpec> = router
        .specs(pick::provider_profile)
        .map(|(r, s)| (r.name(), s))
        .collect();

    for (r, s) in router.specs(pick::remote_address_claim) {
        let id = r.id();
        let domain_name = s.domain_ref.trim();
        if !domain_name.is_empty() {
            match domains.get(domain_name) {
                None => v.error(format!("{id} spec.domainRef references missing AddressMobilityDomain {domain_name:?}")),
                Some(d) => match parse_ipv4_prefix(d.prefix.trim()) {
                    Err(_) => v.error(format!(
                        "{id} spec.domainRef references AddressMobilityDomain {domain_name:?} with invalid prefix {:?}",
                        d.prefix
                    )),
                    Ok(prefix) => {
                        if let Ok(addr) = parse_ipv4_prefix(s.address.trim()) {
                            if !prefix.contains(addr.addr) {
                                v.error(format!(
                                    "{id} spec.address {:?} is outside AddressMobilityDomain {domain_name:?} prefix {:?}",
                                    s.address, d.prefix
                                ));
                            }
                        }
                    }
                },
            }
        }
        let peer = s.delivery.peer_ref.trim();
        if !peer.is_empty() && !overlay_peers.contains(peer) {
            v.error(format!(
                "{id} spec.delivery.peerRef references missing OverlayPeer {peer:?}"
            ));
        }
        if s.capture.capture_type == "provider-secondary-ip" {
            let p = s.capture.provider_ref.trim();
            match profiles.get(p) {
                None if !p.is_empty() => {
                    v.error(format!("{id} spec.capture.providerRef references missing CloudProviderProfile {p:?}"))
                }
                Some(profile) if !profile.capabilities.iter().any(|c| c == &s.capture.provider_mode) => {
                    v.warn(format!(
                        "{id} spec.capture.providerMode {:?} is not declared in CloudProviderProfile {p:?} capabilities; the provider may refuse it",
                        s.capture.provider_mode
                    ))
                }
                _ => {}
            }
        }
    }
    let groups: HashSet<&str> = router
        .specs(pick::event_group)
        .map(|(r, _)| r.name())
        .collect();
    for (r, s) in router.specs(pick::client_observer) {
        let g = s.group_ref.trim();
        if !g.is_empty() && !groups.contains(g) {
            v.error(format!(
                "{} spec.groupRef references missing EventGroup {g:?}",
                r.id()
            ));
        }
        let ttl = parse_optional(&s.ttl)
            .ok()
            .flatten()
            .unwrap_or(GoDuration::from_secs(300));
        let after = parse_optional(&s.expire_after)
            .ok()
            .flatten()
            .unwrap_or(GoDuration::from_secs(900));
        if after < ttl {
            v.warn(format!(
                "{} spec.expireAfter {after} is shorter than spec.ttl {ttl}: a client may be declared gone while its observation is still valid",
                r.id()
            ));
        }
    }
    for (r, s) in router.specs(pick::mobility_domain) {
        let peer = s.peer_ref.trim();
        if !peer.is_empty() && !overlay_peers.contains(peer) {
            v.error(format!(
                "{} spec.peerRef references missing OverlayPeer {peer:?}",
                r.id()
            ));
        }
    }
    for (r, s) in router.specs(pick::overlay_peer) {
        let ifname = s.underlay.interface.trim();
        if s.underlay.underlay_type == "wireguard"
            && !ifname.is_empty()
            && !wg_interfaces.contains(ifname)
        {
            v.warn(format!(
                "{} spec.underlay.interface {ifname:?} names no declared WireGuardInterface",
                r.id()
            ));
        }
    }
    for (r, s) in router.specs(pick::wireguard_peer) {
        let ifname = s.interface.trim();
        if !ifname.is_empty() && !wg_interfaces.contains(ifname) {
            v.error(format!(
                "{} spec.interface references missing WireGuardInterface {ifname:?}",
                r.id()
            ));
        }
    }
    let mut ports = BTreeSet::new();
    for (r, s) in router.specs(pick::wireguard_interface) {
        if s.listen_port > 0 && !ports.insert(s.listen_port) {
            v.error(format!(
                "{} spec.listenPort {} is already used by another WireGuardInterface",
                r.id(),
                s.listen_port
            ));
        }
    }
}

/// The address a valid claim captures.
pub fn claim_address(s: &RemoteAddressClaimSpec) -> Option<Ipv4Net> {
    parse_ipv4_prefix(s.address.trim()).ok()
}
