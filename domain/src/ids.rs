//! Typed ids: a user id and a topic id are both numbers in the database, but swapping them in
//! a call is a bug the compiler should catch.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[cfg_attr(
            feature = "server",
            derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)
        )]
        #[cfg_attr(feature = "server", diesel(sql_type = diesel::sql_types::BigInt))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        /// Parses the decimal form used in URLs.
        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                raw.parse().map($name)
            }
        }

        #[cfg(feature = "server")]
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.0.to_sql(out)
            }
        }

        #[cfg(feature = "server")]
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                i64::from_sql(bytes).map($name)
            }
        }
    };
}

id_type!(
    /// The id of a row of `users`.
    UserId
);
id_type!(
    /// The id of a row of `topics`.
    TopicId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_plain_numbers() {
        assert_eq!(serde_json::to_string(&TopicId(7)).ok(), Some("7".into()));
        assert_eq!(serde_json::from_str::<UserId>("12").ok(), Some(UserId(12)));
        assert_eq!("42".parse::<TopicId>().ok(), Some(TopicId(42)));
        assert!("4x".parse::<TopicId>().is_err());
        assert_eq!(TopicId(3).to_string(), "3");
    }
}
