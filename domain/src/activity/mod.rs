//! The activity log: one row per topic created, renamed or deleted. The feed's wire types
//! (`feed`) are shared with the browser; writing and reading the rows (`log`) is the server's.

mod feed;
#[cfg(feature = "server")]
mod log;

pub use feed::{ActivityPageData, ActivityView, MAX_PAGE, PAGE_SIZE};
#[cfg(feature = "server")]
pub use log::{feed, forget_topic, page, record};
