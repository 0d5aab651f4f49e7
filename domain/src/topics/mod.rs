//! Topics: the listing shared with the browser (`listing`); on the server the validated name,
//! the queries other modules build on, reading the list through the cache, and the changes
//! (one transaction each, signals sent from inside it).

mod listing;
pub use listing::{PageRequest, TopicListing, TopicView, PAGE_SIZE};

#[cfg(feature = "server")]
pub(crate) mod catalog_reads;
#[cfg(feature = "server")]
mod changes;
#[cfg(feature = "server")]
mod list;
#[cfg(feature = "server")]
mod name;
#[cfg(feature = "server")]
pub mod purge;
#[cfg(feature = "server")]
pub(crate) mod queries;
#[cfg(all(test, feature = "server"))]
mod tests;

#[cfg(feature = "server")]
pub use catalog_reads::CatalogReads;
#[cfg(feature = "server")]
pub use changes::{create, create_in, delete, delete_in, rename, rename_in, Deletion};
#[cfg(feature = "server")]
pub use list::{list, list_in, list_pausing_before_fill, topics_on_page};
#[cfg(feature = "server")]
pub use name::{TopicName, NAME_MAX};
