//! What a plain (JavaScript-free) form gets back when its POST fails: the page again, with the
//! message next to the form and what was typed still in the fields.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use domain::ids::TopicId;

/// Which form on a page a message belongs to. The server names the form that failed, the
/// page puts the message beside it: one type for both, so neither parses the other's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormId {
    Login,
    Signup,
    CreateTopic,
    UnsubscribeAll,
    /// One of the forms of a topic's row.
    Row {
        topic: TopicId,
        action: RowAction,
    },
    /// The topic list as a whole: an action on a topic that is not (or no longer) on it, or
    /// whose id in the URL is not a number.
    TopicList,
}

/// The forms each topic row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowAction {
    Subscribe,
    Unsubscribe,
    Rename,
    Delete,
}

impl RowAction {
    /// The form's `data-form` name and the first segment of its route (`/topics/{name}/{id}/`).
    pub fn name(self) -> &'static str {
        match self {
            RowAction::Subscribe => "subscribe",
            RowAction::Unsubscribe => "unsubscribe",
            RowAction::Rename => "rename",
            RowAction::Delete => "delete",
        }
    }

    /// Where the row's form posts to without JavaScript.
    pub fn route(self, topic: TopicId) -> String {
        format!("/topics/{}/{topic}/", self.name())
    }
}

/// Set by the server when it re-renders a page after a failed form POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFeedback {
    /// Which form on the page failed.
    pub form: FormId,
    pub error: String,
    /// The submitted values worth showing again (never passwords).
    pub values: Vec<(String, String)>,
}

impl FormFeedback {
    pub fn new(form: FormId, error: impl Into<String>) -> Self {
        FormFeedback {
            form,
            error: error.into(),
            values: Vec::new(),
        }
    }

    pub fn with_value(mut self, name: &str, value: &str) -> Self {
        self.values.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn value(&self, name: &str) -> String {
        self.values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }
}

/// The path of the page this render shows, when it answers a failed form POST: the POST's
/// own address (`/topics/create/`) is not that page's, and only the server knows which page it
/// rendered. Put on `<body>` by the server-only shell, for [`show_answered_page_path`].
pub fn answered_page_path() -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        use_context::<FormFeedback>()?;
        use_context::<http::request::Parts>().map(|parts| parts.uri.path().to_owned())
    }
    #[cfg(not(feature = "ssr"))]
    None
}

/// Runs before hydration: when the document answers a failed form POST, the address bar is
/// set to the page it shows. The router then routes that page (at the POST's address it
/// would route the not-found view and hydration would fail), and a reload shows the page
/// instead of posting the form again.
///
/// Runs before anything of Leptos: it reads the document through `web_sys` directly (Leptos's
/// own `document()` here, before hydration starts, broke the hydration that followed).
#[cfg(feature = "hydrate")]
pub fn show_answered_page_path() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(path) = window
        .document()
        .and_then(|document| document.body())
        .and_then(|body| body.get_attribute("data-page-path"))
    else {
        return;
    };
    if window.location().pathname().ok().as_deref() == Some(path.as_str()) {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// The feedback of this render, if it answers a failed form POST. Carried from the server
/// render to the hydrating client so both render the same markup.
pub fn use_page_feedback() -> Option<FormFeedback> {
    SharedValue::new(use_context::<FormFeedback>).into_inner()
}

/// The feedback for `form`, if this render answers a failed POST of it.
pub fn use_form_feedback(form: FormId) -> Option<FormFeedback> {
    use_page_feedback().filter(|f| f.form == form)
}

/// The message element shown beside a form; empty when there is nothing to say.
///
/// `message` is read inside the element's own effect rather than through a separate derived
/// signal: a topic row is replaced when the list refetches, and a message that arrives just
/// then would otherwise be read through a signal already disposed with the old row.
///
/// `id` names the element for the inputs it explains (`aria-describedby`, see
/// [`described_by`]).
#[component]
pub fn FormError(
    message: impl Fn() -> Option<String> + Send + Sync + 'static,
    #[prop(optional, into)] id: Option<String>,
) -> impl IntoView {
    move || {
        let id = id.clone();
        message().map(|text| {
            view! { <p class="form-error" role="alert" id=id data-form-error="">{text}</p> }
        })
    }
}

/// The `aria-describedby` and `aria-invalid` values of an input whose form shows `error`
/// in the [`FormError`] named `error_id`: nothing while there is no error.
pub fn described_by(
    error: Option<&String>,
    error_id: &str,
) -> (Option<String>, Option<&'static str>) {
    match error {
        Some(_) => (Some(error_id.to_owned()), Some("true")),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_forms_post_to_the_routes_of_the_contract() {
        assert_eq!(
            RowAction::Subscribe.route(TopicId(3)),
            "/topics/subscribe/3/"
        );
        assert_eq!(
            RowAction::Unsubscribe.route(TopicId(3)),
            "/topics/unsubscribe/3/"
        );
        assert_eq!(RowAction::Rename.route(TopicId(12)), "/topics/rename/12/");
        assert_eq!(RowAction::Delete.route(TopicId(12)), "/topics/delete/12/");
    }
}
