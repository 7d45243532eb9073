//! The federation transport: what one node emits, its peers store.
//!
//! A tour:
//! - [`group`]: an EventGroup's transport settings and peers, from the config; its secret.
//! - [`receiver`]: `POST /v1/events` (HMAC, replay window, Go's status codes) and
//!   `GET /v1/status`, bound to the overlay address and its device.
//! - [`outbox`]: the pusher: one delivery row per (event, peer), 3 signed attempts per pass,
//!   retries every pass while the event lives; and the retention prune.
//! - [`http`]: the minimal HTTP/1 client; [`watch`]: wake-ups when routerctl writes.
//!
//! The daemon (`routerd serve`) runs, per group, a receiver (when `listen` is set), an outbox
//! loop and a prune loop, all sharing one database connection behind a mutex that is never held
//! across an await.

pub mod group;
pub mod http;
pub mod outbox;
pub mod receiver;
pub mod watch;

pub use group::{GroupConfig, Peer};
pub use outbox::{Outbox, PassStats, Scope};
pub use receiver::Receiver;

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("EventGroup {group}: {message}")]
    Config { group: String, message: String },
    #[error("EventGroup {group}: secret file {path}: {message}")]
    Secret {
        group: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    State(#[from] routerd_state::StateError),
}
