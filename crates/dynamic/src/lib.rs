//! The effective config: startup resources plus active dynamic parts, minus allowed masks.
//!
//! Pure: the caller reads the startup config and the stored parts and passes `now`. The steps
//! follow Go routerd's `BuildEffectiveConfig`, with one deliberate change ([`merge`]): a newer
//! part from the same producer *supersedes* an older part's resource of the same identity
//! instead of failing the whole merge, so a client seen twice renders one claim.
//! [`capture`] holds the self-capture guard that uses the same parts.

pub mod capture;
mod merge;
mod render;

pub use merge::{merge, AddedResource, Effective, MergeError, Superseded, Suppressed};
pub use render::{diff_json, diff_text, render_json, render_yaml};
