//! Following live versions in the browser. The versions and patches themselves are the
//! domain's (`domain::live`); the server streams them (`server::live_routes`).

pub use domain::live::{Count, Patch, ViewVersion};

#[cfg(feature = "hydrate")]
pub mod follow;
