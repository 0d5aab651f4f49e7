//! Reads of the whole catalog shared by the requests that miss it together.
//!
//! A change no page can patch drops the cached catalog, and every open page then refetches its
//! list at once: without sharing, each of those requests would read the whole catalog (10,000
//! topics) on a pooled connection of its own, and the pool would drown in identical reads.
//! Here the first request that misses starts one read and the others wait for it.
//!
//! A request may take a read in flight only if that read started at the catalog's generation
//! the request's ticket holds, or a later one: the read began after every change the request
//! must see was known here, so it includes them. A request whose ticket is newer (a change
//! moved the catalog after the read began) starts a read of its own, which later arrivals join.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::queries::load_catalog;
use crate::cache::{Catalog, Ticket, TopicCache};
use crate::db::Db;
use crate::error::DomainError;

type Outcome = Option<Result<Catalog, DomainError>>;

#[derive(Clone, Default)]
pub struct CatalogReads {
    slot: Arc<Mutex<Slot>>,
    /// Reads made, for tests and metrics: fewer than the requests that missed the catalog.
    reads: Arc<AtomicU64>,
}

#[derive(Default)]
struct Slot {
    /// The read later requests may join, if any.
    in_flight: Option<InFlight>,
    /// The id the next read takes.
    next_id: u64,
}

struct InFlight {
    /// The catalog's generation when the read began.
    generation: u64,
    /// Tells apart reads that followed one another in the slot.
    id: u64,
    outcome: watch::Receiver<Outcome>,
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
        if !cache.is_enabled() {
            // Nothing is shared with a cache that keeps nothing (every request reads).
            self.reads.fetch_add(1, Ordering::Relaxed);
            return read_now(db).await;
        }
        let mut outcome = self.join_or_start(db, cache, ticket);
        let settled = outcome.wait_for(Option::is_some).await;
        match settled.as_deref() {
            Ok(Some(result)) => result.clone(),
            // The reading task ended without an answer (it panicked).
            Ok(None) | Err(_) => {
                tracing::error!("a shared catalog read ended without an answer");
                Err(DomainError::Internal)
            }
        }
    }

    fn join_or_start(
        &self,
        db: &Db,
        cache: &TopicCache,
        ticket: &Ticket,
    ) -> watch::Receiver<Outcome> {
        let mut slot = self.slot();
        // Filled by a read that ended since this request looked (the fill comes before the
        // slot is cleared): nothing to read.
        if let Some(catalog) = cache.catalog() {
            return watch::channel(Some(Ok(catalog))).1;
        }
        let joinable = slot
            .in_flight
            .as_ref()
            .filter(|read| read.generation >= ticket.catalog);
        if let Some(read) = joinable {
            return read.outcome.clone();
        }
        let id = slot.next_id;
        slot.next_id += 1;
        let (tell, outcome) = watch::channel(None);
        slot.in_flight = Some(InFlight {
            generation: ticket.catalog,
            id,
            outcome: outcome.clone(),
        });
        drop(slot);
        let (reads, db, cache, ticket) = (self.clone(), db.clone(), cache.clone(), *ticket);
        // A task of its own, so that a request that goes away (its client hung up) does not
        // take the read from the others waiting for it.
        self.reads.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let result = read_now(&db).await;
            if let Ok(catalog) = &result {
                cache.fill_catalog(&ticket, catalog.clone());
            }
            // Later requests find the cache filled, or start a read of their own.
            {
                let mut slot = reads.slot();
                if slot.in_flight.as_ref().is_some_and(|read| read.id == id) {
                    slot.in_flight = None;
                }
            }
            let _ = tell.send(Some(result));
        });
        outcome
    }

    /// Reads of the catalog started here since start-up.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // Every change under this lock is an assignment or a count: a panic cannot leave it
        // half done.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn read_now(db: &Db) -> Result<Catalog, DomainError> {
    let catalog = db
        .run(|conn| load_catalog(conn).map_err(DomainError::from))
        .await?;
    Ok(Arc::new(catalog))
}
