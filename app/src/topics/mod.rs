//! Topics: the list page, its server functions, and what they exchange.
//!
//! Every action has two front doors that make the same domain call: a plain form POST to the
//! route in the README's routes table (works without JavaScript; handled in the server crate)
//! and a server function (used by the hydrated page, which then refetches the list when the
//! version moved).
//!
//! - `api`: the server functions (the wire types are the domain's `domain::topics` listing);
//! - `page`: the page and its page-wide forms; `row`: one topic's row with its actions.

mod api;
mod page;
mod row;

pub use api::*;
pub use page::TopicsPage;
#[cfg(feature = "ssr")]
pub use row::list_rows_html;
