//! The activity log: one row per topic created, renamed or deleted, written only by signal
//! receivers, shown newest first on `/topics/activity/`.

use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use domain::activity::ActivityPageData;

use crate::server_fn::member_server_fn;

member_server_fn!(
    "list_activity", fn list_activity(page: i64) -> ActivityPageData,
    |_user, services| domain::activity::feed(&services.db, page)
);

#[component]
pub fn ActivityPage() -> impl IntoView {
    let query = use_query_map();
    let page = move || {
        query
            .with(|q| q.get("page"))
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let data = Resource::new(page, list_activity);
    view! {
        <section class="card">
            <h1>"Activity"</h1>
            <p><a href="/topics/">"← Back to the topics"</a></p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(data) => Either::Left(view! { <ActivityList data/> }),
                        Err(err) => Either::Right(
                            view! { <p class="form-error" role="alert">{err.to_string()}</p> },
                        ),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ActivityList(data: ActivityPageData) -> impl IntoView {
    let ActivityPageData {
        items,
        page,
        has_next,
    } = data;
    view! {
        {if items.is_empty() {
            Either::Left(view! { <p class="empty">"Nothing has happened yet."</p> })
        } else {
            Either::Right(view! {
                <div class="table-scroll">
                <table class="activity">
                    <thead>
                        <tr><th>"Topic"</th><th>"Action"</th><th>"When"</th></tr>
                    </thead>
                    <tbody>
                        {items
                            .into_iter()
                            .map(|item| {
                                view! {
                                    <tr
                                        data-activity-id=item.id
                                        data-topic-name=item.topic_name.clone()
                                        data-action=item.action.clone()
                                    >
                                        <td>{item.topic_name.clone()}</td>
                                        <td>{item.action.clone()}</td>
                                        <td><When utc=item.created_at.clone()/></td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
                </div>
            })
        }}
        <nav class="pager">
            {(page > 1)
                .then(|| {
                    view! { <a rel="prev" href=format!("/topics/activity/?page={}", page - 1)>"← Newer"</a> }
                })}
            <span>"Page " {page}</span>
            {has_next
                .then(|| {
                    view! { <a rel="next" href=format!("/topics/activity/?page={}", page + 1)>"Older →"</a> }
                })}
        </nav>
    }
}

/// A moment of the feed: in UTC as the server renders it (right without JavaScript, and what
/// the client hydrates), then in the reader's own time zone and language once the page runs.
#[component]
fn When(
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    utc: String,
) -> impl IntoView {
    let iso = format!("{}Z", utc.replacen(' ', "T", 1));
    let in_utc = format!("{utc} UTC");
    let local = RwSignal::new(None::<String>);
    #[cfg(feature = "hydrate")]
    {
        let iso = iso.clone();
        Effect::new(move |_| local.set(local_time(&iso)));
    }
    let title = in_utc.clone();
    view! {
        <time datetime=iso title=title>
            {move || local.get().unwrap_or_else(|| in_utc.clone())}
        </time>
    }
}

/// `iso` in the browser's time zone and language, e.g. "3 Dec 2026, 17:05".
#[cfg(feature = "hydrate")]
fn local_time(iso: &str) -> Option<String> {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_str(iso));
    if date.get_time().is_nan() {
        return None;
    }
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into()).ok()?;
    js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into()).ok()?;
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &options);
    format
        .format()
        .call1(&JsValue::NULL, &date)
        .ok()?
        .as_string()
}
