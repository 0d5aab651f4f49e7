//! The topic list page: the create form, the filter, the list with its pager, and "unsubscribe
//! from all". The page follows live versions and refetches its list when what it shows is
//! older than what an action or the server reports.

use std::collections::HashMap;

use leptos::either::Either;
use leptos::html;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::api::{list_topics, CreateTopic, TopicListing, TopicView};
use super::row::Rows;
use crate::error::AppError;
use crate::feedback::{described_by, use_page_feedback, FormError, FormFeedback, FormId};
use crate::live::{Count, ViewVersion};
use crate::subscriptions::UnsubscribeAll;
use crate::users::use_current_user;
use domain::ids::TopicId;

#[component]
pub fn TopicsPage() -> impl IntoView {
    let is_staff = use_current_user().is_some_and(|u| u.is_staff);
    let feedback = use_page_feedback();
    let refresh = RwSignal::new(0u64);
    let query = use_query_map();
    let request = move || query.with(super::api::page_request);
    let listing = Resource::new(
        move || (refresh.get(), request()),
        |(_, request)| list_topics(request),
    );
    // The version on screen, kept by an effect: reading the resource outside a <Transition/>
    // (in the callbacks below) would warn about hydration mismatches.
    let shown = RwSignal::new(None::<ViewVersion>);
    // Counts that move while the page is open are read out by screen readers, politely and
    // without moving focus: the list itself is rebuilt on every refetch, which a live region
    // on it would read out whole.
    let announcement = RwSignal::new(String::new());
    let counts_shown = StoredValue::new(None::<Vec<(TopicId, String, i64)>>);
    // The newest version the stream pushed: a list that arrives older than it was fetched
    // before a change it missed (a patch that came meanwhile went to the list it replaced),
    // and is fetched once more.
    let pushed_latest = StoredValue::new(None::<ViewVersion>);
    let refetched_for = StoredValue::new(None::<ViewVersion>);
    // The newest count pushed per topic: a list read before a count moved, arriving after the
    // patch that told it (which went to the list it replaced), takes it from here. Counts
    // carry their own versions, so an older list row is all that is replaced.
    let pushed_counts = StoredValue::new(HashMap::<TopicId, Count>::new());
    Effect::new(move |_| {
        if let Some(Ok(fetched)) = listing.get() {
            let newer: Vec<(TopicId, Count)> = pushed_counts.with_value(|pushed| {
                fetched
                    .topics
                    .iter()
                    .filter_map(|row| {
                        let count = *pushed.get(&row.id)?;
                        count.is_newer_than(&row.count()).then_some((row.id, count))
                    })
                    .collect()
            });
            if !newer.is_empty() {
                // This effect runs again with the list patched.
                listing.update(|listing| {
                    if let Some(Ok(listing)) = listing {
                        listing.take_counts(&newer);
                    }
                });
                return;
            }
            let listing = fetched;
            let pushed = pushed_latest.get_value();
            if let Some(pushed) = pushed.filter(|pushed| pushed.is_newer_than(&listing.version)) {
                if refetched_for.get_value() != Some(pushed) {
                    refetched_for.set_value(Some(pushed));
                    refresh.update(|n| *n += 1);
                }
            }
            shown.set(Some(listing.version));
            let counts = counts_of(&listing);
            if let Some(before) = counts_shown.get_value() {
                let moved = count_changes(&before, &counts);
                if !moved.is_empty() {
                    announcement.set(moved);
                }
            }
            counts_shown.set_value(Some(counts));
        }
    });
    let shown_version = move || shown.get_untracked();

    // Refetch when an action reports a version other than the one on screen, or fails (what
    // it acted on may have changed under it).
    let on_result = Callback::new(move |result: Result<ViewVersion, AppError>| {
        if result.map_or(true, |version| shown_version() != Some(version)) {
            refresh.update(|n| *n += 1);
        }
    });
    let rows = Rows::new(feedback.as_ref(), on_result, is_staff);
    let create = ServerAction::<CreateTopic>::new();
    let unsubscribe_all = ServerAction::<UnsubscribeAll>::new();
    Effect::new(move |_| {
        if let Some(result) = create.value().get() {
            on_result.run(result);
        }
    });
    Effect::new(move |_| {
        if let Some(result) = unsubscribe_all.value().get() {
            on_result.run(result);
        }
    });

    // Other users' changes arrive pushed: counts and flags as a patch of the rows on screen
    // (counts wherever newer than the row's, flags when they lead from the user's version
    // shown), otherwise as a version, and the page refetches when that is newer than what it
    // shows. The stream follows the page's query, so moving
    // to another page follows that one instead. (Effects run only in the browser.)
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use crate::live::follow::{follow, Pushed};
        follow(&request(), move |pushed| {
            let shown = shown_version();
            match pushed {
                Pushed::Patch(patch) => {
                    pushed_counts.update_value(|pushed| {
                        for &(topic, count) in &patch.counts {
                            let held = pushed.entry(topic).or_insert(count);
                            if count.is_newer_than(held) {
                                *held = count;
                            }
                        }
                    });
                    let reached = ViewVersion {
                        shared: 0,
                        user: patch.to,
                    };
                    pushed_latest.update_value(|latest| {
                        *latest = Some(latest.map_or(reached, |latest| latest.max_with(&reached)));
                    });
                    // Counts apply to any list shown; the flags only when they lead from the
                    // user's version shown, otherwise the page refetches.
                    let applied = listing
                        .try_update(|listing| match listing {
                            Some(Ok(listing)) => listing.apply(&patch),
                            _ => true,
                        })
                        .unwrap_or(true);
                    if !applied && shown.is_some_and(|shown| patch.to > shown.user) {
                        refresh.update(|n| *n += 1);
                    }
                }
                Pushed::Version(version) => {
                    pushed_latest.update_value(|latest| {
                        *latest = Some(latest.map_or(version, |latest| latest.max_with(&version)));
                    });
                    if shown.is_none_or(|shown| version.is_newer_than(&shown)) {
                        refresh.update(|n| *n += 1);
                    }
                }
            }
        });
    });

    let list_feedback = feedback.clone();
    view! {
        <section class="card">
            <div class="page-head">
                <h1>"Topics"</h1>
                <a href="/topics/activity/">"Activity"</a>
            </div>
            <CreateForm create feedback=feedback.clone()/>
            // A plain GET form: the filtered page is an ordinary page load (the router's
            // `<Form>` would keep it in-page, for 16 KB more of gzipped wasm).
            <form method="get" action="/topics/" class="filter" data-form="filter">
                <input
                    type="search"
                    name="q"
                    aria-label="Filter topics by name"
                    placeholder="Filter by name"
                    prop:value=move || request().query
                />
                <button type="submit" class="secondary">"Filter"</button>
            </form>
            <Transition fallback=|| view! { <p>"Loading topics…"</p> }>
                {move || {
                    let feedback = list_feedback.clone();
                    Suspend::new(async move {
                        match listing.await {
                            Ok(listing) => {
                                let unplaced = unplaced_error(feedback, &listing);
                                let pager = pager(&listing);
                                Either::Left(view! {
                                    <FormError message=move || unplaced.clone()/>
                                    <TopicList topics=listing.topics rows/>
                                    {pager}
                                })
                            }
                            Err(err) => Either::Right(
                                view! { <p class="form-error" role="alert">{err.to_string()}</p> },
                            ),
                        }
                    })
                }}
            </Transition>
            <UnsubscribeAllForm action=unsubscribe_all feedback/>
            <p class="visually-hidden" role="status" aria-live="polite" data-announcement="">
                {move || announcement.get()}
            </p>
        </section>
    }
}

fn counts_of(listing: &TopicListing) -> Vec<(TopicId, String, i64)> {
    listing
        .topics
        .iter()
        .map(|topic| (topic.id, topic.name.clone(), topic.subscribers))
        .collect()
}

/// What to read out when the counts on screen move: "Python: 3 subscribers." for every topic
/// shown before and after whose count changed (topics that appear or go are seen, not read).
fn count_changes(before: &[(TopicId, String, i64)], after: &[(TopicId, String, i64)]) -> String {
    after
        .iter()
        .filter(|(id, _, count)| before.iter().any(|(was, _, old)| was == id && old != count))
        .map(|(_, name, count)| format!("{name}: {}.", super::row::subscriber_label(*count)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A failed form's message that has no row to stand beside: the list as a whole failed, or
/// the topic is not (or no longer) on this page.
fn unplaced_error(feedback: Option<FormFeedback>, listing: &TopicListing) -> Option<String> {
    let feedback = feedback?;
    match feedback.form {
        FormId::TopicList => Some(feedback.error),
        FormId::Row { topic, .. } if !listing.topics.iter().any(|t| t.id == topic) => {
            Some(feedback.error)
        }
        _ => None,
    }
}

/// The message for `form` from the server's answer to a plain POST, until the form's own
/// action (with JavaScript) reports a result.
fn form_error(
    form: FormId,
    feedback: Option<&FormFeedback>,
    result: impl Fn() -> Option<Result<ViewVersion, AppError>> + Send + Sync + 'static,
) -> Signal<Option<String>> {
    let ssr_error = feedback.filter(|f| f.form == form).map(|f| f.error.clone());
    Signal::derive(move || {
        result()
            .and_then(Result::err)
            .map(|e| e.to_string())
            .or_else(|| ssr_error.clone())
    })
}

/// `aria-busy` of a button whose action is on its way (absent otherwise).
fn busy(pending: Memo<bool>) -> impl Fn() -> Option<&'static str> + Send + Sync + 'static {
    move || pending.get().then_some("true")
}

#[component]
fn CreateForm(create: ServerAction<CreateTopic>, feedback: Option<FormFeedback>) -> impl IntoView {
    let input: NodeRef<html::Input> = NodeRef::new();
    let error = form_error(FormId::CreateTopic, feedback.as_ref(), move || {
        create.value().get()
    });
    let typed = feedback
        .filter(|f| f.form == FormId::CreateTopic)
        .map(|f| f.value("name"))
        .unwrap_or_default();
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
                if create.pending().get_untracked() {
                    return;
                }
                let name = input.get().map(|field| field.value()).unwrap_or_default();
                create.dispatch(CreateTopic { name });
            }
        >
            <FormError id="create-error" message=move || error.get()/>
            <label>
                "New topic"
                <input
                    node_ref=input
                    name="name"
                    maxlength="100"
                    required
                    value=typed
                    placeholder="e.g. Rust"
                    aria-describedby=move || error.with(|e| described_by(e.as_ref(), "create-error").0)
                    aria-invalid=move || error.with(|e| described_by(e.as_ref(), "create-error").1)
                />
            </label>
            <button type="submit" disabled=move || create.pending().get() aria-busy=busy(create.pending())>
                "Create"
            </button>
        </form>
    }
}

#[component]
fn UnsubscribeAllForm(
    action: ServerAction<UnsubscribeAll>,
    feedback: Option<FormFeedback>,
) -> impl IntoView {
    let error = form_error(FormId::UnsubscribeAll, feedback.as_ref(), move || {
        action.value().get()
    });
    view! {
        <form
            method="post"
            action="/topics/unsubscribe-all/"
            class="unsubscribe-all"
            data-form="unsubscribe-all"
            on:submit=move |ev| {
                ev.prevent_default();
                if !action.pending().get_untracked() {
                    action.dispatch(UnsubscribeAll {});
                }
            }
        >
            <FormError message=move || error.get()/>
            <button
                type="submit"
                class="secondary"
                disabled=move || action.pending().get()
                aria-busy=busy(action.pending())
            >
                "Unsubscribe from all"
            </button>
        </form>
    }
}

#[component]
fn TopicList(topics: Vec<TopicView>, rows: Rows) -> impl IntoView {
    if topics.is_empty() {
        return Either::Left(
            view! { <p class="empty">"No topics yet. Create the first one above."</p> },
        );
    }
    Either::Right(rows_list(topics, rows))
}

/// In the browser the rows are built, and hydrated, one by one.
#[cfg(not(feature = "ssr"))]
fn rows_list(topics: Vec<TopicView>, rows: Rows) -> impl IntoView {
    use super::row::TopicRow;
    view! {
        <ul class="topics">
            {topics
                .into_iter()
                .map(|topic| view! { <TopicRow topic rows/> })
                .collect_view()}
        </ul>
    }
}

/// On the server the list is assembled from each row's HTML, rendered once per row state
/// (`super::row::rendered_rows`): byte for byte what rendering the rows here would give, so
/// the browser hydrates it as it would those.
#[cfg(feature = "ssr")]
fn rows_list(topics: Vec<TopicView>, rows: Rows) -> impl IntoView {
    let html = super::row::rendered_rows(&topics, rows);
    view! { <ul class="topics" inner_html=html></ul> }
}

/// Links to the neighbouring pages, keeping the filter.
fn pager(listing: &TopicListing) -> impl IntoView {
    let link = |page: usize| {
        let mut href = format!("/topics/?page={page}");
        if !listing.query.is_empty() {
            href.push_str("&q=");
            href.push_str(&crate::url::encode_query_value(&listing.query));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The browser hydrates the assembled list as if the rows had been rendered in place: the
    /// bytes must be the same, escaping included, for members and staff, from a first render
    /// and from kept rows.
    #[cfg(feature = "ssr")]
    #[test]
    fn rows_assembled_from_kept_html_are_the_rows_rendered_in_place() {
        use super::super::row::TopicRow;
        let topic = |id, name: &str, subscribers, subscribed| TopicView {
            id: TopicId(id),
            name: name.to_owned(),
            subscribers,
            count_version: 1,
            subscribed,
        };
        let topics = vec![
            topic(1, "Django", 2, true),
            topic(2, "<b>Fish & \"chips\"</b>", 1, false),
            topic(3, "Rust", 0, false),
        ];
        let rendered_in_place = |rows: Rows| {
            view! {
                <ul class="topics">
                    {topics
                        .clone()
                        .into_iter()
                        .map(|topic| view! { <TopicRow topic rows/> })
                        .collect_view()}
                </ul>
            }
            .to_html()
        };
        let owner = Owner::new();
        owner.with(|| {
            for is_staff in [false, true] {
                let rows = Rows::new(None, Callback::new(|_| {}), is_staff);
                let in_place = rendered_in_place(rows);
                assert!(
                    in_place.contains("Fish &amp; &quot;chips&quot;"),
                    "{in_place}"
                );
                for render in ["first", "kept"] {
                    let assembled = rows_list(topics.clone(), rows).to_html();
                    assert_eq!(assembled, in_place, "{render} render, staff: {is_staff}");
                }

                // A row whose plain POST failed shows its message: never the kept HTML of
                // the same row without it.
                let failed = FormFeedback::new(
                    FormId::Row {
                        topic: TopicId(3),
                        action: crate::feedback::RowAction::Subscribe,
                    },
                    "That topic was deleted meanwhile.",
                );
                let rows = Rows::new(Some(&failed), Callback::new(|_| {}), is_staff);
                let in_place = rendered_in_place(rows);
                assert!(in_place.contains("deleted meanwhile"), "{in_place}");
                assert_eq!(rows_list(topics.clone(), rows).to_html(), in_place);
            }
        });
    }

    #[test]
    fn only_counts_that_moved_are_read_out() {
        let row = |id, name: &str, count| (TopicId(id), name.to_owned(), count);
        let before = vec![row(1, "Django", 2), row(2, "Python", 0), row(3, "Go", 5)];
        let after = vec![row(1, "Django", 2), row(2, "Python", 1), row(4, "New", 0)];
        assert_eq!(count_changes(&before, &after), "Python: 1 subscriber.");
        let after = vec![row(1, "Django", 3), row(2, "Python", 1)];
        assert_eq!(
            count_changes(&before, &after),
            "Django: 3 subscribers. Python: 1 subscriber."
        );
        assert_eq!(count_changes(&before, &before), "");
    }
}
