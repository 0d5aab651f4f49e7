//! Accounts: who is logged in, and the login and signup pages.
//!
//! The pages are plain HTML forms posting to `/login` and `/signup` (handled by the server's
//! auth routes), so they work the same with and without JavaScript.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::feedback::{described_by, use_form_feedback, FormError, FormId};

#[cfg(feature = "ssr")]
mod hashing;
#[cfg(feature = "ssr")]
pub mod ssr;

/// Password checks waiting for or running on the hashing threads now.
#[cfg(feature = "ssr")]
pub fn password_checks_pending() -> usize {
    hashing::queue().pending()
}

/// The logged-in user as pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: crate::ids::UserId,
    pub username: String,
    pub is_staff: bool,
}

/// Reads the user of this request on the server and carries it to the client.
pub fn provide_current_user() {
    let user = SharedValue::new(request_user).into_inner();
    provide_context(user);
}

/// The user of the page being shown, if any.
pub fn use_current_user() -> Option<CurrentUser> {
    use_context::<Option<CurrentUser>>().flatten()
}

#[cfg(feature = "ssr")]
fn request_user() -> Option<CurrentUser> {
    let parts = use_context::<http::request::Parts>()?;
    let session = parts.extensions.get::<ssr::AuthSession>()?;
    session.user.as_ref().map(CurrentUser::from)
}

#[cfg(not(feature = "ssr"))]
fn request_user() -> Option<CurrentUser> {
    None
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let feedback = use_form_feedback(FormId::Login);
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    let username = feedback
        .as_ref()
        .map(|f| f.value("username"))
        .unwrap_or_default();
    let error = feedback.map(|f| f.error);
    // The message ("wrong username or password") is about both fields.
    let (described, invalid) = described_by(error.as_ref(), "login-error");
    view! {
        <section class="card narrow">
            <h1>"Log in"</h1>
            <form method="post" action="/login" data-form="login">
                <FormError id="login-error" message=move || error.clone()/>
                <label>
                    "Username"
                    <input
                        name="username"
                        autocomplete="username"
                        required
                        value=username
                        aria-describedby=described.clone()
                        aria-invalid=invalid
                    />
                </label>
                <label>
                    "Password"
                    <input
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        aria-describedby=described
                        aria-invalid=invalid
                    />
                </label>
                <input type="hidden" name="next" value=next/>
                <button type="submit">"Log in"</button>
            </form>
            <p>"No account yet? " <a href="/signup">"Sign up"</a></p>
        </section>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let feedback = use_form_feedback(FormId::Signup);
    let username = feedback
        .as_ref()
        .map(|f| f.value("username"))
        .unwrap_or_default();
    let error = feedback.map(|f| f.error);
    // A refusal may be about either field (a taken name, a weak password): both point at it,
    // beside the hint each has.
    let (described, invalid) = described_by(error.as_ref(), "signup-error");
    let with_hint = |hint: &str| {
        Some(match &described {
            Some(error) => format!("{error} {hint}"),
            None => hint.to_owned(),
        })
    };
    let (username_described, password_described) =
        (with_hint("username-hint"), with_hint("password-hint"));
    view! {
        <section class="card narrow">
            <h1>"Sign up"</h1>
            <form method="post" action="/signup" data-form="signup">
                <FormError id="signup-error" message=move || error.clone()/>
                <label>
                    "Username"
                    <input
                        name="username"
                        autocomplete="username"
                        required
                        maxlength="150"
                        value=username
                        aria-describedby=username_described
                        aria-invalid=invalid
                    />
                    <small id="username-hint">"Letters, digits and @ . + - _ only."</small>
                </label>
                <label>
                    "Password"
                    <input
                        name="password"
                        type="password"
                        autocomplete="new-password"
                        required
                        minlength="8"
                        aria-describedby=password_described
                        aria-invalid=invalid
                    />
                    <small id="password-hint">"At least 8 characters, not only digits, not a common one: a few unrelated words work well."</small>
                </label>
                <button type="submit">"Create account"</button>
            </form>
            <p>"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
