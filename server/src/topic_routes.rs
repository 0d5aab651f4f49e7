//! The topic form routes (the README's routes table), for pages without JavaScript. Each one is a thin door:
//! parse the path, make one domain call, answer 303 to `/topics/` or the page again with the
//! message next to the form that failed.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use app::error::AppError;
use app::feedback::{FormFeedback, FormId, RowAction};
use app::web::AppState;
use domain::error::DomainError;
use domain::ids::TopicId;
use domain::live::ViewVersion;
use domain::{subscriptions, topics};

use crate::render::page_with_feedback;
use crate::security::Member;

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// Parses the path id, makes the call, answers for the row's form. A path id that is not a
/// number names no topic (404, reported for the list as a whole).
async fn on_topic<F, Fut>(
    state: &AppState,
    parts: &Parts,
    action: RowAction,
    raw: &str,
    typed_name: Option<&str>,
    call: F,
) -> Response
where
    F: FnOnce(TopicId) -> Fut,
    Fut: std::future::Future<Output = Result<ViewVersion, DomainError>>,
{
    let (form, result) = match raw.parse::<TopicId>() {
        Ok(topic) => (FormId::Row { topic, action }, call(topic).await),
        Err(_) => (FormId::TopicList, Err(DomainError::NotFound)),
    };
    answer(state, parts, form, typed_name, result).await
}

/// 303 to the list on success; otherwise the list again, with the message by `form`.
async fn answer(
    state: &AppState,
    parts: &Parts,
    form: FormId,
    typed_name: Option<&str>,
    result: Result<ViewVersion, DomainError>,
) -> Response {
    match result.map_err(AppError::from) {
        Ok(_) => Redirect::to("/topics/").into_response(),
        Err(err) => {
            let mut feedback = FormFeedback::new(form, err.to_string());
            if let Some(name) = typed_name {
                feedback = feedback.with_value("name", name);
            }
            page_with_feedback(state, parts, "/topics/", feedback, &err).await
        }
    }
}

/// A form route for one topic's row (`/topics/<action>/<id>/`): the handler parses the path
/// id and makes `call` with the member and the topic, answering for the row's form.
macro_rules! row_route {
    ($name:ident, $action:expr, |$state:ident, $user:ident, $topic:ident| $call:expr) => {
        pub async fn $name(
            State($state): State<AppState>,
            Member($user): Member,
            parts: Parts,
            Path(raw): Path<String>,
        ) -> Response {
            on_topic(&$state, &parts, $action, &raw, None, |$topic| $call).await
        }
    };
}

row_route!(subscribe, RowAction::Subscribe, |state, user, topic| {
    subscriptions::subscribe(&state.services, user.id, topic)
});

row_route!(unsubscribe, RowAction::Unsubscribe, |state, user, topic| {
    subscriptions::unsubscribe(&state.services, user.id, topic)
});

row_route!(delete, RowAction::Delete, |state, user, topic| {
    topics::delete(&state.services, &user, topic)
});

pub async fn unsubscribe_all(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
) -> Response {
    let result = subscriptions::unsubscribe_all(&state.services, user.id).await;
    answer(&state, &parts, FormId::UnsubscribeAll, None, result).await
}

pub async fn create(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Form(form): Form<NameForm>,
) -> Response {
    let result = topics::create(&state.services, &user, &form.name).await;
    answer(
        &state,
        &parts,
        FormId::CreateTopic,
        Some(&form.name),
        result,
    )
    .await
}

pub async fn rename(
    State(state): State<AppState>,
    Member(user): Member,
    parts: Parts,
    Path(raw): Path<String>,
    Form(form): Form<NameForm>,
) -> Response {
    on_topic(
        &state,
        &parts,
        RowAction::Rename,
        &raw,
        Some(&form.name),
        |topic| topics::rename(&state.services, &user, topic, &form.name),
    )
    .await
}
