//! One topic's row: its forms, what they do with JavaScript, and where their errors show.

use std::collections::{HashMap, HashSet};

use leptos::either::Either;
use leptos::html;
use leptos::prelude::*;

use super::api::{delete_topic, rename_topic, TopicView};
use crate::error::AppError;
use crate::feedback::{FormError, FormFeedback, FormId, RowAction};
use crate::live::ViewVersion;
use crate::subscriptions::{subscribe, unsubscribe};
use domain::ids::TopicId;

/// What the rows of one page share. Rows are built again whenever the list refetches, so what
/// must outlive a refetch lives here: each row's last error and whether an action of it is on
/// its way, keyed by its topic, and what the page does with an action's result. Every dispatch carries its own topic id, so results that
/// arrive in any order land in their own row.
#[derive(Clone, Copy)]
pub(super) struct Rows {
    errors: RwSignal<HashMap<TopicId, String>>,
    /// Topics with an action on its way: their buttons wait for its result.
    pending: RwSignal<HashSet<TopicId>>,
    on_result: Callback<Result<ViewVersion, AppError>>,
    is_staff: bool,
}

impl Rows {
    /// `feedback` is the server's answer to a failed plain POST of a row's form, if any.
    pub(super) fn new(
        feedback: Option<&FormFeedback>,
        on_result: Callback<Result<ViewVersion, AppError>>,
        is_staff: bool,
    ) -> Self {
        let mut errors = HashMap::new();
        if let Some(FormFeedback {
            form: FormId::Row { topic, .. },
            error,
            ..
        }) = feedback
        {
            errors.insert(*topic, error.clone());
        }
        Rows {
            errors: RwSignal::new(errors),
            pending: RwSignal::new(HashSet::new()),
            on_result,
            is_staff,
        }
    }

    /// The row's last error, if its last action failed.
    fn error_of(self, topic: TopicId) -> Option<String> {
        self.errors
            .try_with(|errors| errors.get(&topic).cloned())
            .flatten()
    }

    fn is_pending(self, topic: TopicId) -> bool {
        self.pending
            .try_with(|pending| pending.contains(&topic))
            .unwrap_or(false)
    }

    /// Runs a row's action through its server function (in the browser), unless one of the
    /// row's actions is on its way already (a double click sends one request).
    fn dispatch(self, topic: TopicId, action: RowAction, name: String) {
        if self.pending.try_update(|pending| pending.insert(topic)) != Some(true) {
            return;
        }
        leptos::task::spawn_local(async move {
            let result = match action {
                RowAction::Subscribe => subscribe(topic).await,
                RowAction::Unsubscribe => unsubscribe(topic).await,
                RowAction::Rename => rename_topic(topic, name).await,
                RowAction::Delete => delete_topic(topic).await,
            };
            self.settle(topic, result);
        });
    }

    /// The row's error is its last action's; the page decides whether to refetch. (The page
    /// may be gone by now: nothing to update then.)
    fn settle(self, topic: TopicId, result: Result<ViewVersion, AppError>) {
        self.pending.try_update(|pending| pending.remove(&topic));
        self.errors.try_update(|errors| match &result {
            Ok(_) => {
                errors.remove(&topic);
            }
            Err(err) => {
                errors.insert(topic, err.to_string());
            }
        });
        self.on_result.try_run(result);
    }
}

#[component]
pub(super) fn TopicRow(topic: TopicView, rows: Rows) -> impl IntoView {
    let id = topic.id;
    let busy = move || rows.is_pending(id);
    let error_id = format!("topic-{id}-error");
    let toggle = if topic.subscribed {
        Either::Left(view! {
            <RowForm topic=id action=RowAction::Unsubscribe rows>
                <button type="submit" class="secondary" disabled=busy>"Unsubscribe"</button>
            </RowForm>
        })
    } else {
        Either::Right(view! {
            <RowForm topic=id action=RowAction::Subscribe rows>
                <button type="submit" disabled=busy>"Subscribe"</button>
            </RowForm>
        })
    };
    let name = topic.name.clone();
    let described = error_id.clone();
    let staff_forms = rows.is_staff.then(move || {
        let rename_input: NodeRef<html::Input> = NodeRef::new();
        let invalid = move || rows.error_of(id).map(|_| "true");
        let described = move || rows.error_of(id).map(|_| described.clone());
        view! {
            <RowForm topic=id action=RowAction::Rename rows class="inline rename" name_input=rename_input>
                <input
                    node_ref=rename_input
                    name="name"
                    maxlength="100"
                    required
                    aria-label=format!("New name for {name}")
                    aria-describedby=described
                    aria-invalid=invalid
                    value=name
                />
                <button type="submit" class="secondary" disabled=busy>"Rename"</button>
            </RowForm>
            <RowForm topic=id action=RowAction::Delete rows>
                <button type="submit" class="danger" disabled=busy>"Delete"</button>
            </RowForm>
        }
    });
    view! {
        <li
            class="topic"
            data-topic-id=id.to_string()
            data-topic-name=topic.name.clone()
            data-subscribers=topic.subscribers
            data-subscribed=topic.subscribed.to_string()
            aria-busy=move || busy().then_some("true")
        >
            <div class="topic-main">
                <span class="topic-name">{topic.name.clone()}</span>
                <span class="topic-count">{subscriber_label(topic.subscribers)}</span>
                {topic.subscribed.then(|| view! { <span class="badge">"subscribed"</span> })}
            </div>
            <div class="topic-actions">{toggle} {staff_forms}</div>
            <FormError id=error_id message=move || rows.error_of(id)/>
        </li>
    }
}

/// A row's form: a plain POST to the action's route without JavaScript, the action's server
/// function with it.
#[component]
fn RowForm(
    topic: TopicId,
    action: RowAction,
    rows: Rows,
    #[prop(default = "inline")] class: &'static str,
    /// The field whose value the action takes (rename's new name).
    #[prop(optional)]
    name_input: Option<NodeRef<html::Input>>,
    children: Children,
) -> impl IntoView {
    view! {
        <form
            method="post"
            action=action.route(topic)
            class=class
            data-form=action.name()
            on:submit=move |ev| {
                ev.prevent_default();
                let name = name_input
                    .and_then(|input| input.get())
                    .map(|field| field.value())
                    .unwrap_or_default();
                rows.dispatch(topic, action, name);
            }
        >
            {children()}
        </form>
    }
}

/// The HTML of a page's rows. A row's HTML depends only on its topic as the viewer sees it
/// (name, count, flag) and on whether the viewer is staff, so it is rendered once per such
/// state and kept: a write changes one row's count, and the next render of every user's page
/// renders that row alone. A row showing an error (a failed plain POST) is rendered fresh.
#[cfg(feature = "ssr")]
pub(super) fn rendered_rows(topics: &[TopicView], rows: Rows) -> String {
    use std::sync::Arc;

    let kept = kept_rows::get();
    // Which rows show an error, read once: reading the signal once per row costs more than
    // the rest of the lookup.
    let failed: HashSet<TopicId> = rows
        .errors
        .try_with_untracked(|errors| errors.keys().copied().collect())
        .unwrap_or_default();
    // One look under the lock for the whole page: a page has a hundred rows.
    let mut pieces: Vec<Option<Arc<str>>> = {
        let kept = kept
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        topics
            .iter()
            .map(|topic| {
                if failed.contains(&topic.id) {
                    return None;
                }
                kept.get(&kept_rows::key(topic, rows.is_staff))
                    .filter(|row| row.name == topic.name && row.subscribers == topic.subscribers)
                    .map(|row| row.html.clone())
            })
            .collect()
    };
    let mut fresh = Vec::new();
    for (topic, piece) in topics.iter().zip(&mut pieces) {
        if piece.is_some() {
            continue;
        }
        let keep = !failed.contains(&topic.id);
        let key = kept_rows::key(topic, rows.is_staff);
        let (name, subscribers) = (topic.name.clone(), topic.subscribers);
        let topic = topic.clone();
        let html: Arc<str> = view! { <TopicRow topic rows/> }.to_html().into();
        if keep {
            fresh.push((
                key,
                kept_rows::Row {
                    name,
                    subscribers,
                    html: html.clone(),
                },
            ));
        }
        *piece = Some(html);
    }
    if !fresh.is_empty() {
        let mut kept = kept
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() + fresh.len() > kept_rows::MAX_ROWS {
            kept.clear();
        }
        kept.extend(fresh);
    }
    let mut html =
        String::with_capacity(pieces.iter().flatten().map(|p| p.len()).sum::<usize>() + 3);
    for piece in pieces.iter().flatten() {
        html.push_str(piece);
    }
    // Where a list of views ends, tachys leaves a marker that hydration looks for.
    html.push_str("<!>");
    html
}

/// The HTML inside the list of a page that shows no form's error (any GET of the page), as
/// [`rendered_rows`] gives it: for assembling a page around it (the server's stored pages).
#[cfg(feature = "ssr")]
pub fn list_rows_html(topics: &[TopicView], is_staff: bool) -> String {
    Owner::new().with(|| rendered_rows(topics, Rows::new(None, Callback::new(|_| {}), is_staff)))
}

/// The kept rows: per topic and kind of row (subscribed or not, staff or not), the last
/// state rendered and its HTML.
#[cfg(feature = "ssr")]
mod kept_rows {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use super::TopicView;
    use domain::ids::TopicId;

    /// Rows kept at most (a row is under a kilobyte); past it they start again from none.
    pub const MAX_ROWS: usize = 12_000;

    pub struct Row {
        pub name: String,
        pub subscribers: i64,
        pub html: Arc<str>,
    }

    pub type Key = (TopicId, bool, bool);
    type Kept = RwLock<HashMap<Key, Row>>;

    pub fn key(topic: &TopicView, is_staff: bool) -> Key {
        (topic.id, topic.subscribed, is_staff)
    }

    pub fn get() -> &'static Kept {
        static KEPT: OnceLock<Kept> = OnceLock::new();
        KEPT.get_or_init(Default::default)
    }
}

pub(super) fn subscriber_label(count: i64) -> String {
    match count {
        1 => "1 subscriber".to_owned(),
        n => format!("{n} subscribers"),
    }
}
