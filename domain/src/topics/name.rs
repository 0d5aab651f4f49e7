//! The topic name: what a person may call a topic, checked once at the boundary.

use crate::db;
use crate::error::DomainError;
use crate::names;

pub const NAME_MAX: usize = 100;

/// A topic name: trimmed, 1–100 characters, in NFKC form (`crate::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicName(String);

impl TopicName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let normalized = names::normalized(raw.trim(), "A topic name")?;
        let name = normalized.trim();
        if name.is_empty() {
            return Err(DomainError::Invalid("Please give the topic a name.".into()));
        }
        if name.chars().count() > NAME_MAX {
            return Err(DomainError::Invalid(format!(
                "A topic name has at most {NAME_MAX} characters."
            )));
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness among live topics compares.
    pub fn key(&self) -> String {
        names::key(&self.0)
    }
}

/// A unique violation on `topics.name` means the name is taken (in any letter case).
pub(super) fn name_error(err: diesel::result::Error, name: &TopicName) -> DomainError {
    if db::is_unique_violation(&err) {
        DomainError::Conflict(format!("A topic named “{}” exists already.", name.as_str()))
    } else {
        DomainError::from(err)
    }
}
