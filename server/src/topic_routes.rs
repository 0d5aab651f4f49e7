//! The topic form routes (SPEC.md §3), for pages without JavaScript. Each one is a thin door:
//! parse the path, make one domain call, answer 303 to `/topics/` or the page again with the
//! message next to the form that failed.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::render::page_with_feedback;
use crate::security::Member;
use app::error::AppError;
use app::feedback::FormFeedback;
use app::state::AppState;
use app::subscriptions::ssr as subscriptions;
use app::topics::ssr as topics;
use app::topics::ViewVersion;

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// A path id that is not a number names no topic.
fn topic_id(raw: &str) -> Result<i64, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// Parses the id, makes the call, answers for the form named `{action}-{raw id}`.
async fn on_topic<F, Fut>(
    state: &AppState,
    parts: &Parts,
    action: &str,
    raw: &str,
    call: F,
) -> Response
where
    F: FnOnce(i64) -> Fut,
    Fut: std::future::Future<Output = Result<ViewVersion, AppError>>,
{
    let result = match topic_id(raw) {
        Ok(id) => call(id).await,
        Err(err) => Err(err),
    };
    answer(state, parts, format!("{action}-{raw}"), None, result).await
}

/// 303 to the list on success; otherwise the list again, with the message by `form`.
async fn answer(
    state: &AppState,
    parts: &Parts,
    form: String,
    typed_name: Option<&str>,
    result: Result<ViewVersion, AppError>,
) -> Response {
    match result {
        Ok(_) => Redirect::to("/topics/").into_response(),
        Err(err) => {
            let mut feedback = FormFeedback::new(&form, err.to_string());
            if let Some(name) = typed_name {
                feedback = feedback.with_value("name", name);
            }
            page_with_feedback(state, parts, "/topics/", feedback, err.status()).await
        }
    }
}

pub async fn subscribe(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Path(raw): Path<String>,
) -> Response {
    on_topic(&state, &parts, "subscribe", &raw, |id| {
        subscriptions::subscribe(&state, user.id, id)
    })
    .await
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Path(raw): Path<String>,
) -> Response {
    on_topic(&state, &parts, "unsubscribe", &raw, |id| {
        subscriptions::unsubscribe(&state, user.id, id)
    })
    .await
}

pub async fn unsubscribe_all(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
) -> Response {
    let result = subscriptions::unsubscribe_all(&state, user.id).await;
    answer(&state, &parts, "unsubscribe-all".into(), None, result).await
}

pub async fn create(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Form(form): Form<NameForm>,
) -> Response {
    let result = topics::create(&state, &user, &form.name).await;
    answer(&state, &parts, "create".into(), Some(&form.name), result).await
}

pub async fn rename(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Path(raw): Path<String>,
    Form(form): Form<NameForm>,
) -> Response {
    let result = match topic_id(&raw) {
        Ok(id) => topics::rename(&state, &user, id, &form.name).await,
        Err(err) => Err(err),
    };
    answer(
        &state,
        &parts,
        format!("rename-{raw}"),
        Some(&form.name),
        result,
    )
    .await
}

pub async fn delete(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Path(raw): Path<String>,
) -> Response {
    on_topic(&state, &parts, "delete", &raw, |id| {
        topics::delete(&state, &user, id)
    })
    .await
}
