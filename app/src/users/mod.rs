//! Accounts: who is logged in, and the login and signup pages.
//!
//! The pages are plain HTML forms posting to `/login` and `/signup` (handled by the server's
//! auth routes), so they work the same with and without JavaScript.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::feedback::{described_by, use_form_feedback, FormError, FormId};

#[cfg(feature = "ssr")]
pub mod auth;

/// The logged-in user as pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: domain::ids::UserId,
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
    let session = parts.extensions.get::<auth::AuthSession>()?;
    session.user.as_deref().map(CurrentUser::from)
}

#[cfg(not(feature = "ssr"))]
fn request_user() -> Option<CurrentUser> {
    None
}

/// A plain form that is sent once. Its POST navigates away; a second click before the answer
/// arrives would send it again and show the second answer (for a sign-up: "taken", for the
/// account the first one just made). With JavaScript the button says the form is on its way
/// and further submits are dropped; without it the browser does as it always does.
#[derive(Clone, Copy)]
struct SendOnce(RwSignal<bool>);

impl SendOnce {
    fn new() -> Self {
        let sending = RwSignal::new(false);
        // A page restored from the back-forward cache is ready to send again.
        #[cfg(feature = "hydrate")]
        {
            let handle = window_event_listener(leptos::ev::pageshow, move |_| sending.set(false));
            on_cleanup(move || handle.remove());
        }
        SendOnce(sending)
    }

    fn on_submit(self, ev: leptos::ev::SubmitEvent) {
        if self.0.get_untracked() {
            ev.prevent_default();
        } else {
            self.0.set(true);
        }
    }

    fn sending(self) -> bool {
        self.0.get()
    }

    fn busy(self) -> Option<&'static str> {
        self.0.get().then_some("true")
    }
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
    let once = SendOnce::new();
    view! {
        <section class="card narrow">
            <h1>"Log in"</h1>
            <form
                method="post"
                action="/login"
                data-form="login"
                on:submit=move |ev| once.on_submit(ev)
            >
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
                <button type="submit" disabled=move || once.sending() aria-busy=move || once.busy()>
                    "Log in"
                </button>
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
    let once = SendOnce::new();
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
            <form
                method="post"
                action="/signup"
                data-form="signup"
                on:submit=move |ev| once.on_submit(ev)
            >
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
                <button type="submit" disabled=move || once.sending() aria-busy=move || once.busy()>
                    "Create account"
                </button>
            </form>
            <p>"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
