//! The vocabulary of routerd-edge, shared by every stage.
//!
//! A tour:
//! - [`resource`] and [`kinds`]: the Router document and the typed spec of each Kind, with Go's
//!   field names and order (the order matters for digests).
//! - [`config`]: loading YAML into a [`resource::Router`]; [`validate`]: Go's validation messages,
//!   all problems at once.
//! - [`event`]: the federation Event envelope; [`part`]: the DynamicConfigPart record.
//! - [`time`] and [`duration`]: Go's RFC 3339 and duration forms; [`gojson`]: Go's JSON bytes.
//! - [`net`]: IP prefix parsing; [`signature`]: the HMAC of pushed events.
//!
//! This crate is pure: no sockets, no database and no clock (callers pass `now`).

pub mod config;
pub mod duration;
pub mod event;
pub mod gojson;
pub mod kinds;
pub mod net;
pub mod part;
pub mod resource;
pub mod signature;
pub mod time;
pub mod validate;

pub use config::{load_file, load_str, ConfigError, Loaded};
pub use duration::GoDuration;
pub use event::Event;
pub use part::{Directive, DynamicConfigPart};
pub use resource::{Resource, ResourceId, Router, Spec};
pub use time::Timestamp;
