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

/// What the last refusal of `form` left to show: the username as it was typed, and why.
fn refused(form: FormId) -> (String, Option<String>) {
    let feedback = use_form_feedback(form);
    let username = feedback
        .as_ref()
        .map(|f| f.value("username"))
        .unwrap_or_default();
    (username, feedback.map(|f| f.error))
}

/// The username field of both account forms (a name is at most 150 characters, so a longer
/// one cannot log in either); `children` follow the input (the sign-up hint).
#[component]
fn UsernameField(
    value: String,
    described: Option<String>,
    invalid: Option<&'static str>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <label>
            "Username"
            <input
                name="username"
                autocomplete="username"
                required
                maxlength="150"
                value=value
                aria-describedby=described
                aria-invalid=invalid
            />
            {children.map(|hint| hint())}
        </label>
    }
}

/// An account form: posted as plain HTML and sent once ([`SendOnce`]), its refusal shown
/// above the fields (`error_id` names it for their `aria-describedby`), its button below.
#[component]
fn SentOnceForm(
    action: &'static str,
    form: &'static str,
    error_id: &'static str,
    error: Option<String>,
    submit: &'static str,
    children: Children,
) -> impl IntoView {
    let once = SendOnce::new();
    view! {
        <form method="post" action=action data-form=form on:submit=move |ev| once.on_submit(ev)>
            <FormError id=error_id message=move || error.clone()/>
            {children()}
            <button type="submit" disabled=move || once.sending() aria-busy=move || once.busy()>
                {submit}
            </button>
        </form>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let (username, error) = refused(FormId::Login);
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    // The message ("wrong username or password") is about both fields.
    let (described, invalid) = described_by(error.as_ref(), "login-error");
    view! {
        <section class="card narrow">
            <h1>"Log in"</h1>
            <SentOnceForm action="/login" form="login" error_id="login-error" error submit="Log in">
                <UsernameField value=username described=described.clone() invalid/>
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
            </SentOnceForm>
            <p>"No account yet? " <a href="/signup">"Sign up"</a></p>
        </section>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let (username, error) = refused(FormId::Signup);
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
            <SentOnceForm
                action="/signup"
                form="signup"
                error_id="signup-error"
                error
                submit="Create account"
            >
                <UsernameField value=username described=username_described invalid>
                    <small id="username-hint">"Letters, digits and @ . + - _ only."</small>
                </UsernameField>
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
            </SentOnceForm>
            <p>"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
