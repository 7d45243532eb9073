//! The subscription stage: stored events → plugin → DynamicConfigPart.
//!
//! A tour:
//! - [`controller`]: one pass per tick over every EventSubscription: match stored events, skip
//!   those already processed (the run table), batch them, run the plugin, store the part.
//! - [`schedule`]: `batchWindow` and `debounce`, pure and clock-free.
//! - [`runner`]: the plugin process: clean environment, stdin/stdout JSON, caps and deadline.
//! - [`protocol`]: PluginRequest / PluginResult and Go's validation texts.
//! - [`part`]: part source, digest and provenance annotations.
//! - [`manual`]: `routerctl plugin run`.

pub mod controller;
pub mod manual;
pub mod part;
pub mod protocol;
pub mod runner;
pub mod schedule;

pub use controller::{Controller, PassReport, Phase, SubscriptionReport};
