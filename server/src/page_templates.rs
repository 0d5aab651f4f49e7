//! Topic pages assembled around the user's last rendered one.
//!
//! Stored pages (`page_cache`) are keyed by version, and under a steady trickle of subscribes
//! by anyone the shared version moves many times a second: most stored pages are never asked
//! for again, and each next view would be a full render. Between two versions, though, a
//! user's page for the same URL differs in two places only: the rows of its list and the
//! listing serialized for hydration. A template is a rendered page cut at those two places;
//! the page of a later version is the template with that version's rows (kept per row,
//! `app::topics::list_rows_html`) and listing put back in — what a render would give, byte for
//! byte (`server/tests/api/topics.rs` compares the two).
//!
//! A template is cut only when the page holds the rows and the serialized listing it was
//! rendered from exactly once each, and it serves only the same viewer (name and staff flag,
//! which the page shows) and a listing of the same shape (page, number of pages, total and
//! filter, which the pager and the filter show). Anything else is rendered as before.

use axum::body::Bytes;
use axum::http::HeaderValue;

use app::error::AppError;
use domain::topics::TopicListing;
use domain::users::User;

/// A rendered page cut around its rows and its serialized listing.
pub struct Template {
    viewer: Viewer,
    shape: Shape,
    before_rows: Bytes,
    between: Bytes,
    after_listing: Bytes,
    pub content_type: HeaderValue,
    pub security_policy: Option<HeaderValue>,
}

/// What of the user the page shows.
#[derive(PartialEq, Eq)]
struct Viewer {
    username: String,
    is_staff: bool,
}

impl Viewer {
    fn of(user: &User) -> Self {
        Viewer {
            username: user.username.clone(),
            is_staff: user.is_staff,
        }
    }
}

/// What of a listing the page shows outside its list.
#[derive(PartialEq, Eq)]
struct Shape {
    page: usize,
    pages: usize,
    total: usize,
    query: String,
}

impl Shape {
    fn of(listing: &TopicListing) -> Self {
        Shape {
            page: listing.page,
            pages: listing.pages,
            total: listing.total,
            query: listing.query.clone(),
        }
    }
}

/// The listing as the page carries it for hydration: the resource's JSON, written as a
/// JavaScript string literal the way Leptos writes resolved resources (`<` replaced by
/// `\u003c`, then the string's `Debug` form).
fn serialized(listing: &TopicListing) -> Option<String> {
    let json = serde_json::to_string(&Ok::<&TopicListing, AppError>(listing)).ok()?;
    quoted_for_script(&json)
}

/// `format!("{:?}", json.replace('<', "\\u003c"))` in one pass when `json` is printable ASCII
/// (as the JSON of ASCII names is): there only `"`, `\` and `<` change. Anything else goes the
/// long way, through `char::escape_debug`.
fn quoted_for_script(json: &str) -> Option<String> {
    if !json.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
        return Some(format!("{:?}", json.replace('<', "\\u003c")));
    }
    let bytes = json.as_bytes();
    let mut quoted = Vec::with_capacity(json.len() + json.len() / 4 + 2);
    quoted.push(b'"');
    let mut run = 0;
    for (at, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'<' => b"\\\\u003c",
            _ => continue,
        };
        quoted.extend_from_slice(&bytes[run..at]);
        quoted.extend_from_slice(escaped);
        run = at + 1;
    }
    quoted.extend_from_slice(&bytes[run..]);
    quoted.push(b'"');
    String::from_utf8(quoted).ok()
}

/// Where `needle` occurs in `haystack` from `from` on, if it occurs there exactly once.
fn find_once(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let at = from + haystack.get(from..)?.find(needle)?;
    let rest = haystack.get(at + 1..)?;
    match rest.find(needle) {
        None => Some(at),
        Some(_) => None,
    }
}

impl Template {
    /// Cuts `page`, rendered for `viewer` from `listing`.
    pub fn cut(
        page: &Bytes,
        listing: &TopicListing,
        viewer: &User,
        content_type: HeaderValue,
        security_policy: Option<HeaderValue>,
    ) -> Option<Self> {
        // An empty list is shown as a sentence, not as rows.
        if listing.topics.is_empty() {
            return None;
        }
        let html = std::str::from_utf8(page).ok()?;
        let rows = app::topics::list_rows_html(&listing.topics, viewer.is_staff);
        let data = serialized(listing)?;
        let rows_at = find_once(html, &rows, 0)?;
        let rows_end = rows_at + rows.len();
        let data_at = find_once(html, &data, rows_end)?;
        let data_end = data_at + data.len();
        Some(Template {
            viewer: Viewer::of(viewer),
            shape: Shape::of(listing),
            before_rows: Bytes::copy_from_slice(&page[..rows_at]),
            between: Bytes::copy_from_slice(&page[rows_end..data_at]),
            after_listing: Bytes::copy_from_slice(&page[data_end..]),
            content_type,
            security_policy,
        })
    }

    /// The page that shows `listing` to `viewer`, if this template can make it.
    pub fn assemble(&self, listing: &TopicListing, viewer: &User) -> Option<Bytes> {
        if self.viewer != Viewer::of(viewer) || self.shape != Shape::of(listing) {
            return None;
        }
        let rows = app::topics::list_rows_html(&listing.topics, viewer.is_staff);
        let data = serialized(listing)?;
        let mut page = Vec::with_capacity(self.bytes() + rows.len() + data.len());
        page.extend_from_slice(&self.before_rows);
        page.extend_from_slice(rows.as_bytes());
        page.extend_from_slice(&self.between);
        page.extend_from_slice(data.as_bytes());
        page.extend_from_slice(&self.after_listing);
        Some(page.into())
    }

    /// The bytes it holds (for the store's budget): the pieces are copied out of the page, so
    /// a template does not keep the whole page alive.
    pub fn bytes(&self) -> usize {
        self.before_rows.len() + self.between.len() + self.after_listing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_quoting_is_the_debug_form_of_the_escaped_json() {
        for json in [
            "",
            "plain",
            r#"{"Ok":{"name":"Fish & \"chips\" <b>","path":"C:\\x"}}"#,
            "\\\\\"\"<<",
            "ends with a quote\"",
            "tab\tand\u{7f}delete <",
            "Café ☕ and a soft\u{ad}hyphen, e\u{301} <",
        ] {
            assert_eq!(
                quoted_for_script(json),
                Some(format!("{:?}", json.replace('<', "\\u003c"))),
                "{json}"
            );
        }
    }
}
