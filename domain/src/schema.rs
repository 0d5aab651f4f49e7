//! Diesel's view of the tables. Table and column names are part of the product's contract
//! (the README's "Contract" section).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        is_staff -> Bool,
        created_at -> Timestamp,
        /// NFKC, case-folded: what uniqueness compares (000007; `crate::names::key`).
        username_key -> Nullable<Text>,
        /// Sessions are bound to it: moving it ends them all (000008).
        session_epoch -> BigInt,
    }
}

diesel::table! {
    /// Account changes made outside the servers, which they follow (000008).
    account_changes (id) {
        id -> BigInt,
        user_id -> BigInt,
        change -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    topics (id) {
        id -> BigInt,
        name -> Text,
        /// Kept by triggers on `topic_subscribers` (migration 000005).
        subscriber_count -> BigInt,
        /// Set when a topic is retired: hidden at once, purged in the background (000006).
        deleted_at -> Nullable<Timestamp>,
        /// NFKC, case-folded: what uniqueness among live topics compares (000007).
        name_key -> Nullable<Text>,
        /// Moved with `subscriber_count` by the same triggers, in the same statement: the
        /// order of a topic's counts, whichever instance tells them (000009).
        count_version -> BigInt,
    }
}

diesel::table! {
    topic_subscribers (topic_id, user_id) {
        topic_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    topic_activities (id) {
        id -> BigInt,
        topic_id -> Nullable<BigInt>,
        topic_name -> Text,
        action -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        data -> Binary,
        expiry_date -> BigInt,
    }
}

diesel::joinable!(topic_subscribers -> topics (topic_id));
diesel::joinable!(topic_subscribers -> users (user_id));
diesel::joinable!(topic_activities -> topics (topic_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    topics,
    topic_subscribers,
    topic_activities,
    sessions,
);
