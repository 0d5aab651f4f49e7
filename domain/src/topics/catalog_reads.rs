//! Reads of the whole catalog shared by the requests that miss it together.
//!
//! A change no page can patch drops the cached catalog, and every open page then refetches its
//! list at once: without sharing, each of those requests would read the whole catalog (10,000
//! topics) on a pooled connection of its own. Here they wait for one read (`db::shared_reads`).
//! A request takes a read in flight only if it began at the catalog's generation the request's
//! ticket holds, or a later one: the read began after every change the request must see was
//! known here, so it includes them.

use std::sync::Arc;

use super::queries::load_catalog;
use crate::cache::{Catalog, Ticket, TopicCache};
use crate::db::shared_reads::SharedReads;
use crate::db::Db;
use crate::error::DomainError;

#[derive(Clone, Default)]
pub struct CatalogReads {
    shared: SharedReads<(), Catalog>,
}

impl CatalogReads {
    /// The catalog as read at `ticket`'s generation or later; fills the cache when no change
    /// moved the catalog during the read.
    pub async fn read(
        &self,
        db: &Db,
        cache: &TopicCache,
        ticket: &Ticket,
    ) -> Result<Catalog, DomainError> {
        let (db, filled, ticket) = (db.clone(), cache.clone(), *ticket);
        let read = move || async move {
            let catalog: Catalog = Arc::new(
                db.run(|conn| load_catalog(conn).map_err(DomainError::from))
                    .await?,
            );
            filled.fill_catalog(&ticket, catalog.clone());
            Ok(catalog)
        };
        if !cache.is_enabled() {
            // Nothing is shared with a cache that keeps nothing: every request reads.
            return read().await;
        }
        // Filled by a read that ended since this request looked (the fill comes before the
        // read stops being joined): nothing to read.
        self.shared
            .get((), ticket.catalog, || cache.catalog(), read)
            .await
    }

    /// Reads of the catalog shared here since start-up.
    pub fn reads(&self) -> u64 {
        self.shared.reads()
    }
}
