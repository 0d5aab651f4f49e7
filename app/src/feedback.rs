//! What a plain (JavaScript-free) form gets back when its POST fails: the page again, with the
//! message next to the form and what was typed still in the fields.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Set by the server when it re-renders a page after a failed form POST.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFeedback {
    /// Which form on the page failed (its `data-form` name).
    pub form: String,
    pub error: String,
    /// The submitted values worth showing again (never passwords).
    pub values: Vec<(String, String)>,
}

impl FormFeedback {
    pub fn new(form: &str, error: impl Into<String>) -> Self {
        FormFeedback {
            form: form.to_owned(),
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
pub fn use_form_feedback(form: &str) -> Option<FormFeedback> {
    use_page_feedback().filter(|f| f.form == form)
}

/// The message element shown beside a form; empty when there is nothing to say.
#[component]
pub fn FormError(#[prop(into)] message: Signal<Option<String>>) -> impl IntoView {
    move || {
        message.get().map(|text| {
            view! { <p class="form-error" role="alert" data-form-error="">{text}</p> }
        })
    }
}
