//! In the browser: follow the server's live versions over Server-Sent Events. EventSource
//! reconnects by itself (after a restart, say) and the server answers every connection with
//! the current versions, so an open page catches up at once.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

use super::ViewVersion;

const EVENTS_URL: &str = "/topics/events/";

/// Calls `on_version` with every version the server pushes, until the calling reactive scope
/// is cleaned up (the page unmounts).
pub fn follow_versions(on_version: impl Fn(ViewVersion) + 'static) {
    let Ok(source) = EventSource::new(EVENTS_URL) else {
        return;
    };
    let listener = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(version) = event
            .data()
            .as_string()
            .and_then(|text| serde_json::from_str::<ViewVersion>(&text).ok())
        {
            on_version(version);
        }
    });
    if source
        .add_event_listener_with_callback("version", listener.as_ref().unchecked_ref())
        .is_err()
    {
        source.close();
        return;
    }
    // The listener must live as long as the source; both go when the page does.
    let held = SendWrapper::new((source, listener));
    on_cleanup(move || held.take().0.close());
}
