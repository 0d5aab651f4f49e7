//! What the domain works with, built once at start-up: the database, the signal registry with
//! its receivers, the topic cache, the live hub beside it, and the purge queue.
//!
//! Domain calls take `&Services`; the web layer (`app::web`) wraps it with what only pages
//! need. Nothing here knows about HTTP or Leptos.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::probes::Probes;
use crate::cache::TopicCache;
use crate::db::{Backend, Conn, Db, Target};
use crate::error::DomainError;
use crate::ids::UserId;
use crate::live::{LiveHub, ViewVersion};
use crate::sessions::EndedElsewhere;
use crate::signals::announce::Announcer;
use crate::signals::remote::{self, RemoteStats};
use crate::signals::{account_changes, receivers, Effects, Signals};
use crate::topics::catalog_reads::CatalogReads;
use crate::topics::purge::PurgeQueue;
use crate::users::user_cache::UserCache;

#[derive(Clone)]
pub struct Services {
    pub db: Db,
    /// Read side of the cache (the list handler); invalidation belongs to the receivers.
    pub cache: TopicCache,
    /// Open pages' event streams listen here; the receivers publish.
    pub live: LiveHub,
    pub signals: Arc<Signals>,
    /// Wakes the background purge of retired topics.
    pub purge: PurgeQueue,
    /// Other instances' changes, heard through the database (PostgreSQL only).
    pub remote: Option<Arc<RemoteStats>>,
    /// Told of sessions other instances end (PostgreSQL), for the session layer's memory.
    pub ended_sessions: EndedElsewhere,
    /// Reads of the database's cache versions (PostgreSQL only).
    pub probes: Option<Probes>,
    /// Accounts the session layer looked up, forgotten when one changes elsewhere.
    pub users: UserCache,
    /// Reads of the whole catalog, shared by the requests that miss it together.
    pub catalog_reads: CatalogReads,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Connects the signal receivers (our `ready()`) to a cache whose entries live
    /// `cache_ttl` (zero turns caching off, for measuring) and to the live hub.
    pub fn new(db: Db, cache_ttl: Duration) -> Self {
        Self::build(db, cache_ttl, true)
    }

    /// For a command that makes its change and exits (`server end-sessions` and its kin): it
    /// tells other instances of its change, but follows none of theirs. A follower polls
    /// PostgreSQL from its own thread, and a process that exits while one is inside libpq
    /// has its TLS state freed under it (seen as "double free or corruption" at exit).
    pub fn for_a_command(db: Db) -> Self {
        Self::build(db, crate::cache::TTL, false)
    }

    fn build(db: Db, cache_ttl: Duration, follow: bool) -> Self {
        let (cache, probes) = match db.backend() {
            Backend::Sqlite => (TopicCache::new(cache_ttl), None),
            Backend::Postgres => {
                let cache = TopicCache::following_database_versions(cache_ttl);
                let probes = Probes::new(db.clone(), cache.clone());
                (cache, Some(probes))
            }
        };
        let live = LiveHub::default();
        // A bump that says nothing is told to every page only when newer than this.
        live.start_at(cache.shared_version());
        let mut effects = Effects::new(cache.clone(), live.clone());
        if let Target::Postgres { url } = db.target() {
            match Announcer::start(url.clone()) {
                Ok(announcer) => effects = effects.announcing(announcer),
                // Pages stay exact (each request reads the versions); other instances' open
                // pages would follow this one's changes only at their listeners' rereads.
                Err(err) => tracing::error!(error = %err, "cannot start announcing changes"),
            }
        }
        let signals = Arc::new(Signals::new(receivers::ready(), effects));
        let ended_sessions = EndedElsewhere::default();
        let remote = match db.target() {
            Target::Postgres { url } if follow => {
                match remote::follow(url.clone(), &signals, ended_sessions.clone()) {
                    Ok(stats) => Some(stats),
                    Err(err) => {
                        // Pages stay exact (each request reads the versions); only open pages
                        // would not follow other instances' changes live.
                        tracing::error!(error = %err, "cannot start listening for other instances");
                        None
                    }
                }
            }
            _ => None,
        };
        let users = UserCache::default();
        if follow {
            if let Err(err) = account_changes::follow(&db, &signals, users.clone()) {
                // Rights stay exact (checked in each staff action's transaction); the account
                // commands would only take effect on this server once its cached users expire.
                tracing::error!(error = %err, "cannot start following account changes");
            }
        }
        Services {
            db,
            signals,
            cache,
            live,
            purge: PurgeQueue::default(),
            remote,
            ended_sessions,
            probes,
            users,
            catalog_reads: CatalogReads::default(),
        }
    }

    /// Runs a domain mutation on a pooled connection (signals and post-commit work included)
    /// and returns the acting user's new view version.
    pub async fn mutate<F>(&self, viewer: UserId, f: F) -> Result<ViewVersion, DomainError>
    where
        F: FnOnce(&mut Conn, &Signals) -> Result<(), DomainError> + Send + 'static,
    {
        self.mutate_returning(viewer, f)
            .await
            .map(|((), version)| version)
    }

    /// [`Self::mutate`] for a mutation whose outcome the caller acts on.
    pub async fn mutate_returning<R, F>(
        &self,
        viewer: UserId,
        f: F,
    ) -> Result<(R, ViewVersion), DomainError>
    where
        F: FnOnce(&mut Conn, &Signals) -> Result<R, DomainError> + Send + 'static,
        R: Send + 'static,
    {
        let signals = self.signals.clone();
        let outcome = self.db.run(move |conn| f(conn, &signals)).await?;
        Ok((outcome, self.view_version(viewer)))
    }

    /// Brings the cache's versions for `user_id`'s page up to the database's, when they live
    /// there (PostgreSQL: other instances may have committed changes). Call before trusting
    /// the cache for a request; on SQLite the cache's own versions are the truth already.
    pub async fn catch_up(&self, user_id: UserId) -> Result<(), DomainError> {
        match &self.probes {
            Some(probes) => probes.catch_up(user_id).await,
            None => Ok(()),
        }
    }

    /// The version of what `user_id` sees; it moves whenever a committed change touches it.
    pub fn view_version(&self, user_id: UserId) -> ViewVersion {
        self.cache.ticket(user_id).into()
    }
}
