//! Subscriptions: pages, server functions and shared types. With the `ssr` feature it also
//! holds the server-side domain (database, accounts, topics); with `hydrate` it is the client.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub mod activity;
pub mod error;
pub mod feedback;
pub mod layout;
pub mod live;
mod server_fn;
pub mod subscriptions;
pub mod topics;
pub mod url;
pub mod users;

#[cfg(feature = "ssr")]
pub mod sessions;
#[cfg(feature = "ssr")]
pub mod web;

use activity::ActivityPage;
use layout::{Layout, NotFound};
use topics::TopicsPage;
use users::{LoginPage, SignupPage};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    web::send_page_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // Declared, so that browsers do not ask for a /favicon.ico that does not exist.
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options=options.clone()/>
                <HashedStylesheet options id="leptos"/>
                <MetaTags/>
            </head>
            <body data-page-path=feedback::answered_page_path()>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    users::provide_current_user();
    // Effects run only in the browser: the mark tells tests (and curious people) that the
    // wasm app has taken over the server-rendered page.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title text="Subscriptions"/>
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=|| view! { <Redirect path="/topics/"/> }/>
                    <Route path=path!("/topics/") view=TopicsPage ssr=SsrMode::Async/>
                    <Route path=path!("/topics/activity/") view=ActivityPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/signup") view=SignupPage/>
                </Routes>
            </Layout>
        </Router>
    }
}
