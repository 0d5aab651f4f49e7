//! What the cache holds: the catalog every user shares, each user's subscribed ids, and the
//! tickets a reader takes before it reads.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use crate::ids::{TopicId, UserId};
use crate::live::{Count, ViewVersion};

/// One topic as every user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub id: TopicId,
    /// Shared, so that moving a count copies the catalog without copying every name.
    pub name: Arc<str>,
    pub count: Count,
}

pub type Catalog = Arc<Vec<CatalogEntry>>;
pub type UserTopics = Arc<BTreeSet<TopicId>>;

/// The generations a reader saw before reading the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub catalog: u64,
    pub user: u64,
    pub(super) user_id: UserId,
}

impl Ticket {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
}

/// The generations are the versions pages follow.
impl From<Ticket> for ViewVersion {
    fn from(ticket: Ticket) -> Self {
        ViewVersion {
            shared: ticket.catalog,
            user: ticket.user,
        }
    }
}

/// Counters for the metrics endpoint and for tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    /// Entries changed in place by a described change of subscriptions.
    pub patches: AtomicU64,
    pub refused_fills: AtomicU64,
}

/// An entry with the time it was read from the database: a patched entry is stored anew, and
/// must not outlive the time to live of the read it started from.
#[derive(Clone)]
pub(super) struct Stamped<T> {
    pub(super) read_at: Instant,
    pub(super) value: T,
}

impl<T> Stamped<T> {
    /// Another value read as of the same time (a patch of this one).
    pub(super) fn replaced(&self, value: T) -> Self {
        Stamped {
            read_at: self.read_at,
            value,
        }
    }

    pub(super) fn now(value: T) -> Self {
        Stamped {
            read_at: Instant::now(),
            value,
        }
    }
}
