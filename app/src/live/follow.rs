//! In the browser: follow the server's live updates over Server-Sent Events. EventSource
//! reconnects by itself (after a restart, say) and the server answers every connection with
//! the current version, so an open page catches up at once. The stream follows one page of
//! the list (its `page` and `q`): the server tells it of the rows that page shows only.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

use super::{Patch, ViewVersion};
use domain::topics::PageRequest;

const EVENTS_URL: &str = "/topics/events/";

/// The stream of the list page `request` shows.
fn events_url(request: &PageRequest) -> String {
    let query = js_sys::encode_uri_component(request.query.trim());
    format!(
        "{EVENTS_URL}?page={}&q={}",
        request.page,
        String::from(query)
    )
}

/// What the server pushes.
pub enum Pushed {
    /// The version of what the user sees now: refetch if the page shows an older one.
    Version(ViewVersion),
    /// What moved since the version last pushed: patch the rows if it leads from the one shown.
    Patch(Patch),
}

/// Calls `on_push` with every update the server pushes for the list page `request` shows,
/// until the calling reactive scope is cleaned up (the page unmounts, or the effect that
/// follows reruns for another page: the old stream is closed before the new one opens).
pub fn follow(request: &PageRequest, on_push: impl Fn(Pushed) + 'static) {
    let Ok(source) = EventSource::new(&events_url(request)) else {
        return;
    };
    let listener = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        let pushed = if event.type_() == "patch" {
            serde_json::from_str(&text).ok().map(Pushed::Patch)
        } else {
            serde_json::from_str(&text).ok().map(Pushed::Version)
        };
        if let Some(pushed) = pushed {
            on_push(pushed);
        }
    });
    let callback = listener.as_ref().unchecked_ref();
    if source
        .add_event_listener_with_callback("version", callback)
        .and_then(|()| source.add_event_listener_with_callback("patch", callback))
        .is_err()
    {
        source.close();
        return;
    }
    // The listener must live as long as the source; both go when the page does.
    let held = SendWrapper::new((source, listener));
    on_cleanup(move || held.take().0.close());
}
