//! Rendered topic pages, kept per user and per version.
//!
//! Rendering a page of a hundred topics costs far more than serving it. A page is stored under
//! the version of what its user sees, read *before* rendering: whatever the render read is at
//! least that new. Any committed change the user would see moves the version, so a stored page
//! is simply never asked for again — nothing to invalidate, nothing stale to serve.
//!
//! A page not stored for the current version is assembled from the user's last rendered page
//! for the same URL when only the list moved (`crate::page_templates`), and rendered otherwise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mini_moka::sync::Cache;

use app::users::auth::AuthSession;
use app::web::AppState;
use axum::http::Uri;
use domain::ids::UserId;
use domain::live::ViewVersion;
use domain::topics::PageRequest;
use domain::users::User;
use leptos_router::location::RequestUrl;

use crate::page_templates::Template;

/// Only the topic list is hot enough to be worth it.
const CACHED_PATH: &str = "/topics/";
/// Total bytes of stored pages: keeps the server small (a page is some tens of KiB).
const BUDGET_BYTES: u64 = 16 * 1024 * 1024;
/// A page larger than this is not stored.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// What a render may produce at most (far beyond any page of ours).
const MAX_RENDER_BYTES: usize = 64 * 1024 * 1024;
const TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Total bytes of templates: a template is the page without its list, a few KiB.
const TEMPLATE_BUDGET_BYTES: u64 = 8 * 1024 * 1024;

/// What a stored page depends on: the user, the version of what they see, and the request
/// its URL makes, read exactly as the page reads it (so junk in the query string cannot fill
/// the store with copies of one page and evict other users' pages).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PageKey {
    user_id: UserId,
    request: PageRequest,
    version: ViewVersion,
}

impl PageKey {
    /// `None` for a URL the router would not parse (the render will say what it makes of it).
    fn new(user_id: UserId, uri: &Uri, version: ViewVersion) -> Option<Self> {
        let request = match uri.query() {
            // The common case needs no URL parsing: no query is page 1, unfiltered.
            None => app::topics::page_request(&Default::default()),
            Some(_) => {
                let url = RequestUrl::new(&uri.to_string()).parse().ok()?;
                app::topics::page_request(url.search_params())
            }
        };
        Some(PageKey {
            user_id,
            request,
            version,
        })
    }
}

struct Page {
    content_type: HeaderValue,
    /// The page's Content-Security-Policy names the nonce of its inline scripts: a stored
    /// page is served with its own.
    security_policy: Option<HeaderValue>,
    body: Bytes,
}

/// The stored pages and their counters, behind one `Arc`: the middleware's state is cloned
/// for every request.
#[derive(Clone, Default)]
pub struct PageCache(Arc<Stored>);

pub struct Stored {
    pages: Cache<PageKey, Arc<Page>>,
    /// Per user and URL, the last rendered page cut around its list. A template carries its
    /// page's Content-Security-Policy nonce, as a stored page does: it lives no longer.
    templates: Cache<(UserId, PageRequest), Arc<Cut>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Misses answered with a page assembled from a template rather than rendered.
    pub assembled: AtomicU64,
}

impl Default for Stored {
    fn default() -> Self {
        Stored {
            pages: Cache::builder()
                .max_capacity(BUDGET_BYTES)
                .weigher(|_, page: &Arc<Page>| u32::try_from(page.body.len()).unwrap_or(u32::MAX))
                .time_to_live(TTL)
                .build(),
            templates: Cache::builder()
                .max_capacity(TEMPLATE_BUDGET_BYTES)
                .weigher(|_, cut: &Arc<Cut>| {
                    u32::try_from(cut.template.bytes()).unwrap_or(u32::MAX)
                })
                .time_to_live(TTL)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            assembled: AtomicU64::new(0),
        }
    }
}

impl std::ops::Deref for PageCache {
    type Target = Stored;

    fn deref(&self) -> &Stored {
        &self.0
    }
}

pub async fn serve_stored_pages(
    State((state, cache)): State<(AppState, PageCache)>,
    request: Request,
    next: Next,
) -> Response {
    let user_id = signed_in(&request).map(|user| user.id);
    // A disabled topic cache (TOPIC_CACHE_TTL_SECONDS=0) means: measure real renders.
    let (Some(user_id), true) = (
        user_id,
        state.services.cache.is_enabled()
            && request.method() == Method::GET
            && request.uri().path() == CACHED_PATH,
    ) else {
        return next.run(request).await;
    };
    // Another instance may have committed a change this one's versions do not know of yet;
    // when the database cannot say, the render below reports it.
    if state.services.catch_up(user_id).await.is_err() {
        return next.run(request).await;
    }
    let Some(key) = PageKey::new(user_id, request.uri(), state.services.view_version(user_id))
    else {
        return next.run(request).await;
    };
    if let Some(page) = cache.pages.get(&key) {
        cache.hits.fetch_add(1, Ordering::Relaxed);
        return page.response();
    }
    cache.misses.fetch_add(1, Ordering::Relaxed);
    // Who the page shows (name, staff or not), taken only now: a stored page needs none of it.
    let Some(user) = signed_in(&request).cloned() else {
        return next.run(request).await;
    };

    // The listing the page will show, read as the render reads it (from the topic cache, as
    // a rule): what a template is filled with, or what the render's page is cut around.
    let shape = (user_id, key.request.clone());
    let listing = domain::topics::list(&state.services, user_id, key.request.clone())
        .await
        .ok();
    if let (Some(listing), Some(cut)) = (&listing, cache.templates.get(&shape)) {
        if let Some(body) = cut.template.assemble(listing, &user) {
            cache.assembled.fetch_add(1, Ordering::Relaxed);
            let page = Page {
                content_type: cut.template.content_type.clone(),
                security_policy: cut.template.security_policy.clone(),
                body,
            };
            let response = page.response();
            if cut.assembled_again(&key.version) {
                cache.pages.insert(key, Arc::new(page));
            }
            return response;
        }
    }

    let response = next.run(request).await;
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let security_policy = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .cloned();
    let html = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if response.status() != StatusCode::OK || !html {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, MAX_RENDER_BYTES).await {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!(error = %err, "could not buffer a topic page");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response();
        }
    };
    if let Some(content_type) = content_type.filter(|_| body.len() <= MAX_PAGE_BYTES) {
        let template = listing.and_then(|listing| {
            Template::cut(
                &body,
                &listing,
                &user,
                content_type.clone(),
                security_policy.clone(),
            )
        });
        match template {
            Some(template) => cache.templates.insert(
                shape,
                Arc::new(Cut {
                    template,
                    last_assembled: Mutex::new(None),
                }),
            ),
            None => cache.templates.invalidate(&shape),
        }
        cache.pages.insert(
            key,
            Arc::new(Page {
                content_type,
                security_policy,
                body: body.clone(),
            }),
        );
    }
    Response::from_parts(parts, Body::from(body))
}

/// A template, with the version of the page last assembled from it.
struct Cut {
    template: Template,
    last_assembled: Mutex<Option<ViewVersion>>,
}

impl Cut {
    /// Whether the page for `version` was assembled just before (and notes it was now). Only
    /// then is an assembled page stored: while versions move on every request, as they do
    /// under a stream of writes, no stored page would be asked for again, and storing each
    /// costs more than assembling it.
    fn assembled_again(&self, version: &ViewVersion) -> bool {
        let mut last = self
            .last_assembled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.replace(*version).as_ref() == Some(version)
    }
}

fn signed_in(request: &Request) -> Option<&User> {
    request
        .extensions()
        .get::<AuthSession>()
        .and_then(|session| session.user.as_deref())
}

impl Page {
    fn response(&self) -> Response {
        let mut response = (
            [(header::CONTENT_TYPE, self.content_type.clone())],
            self.body.clone(),
        )
            .into_response();
        if let Some(policy) = &self.security_policy {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy.clone());
        }
        response
    }
}
