//! What a plain (JavaScript-free) form gets back when its POST fails: the page again, with the
//! message next to the form and what was typed still in the fields.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::TopicId;

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
#[component]
pub fn FormError(message: impl Fn() -> Option<String> + Send + Sync + 'static) -> impl IntoView {
    move || {
        message().map(|text| {
            view! { <p class="form-error" role="alert" data-form-error="">{text}</p> }
        })
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
