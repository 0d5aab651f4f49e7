//! The frame around every page, and the page for paths that do not exist.

use leptos::either::Either;
use leptos::prelude::*;

use crate::users::use_current_user;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let user = use_current_user();
    view! {
        <header class="site-header">
            <a class="brand" href="/topics/">"Subscriptions"</a>
            <nav>
                {match user {
                    Some(user) => {
                        Either::Left(view! {
                            <a href="/topics/">"Topics"</a>
                            <span class="whoami" data-username=user.username.clone()>
                                {user.username.clone()}
                                {user.is_staff.then_some(" (staff)")}
                            </span>
                            <form method="post" action="/logout" class="inline" data-form="logout">
                                <button type="submit" class="link">"Log out"</button>
                            </form>
                        })
                    }
                    None => {
                        Either::Right(view! {
                            <a href="/login">"Log in"</a>
                            <a href="/signup">"Sign up"</a>
                        })
                    }
                }}
            </nav>
        </header>
        <main>{children()}</main>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="card narrow not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <p><a href="/topics/">"Go to the topics"</a></p>
        </section>
    }
}
