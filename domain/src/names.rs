//! What people type as names (usernames, topic names): the form they are kept in and the key
//! they are compared by.
//!
//! A name is kept in Unicode NFKC form, so that look-alike spellings of the same text (a
//! full-width "Ａ", a composed and a decomposed "é") are one name. Invisible format
//! characters (zero-width spaces, direction overrides, soft hyphens) are refused: two names
//! that look the same must be the same. Uniqueness compares the case-folded key ("ZOË" is
//! "zoë", "STRASSE" is "straße").

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::DomainError;

/// `raw` in NFKC form; refused when it holds an invisible format or control character.
/// `what` names the field in the message ("A username", "A topic name").
pub fn normalized(raw: &str, what: &str) -> Result<String, DomainError> {
    if raw.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "{what} cannot contain control characters."
        )));
    }
    if raw
        .chars()
        .any(|c| c.general_category() == GeneralCategory::Format)
    {
        return Err(DomainError::Invalid(format!(
            "{what} cannot contain invisible characters (such as zero-width spaces or \
             direction marks)."
        )));
    }
    Ok(raw.nfkc().collect())
}

/// The key two names are compared by: equal keys are the same name.
pub fn key(name: &str) -> String {
    let folded = caseless::default_case_fold_str(&name.nfkc().collect::<String>());
    folded.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_spellings_are_one_name() {
        assert_eq!(normalized("ＡＢＣ", "x").ok().as_deref(), Some("ABC"));
        assert_eq!(normalized("e\u{301}", "x").ok().as_deref(), Some("é"));
        assert_eq!(key("ZOË"), key("zoë"));
        assert_eq!(key("STRASSE"), key("straße"));
        assert_eq!(key("Ｐｙｔｈｏｎ"), key("python"));
        assert_ne!(key("Python"), key("Pythons"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused_with_a_reason() {
        for raw in [
            "Py\u{200B}thon",
            "\u{202E}nohtyP",
            "Py\u{AD}thon",
            "\u{FEFF}Python",
        ] {
            let refused = normalized(raw, "A topic name");
            assert!(
                matches!(&refused, Err(DomainError::Invalid(m)) if m.contains("invisible")),
                "{raw:?}: {refused:?}"
            );
        }
        assert!(matches!(
            normalized("Py\u{7}thon", "A topic name"),
            Err(DomainError::Invalid(_))
        ));
    }
}
