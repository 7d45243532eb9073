//! The apply stage: rendered RemoteAddressClaims become routes, WireGuard allowed IPs and proxy
//! neighbour entries on the host — or, by default, a printed plan of them.
//!
//! A tour:
//! - [`plan`] (pure): claims plus a [`plan::HostView`] → the actions each claim needs, each
//!   marked in place or not, and the reason when a claim cannot be planned.
//! - [`host`]: reads the host and carries out actions and their undo (rtnetlink, WireGuard);
//!   [`uapi`] reads wireguard-go interfaces without their private key.
//! - [`pass`]: one pass — plan, then in live mode install what is missing, journal it in the
//!   state database and withdraw what no claim wants any more after the grace period.
//! - [`print`]: the dry-run/live report as text, with the equivalent `ip`/`wg` commands.

pub mod host;
pub mod pass;
pub mod plan;
pub mod print;
pub mod uapi;

pub use pass::{pass, ClaimOutcome, Options, PassReport, Phase, WithdrawalOutcome};
pub use plan::{Action, ClaimPlan, HostView};
