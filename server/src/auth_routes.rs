//! The account form routes: POST /signup, /login and /logout. Each validates, makes one
//! domain call, and answers with a redirect or the form again.

use std::sync::Arc;

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use serde::Deserialize;

use app::error::AppError;
use app::feedback::{FormFeedback, FormId};
use app::users::auth::{AuthSession, SessionUser};
use app::web::AppState;
use domain::users::{create_user, logged_out, Credentials, Password, User, Username};

use crate::render::page_with_feedback;
use crate::security::{login_url, safe_next};
use crate::throttle::Throttle;

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn signup(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<Throttle>>,
    mut auth: AuthSession,
    parts: Parts,
    Form(form): Form<SignupForm>,
) -> Response {
    let result = async {
        let username = Username::parse(&form.username)?;
        let password = Password::parse(&form.password, &username)?;
        throttle.signup_allowed(throttle.client.of(&parts))?;
        let user = create_user(&state.services.db, username, password, false).await?;
        start_session(&mut auth, &user).await?;
        Ok::<_, AppError>(())
    }
    .await;
    let page = "/signup";
    answer(
        &state,
        &parts,
        result,
        "/topics/",
        FormId::Signup,
        &form.username,
        page,
    )
    .await
}

pub async fn login(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<Throttle>>,
    mut auth: AuthSession,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let address = throttle.client.of(&parts);
    let result = async {
        let credentials = Credentials::new(form.username.clone(), form.password)?;
        throttle.login_allowed(&form.username, address)?;
        let user = auth
            .authenticate(credentials)
            .await
            .map_err(|e| match e {
                axum_login::Error::Backend(err) => err,
                axum_login::Error::Session(e) => {
                    AppError::internal("could not check the credentials", &e)
                }
            })?
            .ok_or_else(|| {
                throttle.login_failed(&form.username, address);
                AppError::Unauthorized("Wrong username or password.".into())
            })?;
        start_session(&mut auth, &user).await?;
        Ok::<_, AppError>(())
    }
    .await;
    let page = if form.next.is_empty() {
        "/login".to_owned()
    } else {
        login_url(&next)
    };
    answer(
        &state,
        &parts,
        result,
        &next,
        FormId::Login,
        &form.username,
        &page,
    )
    .await
}

/// A 303 to `to` on success; otherwise the form's page again (`page`), with the message by
/// the form and the username kept.
async fn answer(
    state: &AppState,
    parts: &Parts,
    result: Result<(), AppError>,
    to: &str,
    form: FormId,
    username: &str,
    page: &str,
) -> Response {
    match result {
        Ok(()) => Redirect::to(to).into_response(),
        Err(err) => {
            let feedback =
                FormFeedback::new(form, err.to_string()).with_value("username", username);
            page_with_feedback(state, parts, page, feedback, &err).await
        }
    }
}

/// Signs the user in on this session with a new session id, and counts that as a renewal.
/// axum-login cycles the id only for an anonymous session; an id planted while it was valid
/// and logged in must not survive a login either.
async fn start_session(auth: &mut AuthSession, user: &User) -> Result<(), AppError> {
    auth.session
        .cycle_id()
        .await
        .map_err(|e| AppError::internal("could not start the session", &e))?;
    auth.login(&SessionUser(user.clone()))
        .await
        .map_err(|e| AppError::internal("could not start the session", &e))?;
    app::sessions::mark_signed_in(&auth.session)
        .await
        .map_err(|e| AppError::internal("could not start the session", &e))
}

pub async fn logout(State(state): State<AppState>, mut auth: AuthSession) -> Response {
    let user = match auth.logout().await {
        Ok(user) => user,
        Err(err) => {
            let err = AppError::internal("could not end the session", &err);
            return (err.status(), err.to_string()).into_response();
        }
    };
    if let Some(user) = user {
        // The session is gone either way; a failed signal only costs a cache entry its TTL.
        if let Err(err) = logged_out(&state.services, user.id).await {
            tracing::warn!(error = %err, "user_logged_out could not be sent");
        }
    }
    Redirect::to("/topics/").into_response()
}
