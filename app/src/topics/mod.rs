//! Topics: what the list page shows and the server function that feeds it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

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

#[server(endpoint = "list_topics")]
pub async fn list_topics() -> Result<Vec<TopicView>, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            Ok(state
                .db
                .run(move |conn| {
                    ssr::list_for_user(conn, user.id).map_err(crate::db::DbError::from)
                })
                .await?)
        }
        .await,
    )
}

#[component]
pub fn TopicsPage() -> impl IntoView {
    let topics = Resource::new(|| (), |_| list_topics());
    view! {
        <section class="card">
            <h1>"Topics"</h1>
            <Suspense fallback=|| view! { <p>"Loading topics…"</p> }>
                {move || Suspend::new(async move {
                    match topics.await {
                        Ok(list) => view! { <TopicList topics=list/> }.into_any(),
                        Err(err) => {
                            view! { <p class="form-error" role="alert">{err.to_string()}</p> }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn TopicList(topics: Vec<TopicView>) -> impl IntoView {
    if topics.is_empty() {
        return view! { <p class="empty">"No topics yet."</p> }.into_any();
    }
    view! {
        <ul class="topics">
            {topics
                .into_iter()
                .map(|topic| {
                    view! {
                        <li
                            class="topic"
                            data-topic-id=topic.id
                            data-topic-name=topic.name.clone()
                            data-subscribers=topic.subscribers
                            data-subscribed=topic.subscribed.to_string()
                        >
                            <span class="topic-name">{topic.name.clone()}</span>
                            <span class="topic-count">
                                {subscriber_label(topic.subscribers)}
                            </span>
                            {topic
                                .subscribed
                                .then(|| view! { <span class="badge">"subscribed"</span> })}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

fn subscriber_label(count: i64) -> String {
    match count {
        1 => "1 subscriber".to_owned(),
        n => format!("{n} subscribers"),
    }
}
