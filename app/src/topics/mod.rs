//! Topics: the list page, its server functions, and what they exchange.
//!
//! Every action has two front doors that make the same domain call: a plain form POST to the
//! spec's route (works without JavaScript; handled in the server crate) and a server function
//! (used by the hydrated page, which then refetches the list when the version moved).

use leptos::html;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::feedback::{use_page_feedback, FormError, FormFeedback};
use crate::subscriptions::{Subscribe, Unsubscribe, UnsubscribeAll};
use crate::users::use_current_user;

#[cfg(feature = "hydrate")]
mod follow;
#[cfg(feature = "ssr")]
pub mod ssr;

/// One row of the topic list, from the viewer's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: i64,
    pub name: String,
    pub subscribers: i64,
    pub subscribed: bool,
}

/// Moves whenever a committed change alters what a user sees: `shared` for changes every
/// user sees (topics, names, counts), `user` for the user's own subscriptions. Both only grow,
/// across restarts too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewVersion {
    pub shared: u64,
    pub user: u64,
}

/// Topics per page: a list of ten thousand rows is not a page.
pub const PAGE_SIZE: usize = 100;

/// Which part of the list to show: a 1-based page of the topics whose names contain `query`
/// (ignoring letter case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub page: usize,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicListing {
    pub version: ViewVersion,
    /// This page's topics.
    pub topics: Vec<TopicView>,
    /// The page shown (clamped into range) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// Topics matching the query, on all pages.
    pub total: usize,
    pub query: String,
}

#[server(endpoint = "list_topics")]
pub async fn list_topics(request: PageRequest) -> Result<TopicListing, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::list(&state, user.id, request).await
        }
        .await,
    )
}

#[server(endpoint = "create_topic")]
pub async fn create_topic(name: String) -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::create(&state, &user, &name).await
        }
        .await,
    )
}

#[server(endpoint = "rename_topic")]
pub async fn rename_topic(topic_id: i64, name: String) -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::rename(&state, &user, topic_id, &name).await
        }
        .await,
    )
}

#[server(endpoint = "delete_topic")]
pub async fn delete_topic(topic_id: i64) -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::delete(&state, &user, topic_id).await
        }
        .await,
    )
}

/// The page's actions and where their errors go.
#[derive(Clone, Copy)]
struct Actions {
    subscribe: ServerAction<Subscribe>,
    unsubscribe: ServerAction<Unsubscribe>,
    rename: ServerAction<RenameTopic>,
    delete: ServerAction<DeleteTopic>,
    /// The topic whose row last dispatched an action, and that action's error.
    row_error: RwSignal<Option<(i64, String)>>,
    last_row: RwSignal<i64>,
    is_staff: bool,
}

#[component]
pub fn TopicsPage() -> impl IntoView {
    let is_staff = use_current_user().is_some_and(|u| u.is_staff);
    let feedback = use_page_feedback();
    let refresh = RwSignal::new(0u64);
    let query = use_query_map();
    let request = move || {
        query.with(|q| PageRequest {
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
            query: q.get("q").unwrap_or_default(),
        })
    };
    let listing = Resource::new(
        move || (refresh.get(), request()),
        |(_, request)| list_topics(request),
    );

    let create = ServerAction::<CreateTopic>::new();
    let unsubscribe_all = ServerAction::<UnsubscribeAll>::new();
    let actions = Actions {
        subscribe: ServerAction::new(),
        unsubscribe: ServerAction::new(),
        rename: ServerAction::new(),
        delete: ServerAction::new(),
        row_error: RwSignal::new(None),
        last_row: RwSignal::new(0),
        is_staff,
    };

    // Refetch when an action reports a version other than the one on screen; show a row
    // action's error in that row.
    let on_result =
        move |result: Option<Result<ViewVersion, AppError>>, row: Option<i64>| match result {
            Some(Ok(version)) => {
                if let Some(row) = row {
                    actions.row_error.update(|e| {
                        if e.as_ref().is_some_and(|(id, _)| *id == row) {
                            *e = None;
                        }
                    });
                }
                let shown = listing
                    .get_untracked()
                    .and_then(|l| l.ok())
                    .map(|l| l.version);
                if shown != Some(version) {
                    refresh.update(|n| *n += 1);
                }
            }
            Some(Err(err)) => {
                if let Some(row) = row {
                    actions.row_error.set(Some((row, err.to_string())));
                }
                refresh.update(|n| *n += 1);
            }
            None => {}
        };
    Effect::new(move |_| on_result(create.value().get(), None));
    Effect::new(move |_| on_result(unsubscribe_all.value().get(), None));
    Effect::new(move |_| {
        on_result(
            actions.subscribe.value().get(),
            Some(actions.last_row.get_untracked()),
        )
    });
    Effect::new(move |_| {
        on_result(
            actions.unsubscribe.value().get(),
            Some(actions.last_row.get_untracked()),
        )
    });
    Effect::new(move |_| {
        on_result(
            actions.rename.value().get(),
            Some(actions.last_row.get_untracked()),
        )
    });
    Effect::new(move |_| {
        on_result(
            actions.delete.value().get(),
            Some(actions.last_row.get_untracked()),
        )
    });

    // Other users' changes arrive as pushed versions; refetch when one is newer than what
    // is on screen. (Effects run only in the browser.)
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        follow::follow_versions(move |pushed| {
            let shown = listing
                .get_untracked()
                .and_then(|l| l.ok())
                .map(|l| l.version);
            let newer = shown.is_none_or(|s| pushed.shared > s.shared || pushed.user > s.user);
            if newer {
                refresh.update(|n| *n += 1);
            }
        });
    });

    if let Some(FormFeedback { form, error, .. }) = feedback.clone() {
        if let Some(row) = form
            .rsplit_once('-')
            .and_then(|(_, id)| id.parse::<i64>().ok())
        {
            actions.row_error.set(Some((row, error)));
        }
    }

    view! {
        <section class="card">
            <div class="page-head">
                <h1>"Topics"</h1>
                <a href="/topics/activity/">"Activity"</a>
            </div>
            <CreateForm create feedback=feedback.clone()/>
            <Form method="GET" action="/topics/" attr:class="filter" attr:data-form="filter">
                <input
                    type="search"
                    name="q"
                    aria-label="Filter topics by name"
                    placeholder="Filter by name"
                    prop:value=move || request().query
                />
                <button type="submit" class="secondary">"Filter"</button>
            </Form>
            <Transition fallback=|| view! { <p>"Loading topics…"</p> }>
                {move || Suspend::new(async move {
                    match listing.await {
                        Ok(listing) => {
                            let pager = pager(&listing);
                            view! { <TopicList topics=listing.topics actions/> {pager} }.into_any()
                        }
                        Err(err) => {
                            view! { <p class="form-error" role="alert">{err.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Transition>
            <UnsubscribeAllForm action=unsubscribe_all feedback/>
        </section>
    }
}

#[component]
fn CreateForm(create: ServerAction<CreateTopic>, feedback: Option<FormFeedback>) -> impl IntoView {
    let input: NodeRef<html::Input> = NodeRef::new();
    let ssr_error = feedback
        .as_ref()
        .filter(|f| f.form == "create")
        .map(|f| f.error.clone());
    let typed = feedback
        .filter(|f| f.form == "create")
        .map(|f| f.value("name"))
        .unwrap_or_default();
    let client_error = Signal::derive(move || {
        create
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    });
    let error = Signal::derive(move || client_error.get().or_else(|| ssr_error.clone()));
    Effect::new(move |_| {
        if let (Some(Ok(_)), Some(field)) = (create.value().get(), input.get_untracked()) {
            field.set_value("");
        }
    });
    view! {
        <form
            method="post"
            action="/topics/create/"
            class="create"
            data-form="create"
            on:submit=move |ev| {
                ev.prevent_default();
                let name = input.get().map(|field| field.value()).unwrap_or_default();
                create.dispatch(CreateTopic { name });
            }
        >
            <FormError message=error/>
            <label>
                "New topic"
                <input node_ref=input name="name" maxlength="100" required value=typed placeholder="e.g. Rust"/>
            </label>
            <button type="submit">"Create"</button>
        </form>
    }
}

#[component]
fn UnsubscribeAllForm(
    action: ServerAction<UnsubscribeAll>,
    feedback: Option<FormFeedback>,
) -> impl IntoView {
    let ssr_error = feedback
        .filter(|f| f.form == "unsubscribe-all")
        .map(|f| f.error);
    let client_error = Signal::derive(move || {
        action
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    });
    let error = Signal::derive(move || client_error.get().or_else(|| ssr_error.clone()));
    view! {
        <form
            method="post"
            action="/topics/unsubscribe-all/"
            class="unsubscribe-all"
            data-form="unsubscribe-all"
            on:submit=move |ev| {
                ev.prevent_default();
                action.dispatch(UnsubscribeAll {});
            }
        >
            <FormError message=error/>
            <button type="submit" class="secondary">"Unsubscribe from all"</button>
        </form>
    }
}

#[component]
fn TopicList(topics: Vec<TopicView>, actions: Actions) -> impl IntoView {
    if topics.is_empty() {
        return view! { <p class="empty">"No topics yet. Create the first one above."</p> }
            .into_any();
    }
    view! {
        <ul class="topics">
            {topics
                .into_iter()
                .map(|topic| view! { <TopicRow topic actions/> })
                .collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
fn TopicRow(topic: TopicView, actions: Actions) -> impl IntoView {
    let id = topic.id;
    let error = Signal::derive(move || {
        actions
            .row_error
            .get()
            .filter(|(row, _)| *row == id)
            .map(|(_, message)| message)
    });
    let rename_input: NodeRef<html::Input> = NodeRef::new();
    let toggle = if topic.subscribed {
        view! {
            <form
                method="post"
                action=format!("/topics/unsubscribe/{id}/")
                class="inline"
                data-form="unsubscribe"
                on:submit=move |ev| {
                    ev.prevent_default();
                    actions.last_row.set(id);
                    actions.unsubscribe.dispatch(Unsubscribe { topic_id: id });
                }
            >
                <button type="submit" class="secondary">"Unsubscribe"</button>
            </form>
        }
        .into_any()
    } else {
        view! {
            <form
                method="post"
                action=format!("/topics/subscribe/{id}/")
                class="inline"
                data-form="subscribe"
                on:submit=move |ev| {
                    ev.prevent_default();
                    actions.last_row.set(id);
                    actions.subscribe.dispatch(Subscribe { topic_id: id });
                }
            >
                <button type="submit">"Subscribe"</button>
            </form>
        }
        .into_any()
    };
    let staff_forms = actions.is_staff.then(|| {
        view! {
            <form
                method="post"
                action=format!("/topics/rename/{id}/")
                class="inline rename"
                data-form="rename"
                on:submit=move |ev| {
                    ev.prevent_default();
                    actions.last_row.set(id);
                    let name = rename_input.get().map(|field| field.value()).unwrap_or_default();
                    actions.rename.dispatch(RenameTopic { topic_id: id, name });
                }
            >
                <input
                    node_ref=rename_input
                    name="name"
                    maxlength="100"
                    required
                    value=topic.name.clone()
                    aria-label=format!("New name for {}", topic.name)
                />
                <button type="submit" class="secondary">"Rename"</button>
            </form>
            <form
                method="post"
                action=format!("/topics/delete/{id}/")
                class="inline"
                data-form="delete"
                on:submit=move |ev| {
                    ev.prevent_default();
                    actions.last_row.set(id);
                    actions.delete.dispatch(DeleteTopic { topic_id: id });
                }
            >
                <button type="submit" class="danger">"Delete"</button>
            </form>
        }
    });
    view! {
        <li
            class="topic"
            data-topic-id=id
            data-topic-name=topic.name.clone()
            data-subscribers=topic.subscribers
            data-subscribed=topic.subscribed.to_string()
        >
            <div class="topic-main">
                <span class="topic-name">{topic.name.clone()}</span>
                <span class="topic-count">{subscriber_label(topic.subscribers)}</span>
                {topic.subscribed.then(|| view! { <span class="badge">"subscribed"</span> })}
            </div>
            <div class="topic-actions">{toggle} {staff_forms}</div>
            <FormError message=error/>
        </li>
    }
}

/// Links to the neighbouring pages, keeping the filter.
fn pager(listing: &TopicListing) -> impl IntoView {
    let link = |page: usize| {
        let mut href = format!("/topics/?page={page}");
        if !listing.query.is_empty() {
            href.push_str("&q=");
            href.push_str(&encode_query(&listing.query));
        }
        href
    };
    let (page, pages) = (listing.page, listing.pages);
    (pages > 1).then(|| {
        view! {
            <nav class="pager" data-pages=pages data-page=page>
                {(page > 1).then(|| view! { <a rel="prev" href=link(page - 1)>"← Previous"</a> })}
                <span>{format!("Page {page} of {pages}")}</span>
                {(page < pages).then(|| view! { <a rel="next" href=link(page + 1)>"Next →"</a> })}
            </nav>
        }
    })
}

fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn subscriber_label(count: i64) -> String {
    match count {
        1 => "1 subscriber".to_owned(),
        n => format!("{n} subscribers"),
    }
}
