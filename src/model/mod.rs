//! The records every layer speaks: what the domain reads and writes and what the store persists.
//! Plain data only: nothing here performs I/O or decides a rule, so both the domain (above) and
//! the store (below) can depend on it without depending on each other.

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod changes;
pub mod credits;
pub mod events;
pub mod identities;
pub mod keys;
pub mod limits;
pub mod patch;
pub mod rbac;
pub mod sessions;
pub mod vault;

pub use admin::*;
pub use analytics::*;
pub use audit::*;
pub use changes::*;
pub use credits::*;
pub use events::*;
pub use identities::*;
pub use keys::*;
pub use limits::*;
pub use patch::*;
pub use rbac::*;
pub use sessions::*;
pub use vault::*;
