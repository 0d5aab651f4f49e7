//! Reading the topic list as one user sees it: from the cache when it holds the parts, else
//! from one read transaction whose result fills the cache only if no change committed since.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::cache::{Catalog, CatalogEntry, Ticket, TopicCache, UserTopics};
use crate::db::{self, Conn};
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::services::Services;
use crate::subscriptions::queries::topic_ids_of;

use super::listing::{PageRequest, TopicListing, TopicView, PAGE_SIZE};
use super::queries::load_catalog;

/// The topic list as `user_id` sees it. A cache hit touches neither the pool nor the
/// database; a miss reads the missing parts (the catalog shared with the requests missing it
/// at the same time) and fills the cache unless a change committed since the read began.
pub async fn list(
    services: &Services,
    user_id: UserId,
    request: PageRequest,
) -> Result<TopicListing, DomainError> {
    services.catch_up(user_id).await?;
    let mut lookup = Lookup::new(&services.cache, user_id);
    if lookup.catalog.is_none() {
        // Shared with the other requests that miss it now (after a change every page
        // refetches for, that is all of them).
        let catalog = services
            .catalog_reads
            .read(&services.db, &services.cache, &lookup.ticket)
            .await?;
        lookup.catalog = Some(catalog);
    }
    if let (Some(catalog), Some(mine)) = (&lookup.catalog, &lookup.mine) {
        return Ok(merge(lookup.ticket, catalog, mine, &request));
    }
    let cache = services.cache.clone();
    services
        .db
        .run(move |conn| {
            lookup
                .complete(conn, &cache, || {})
                .map(|(ticket, catalog, mine)| merge(ticket, &catalog, &mine, &request))
        })
        .await
}

/// The first page of [`list`], on an open connection.
pub fn list_in(
    conn: &mut Conn,
    cache: &TopicCache,
    user_id: UserId,
) -> Result<TopicListing, DomainError> {
    list_pausing_before_fill(conn, cache, user_id, || {})
}

/// [`list_in`] with a hook between the database read and the cache fill — the dangerous
/// point for stale fills — so tests can pause a reader exactly there.
pub fn list_pausing_before_fill(
    conn: &mut Conn,
    cache: &TopicCache,
    user_id: UserId,
    before_fill: impl FnOnce(),
) -> Result<TopicListing, DomainError> {
    let (ticket, catalog, mine) = Lookup::new(cache, user_id).complete(conn, cache, before_fill)?;
    Ok(merge(ticket, &catalog, &mine, &PageRequest::default()))
}

/// What the cache held for a user, looked up after taking the ticket.
struct Lookup {
    ticket: Ticket,
    catalog: Option<Catalog>,
    mine: Option<UserTopics>,
}

impl Lookup {
    fn new(cache: &TopicCache, user_id: UserId) -> Self {
        // The ticket comes first: whatever is read after it is at least as new as it.
        let ticket = cache.ticket(user_id);
        Lookup {
            ticket,
            catalog: cache.catalog(),
            mine: cache.user_topics(user_id),
        }
    }

    /// Reads what the cache lacked and fills it (if still fresh).
    fn complete(
        self,
        conn: &mut Conn,
        cache: &TopicCache,
        before_fill: impl FnOnce(),
    ) -> Result<(Ticket, Catalog, UserTopics), DomainError> {
        let Lookup {
            ticket,
            catalog: cached_catalog,
            mine: cached_mine,
        } = self;
        if let (Some(catalog), Some(mine)) = (&cached_catalog, &cached_mine) {
            return Ok((ticket, catalog.clone(), mine.clone()));
        }
        let (catalog, mine) = db::snapshot_transaction(conn, |conn| {
            let catalog: Catalog = match &cached_catalog {
                Some(catalog) => catalog.clone(),
                None => Arc::new(load_catalog(conn)?),
            };
            let mine: UserTopics = match &cached_mine {
                Some(mine) => mine.clone(),
                None => Arc::new(
                    topic_ids_of(conn, ticket.user_id())?
                        .into_iter()
                        .collect::<BTreeSet<TopicId>>(),
                ),
            };
            Ok::<_, diesel::result::Error>((catalog, mine))
        })?;
        before_fill();
        if cached_catalog.is_none() {
            cache.fill_catalog(&ticket, catalog.clone());
        }
        if cached_mine.is_none() {
            cache.fill_user_topics(&ticket, mine.clone());
        }
        Ok((ticket, catalog, mine))
    }
}

/// The topics a page of `request` shows: what an open page's stream keeps of the counts it
/// hears. From the cached catalog, or read when none is cached (shared with the requests
/// missing it now, at `user_id`'s ticket): with its topics unknown a stream would be told
/// every count. Which topics a page shows changes only with changes that say nothing of what
/// moved (create, rename, delete), after which the page refetches and its stream asks again.
pub async fn topics_on_page(
    services: &Services,
    user_id: UserId,
    request: &PageRequest,
) -> Result<Vec<TopicId>, DomainError> {
    if let Some(catalog) = services.cache.catalog() {
        return Ok(ids_on_page(&catalog, request));
    }
    let ticket = services.cache.ticket(user_id);
    let catalog = services
        .catalog_reads
        .read(&services.db, &services.cache, &ticket)
        .await?;
    Ok(ids_on_page(&catalog, request))
}

/// The ids of the topics a page of `request` shows in `catalog`, sorted.
fn ids_on_page(catalog: &Catalog, request: &PageRequest) -> Vec<TopicId> {
    let mut ids: Vec<TopicId> = Slice::of(catalog, request)
        .topics
        .iter()
        .map(|topic| topic.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// One page of the catalog: filtered and sliced first, so a page of a large catalog costs its
/// own rows only.
struct Slice<'a> {
    topics: Vec<&'a CatalogEntry>,
    page: usize,
    pages: usize,
    total: usize,
}

impl<'a> Slice<'a> {
    fn of(catalog: &'a Catalog, request: &PageRequest) -> Self {
        let needle = request.query.trim().to_lowercase();
        let matching: Vec<&CatalogEntry> = if needle.is_empty() {
            catalog.iter().collect()
        } else {
            catalog
                .iter()
                .filter(|topic| topic.name.to_lowercase().contains(&needle))
                .collect()
        };
        let total = matching.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = request.page.clamp(1, pages);
        let topics = matching
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        Slice {
            topics,
            page,
            pages,
            total,
        }
    }
}

/// One page of the user's view.
fn merge(
    ticket: Ticket,
    catalog: &Catalog,
    mine: &UserTopics,
    request: &PageRequest,
) -> TopicListing {
    let slice = Slice::of(catalog, request);
    TopicListing {
        version: ticket.into(),
        topics: slice
            .topics
            .into_iter()
            .map(|topic| TopicView {
                id: topic.id,
                name: topic.name.to_string(),
                subscribers: topic.count.subscribers,
                count_version: topic.count.version,
                subscribed: mine.contains(&topic.id),
            })
            .collect(),
        page: slice.page,
        pages: slice.pages,
        total: slice.total,
        query: request.query.trim().to_owned(),
    }
}
