//! The signal registry: typed events sent from inside a mutation's transaction, and the
//! receivers connected to them at start-up (see [`receivers::ready`]).
//!
//! The data path of every mutation:
//!
//! ```text
//! handler ─► domain call ─► signals::write ─► BEGIN
//!                                             ├─ change rows
//!                                             ├─ tx.send(signal) ─► receivers (activity rows,
//!                                             │                     capture ids, schedule work)
//!                                             COMMIT (or ROLLBACK: scheduled work is dropped)
//!                                             └─► post-commit work (cache invalidation, log line)
//! ```
//!
//! Receivers are the only code that can write activity rows or invalidate the cache: both need
//! a [`Receiving`] token, which only this module can make.

use std::collections::HashMap;
use std::fmt;

use crate::cache::{Described, Stale, TopicCache};
use crate::db::{self, Conn};
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::live::{LiveEvent, LiveHub};

pub mod account_changes;
pub mod receivers;
pub mod remote;
pub mod token;

pub use token::Receiving;

/// A topic as signals carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub id: TopicId,
    pub name: String,
}

/// Sent after a topic row is inserted or updated.
#[derive(Debug, Clone)]
pub struct PostSave {
    pub topic: TopicRecord,
    pub created: bool,
}

/// Sent before a topic row is deleted, while its subscriptions still exist.
#[derive(Debug, Clone)]
pub struct PreDelete {
    pub topic: TopicRecord,
}

/// Sent after a topic row is deleted (its subscriptions went with it, by CASCADE).
#[derive(Debug, Clone)]
pub struct PostDelete {
    pub topic: TopicRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mAction {
    PreAdd,
    PostAdd,
    PreRemove,
    PostRemove,
    PreClear,
    PostClear,
}

/// Which end of the topic–subscriber relation the change was made from: Django's `instance`
/// and `pk_set`, typed. For `PostClear` the ids are those captured at `PreClear`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum M2mSide {
    /// `topic.subscribers`: the topic, and the users that changed.
    TopicSubscribers { topic: TopicId, users: Vec<UserId> },
    /// `user.topics`: the user, and the topics that changed.
    UserTopics { user: UserId, topics: Vec<TopicId> },
}

/// A change of the topic–subscriber relation.
#[derive(Debug, Clone)]
pub struct M2mChanged {
    pub action: M2mAction,
    pub side: M2mSide,
}

impl M2mChanged {
    /// The users whose own topic lists this change touches, whichever side started it.
    pub fn affected_users(&self) -> Vec<UserId> {
        match &self.side {
            M2mSide::TopicSubscribers { users, .. } => users.clone(),
            M2mSide::UserTopics { user, .. } => vec![*user],
        }
    }

    /// The topics whose subscriber counts this change touches.
    pub fn affected_topics(&self) -> Vec<TopicId> {
        match &self.side {
            M2mSide::TopicSubscribers { topic, .. } => vec![*topic],
            M2mSide::UserTopics { topics, .. } => topics.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAction {
    Created,
    Updated,
    Deleted,
}

impl TopicAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicAction::Created => "created",
            TopicAction::Updated => "updated",
            TopicAction::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TopicAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our custom signal, sent by the `post_save` and `post_delete` receivers.
#[derive(Debug, Clone)]
pub struct TopicChanged {
    pub topic_id: TopicId,
    pub action: TopicAction,
}

/// Sent when a user logs out.
#[derive(Debug, Clone)]
pub struct UserLoggedOut {
    pub user_id: UserId,
}

/// What an administrator changed about an account (`server make-staff` and its kin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    StaffGranted,
    StaffRevoked,
    SessionsEnded,
    Deleted,
}

impl AccountChange {
    /// As stored in `account_changes.change`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountChange::StaffGranted => "staff_granted",
            AccountChange::StaffRevoked => "staff_revoked",
            AccountChange::SessionsEnded => "sessions_ended",
            AccountChange::Deleted => "deleted",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            AccountChange::StaffGranted,
            AccountChange::StaffRevoked,
            AccountChange::SessionsEnded,
            AccountChange::Deleted,
        ]
        .into_iter()
        .find(|change| change.as_str() == stored)
    }

    /// Whether the user is signed out everywhere by it.
    pub fn ends_sessions(self) -> bool {
        matches!(self, AccountChange::SessionsEnded | AccountChange::Deleted)
    }
}

/// Sent when an account's rights or sessions change, or it is deleted.
#[derive(Debug, Clone, Copy)]
pub struct AccountChanged {
    pub user_id: UserId,
    pub change: AccountChange,
}

/// A receiver function. It runs inside the transaction of the change that sent the signal;
/// an error rolls the change back. The token lets it write activity rows.
pub type ReceiverFn<S> = fn(&mut Tx<'_>, &S, &Receiving) -> Result<(), DomainError>;

/// The receivers of one signal, in connection order.
pub struct Slot<S> {
    receivers: Vec<(&'static str, ReceiverFn<S>)>,
}

impl<S> Default for Slot<S> {
    fn default() -> Self {
        Slot {
            receivers: Vec::new(),
        }
    }
}

impl<S> Slot<S> {
    /// Connects `receiver` under `dispatch_uid`; connecting the same uid again is a no-op.
    pub fn connect(&mut self, dispatch_uid: &'static str, receiver: ReceiverFn<S>) {
        if !self.receivers.iter().any(|(uid, _)| *uid == dispatch_uid) {
            self.receivers.push((dispatch_uid, receiver));
        }
    }

    pub fn len(&self) -> usize {
        self.receivers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Calls every receiver in order; the first failure stops the send and is returned.
    fn send(&self, tx: &mut Tx<'_>, signal: &S) -> Result<(), DomainError> {
        let token = Receiving::new();
        for (_, receiver) in &self.receivers {
            receiver(tx, signal, &token)?;
        }
        Ok(())
    }
}

/// Every signal of the product, with its receivers.
#[derive(Default)]
pub struct Registry {
    pub post_save: Slot<PostSave>,
    pub pre_delete: Slot<PreDelete>,
    pub post_delete: Slot<PostDelete>,
    pub m2m_changed: Slot<M2mChanged>,
    pub topic_changed: Slot<TopicChanged>,
    pub user_logged_out: Slot<UserLoggedOut>,
    pub account_changed: Slot<AccountChanged>,
}

/// A signal type knows its slot in the registry.
pub trait Signal: Sized {
    fn slot(registry: &Registry) -> &Slot<Self>;
}

macro_rules! signal_slot {
    ($($ty:ty => $field:ident),* $(,)?) => {
        $(impl Signal for $ty {
            fn slot(registry: &Registry) -> &Slot<Self> {
                &registry.$field
            }
        })*
    };
}

signal_slot!(
    PostSave => post_save,
    PreDelete => pre_delete,
    PostDelete => post_delete,
    M2mChanged => m2m_changed,
    TopicChanged => topic_changed,
    UserLoggedOut => user_logged_out,
    AccountChanged => account_changed,
);

/// What post-commit work acts on: the cache, and the live hub that tells open pages about
/// every version the cache moved.
pub struct Effects {
    cache: TopicCache,
    live: LiveHub,
}

impl Effects {
    pub fn new(cache: TopicCache, live: LiveHub) -> Self {
        Effects { cache, live }
    }

    /// Drops the users' cached lists and tells their open pages.
    pub fn invalidate_users(&self, user_ids: &[UserId], token: &Receiving) {
        for bump in self.cache.invalidate_users(user_ids, token) {
            self.live.publish(bump);
        }
    }

    /// Drops the shared catalog and tells every open page.
    pub fn invalidate_catalog(&self, token: &Receiving) {
        self.live.publish(self.cache.invalidate_catalog(token));
    }

    /// What a committed change made stale, in memory (SQLite): drops it and tells the open
    /// pages, with what moved when the change said. A change that said how it moved
    /// subscriptions patches the cached entries instead of dropping them: under a steady
    /// trickle of subscribes the next page needs no read of the database.
    fn invalidate(&self, stale: Stale, token: &Receiving) {
        let bumps = match &stale.described {
            Some(described) if described.covers(&stale) => {
                self.cache
                    .apply_subscriptions(&described.counts, &described.flags, token)
            }
            _ => {
                let users = Vec::from_iter(stale.users);
                let mut bumps = self.cache.invalidate_users(&users, token);
                if stale.catalog {
                    bumps.push(self.cache.invalidate_catalog(token));
                }
                bumps
            }
        };
        self.publish_all(bumps, stale.described.as_ref());
    }

    /// [`Self::advance`] for this instance's own commit, which can say what moved: then the
    /// cached entries it moved are patched where they are one version behind.
    fn advance_described(
        &self,
        moved: &crate::cache::shared::Moved,
        described: Option<&Described>,
        patchable: bool,
        token: &Receiving,
    ) {
        let bumps = match described {
            Some(described) if patchable => {
                self.cache
                    .advance_patching(moved, &described.counts, &described.flags, token)
            }
            _ => self.cache.advance(moved, token),
        };
        self.publish_all(bumps, described);
    }

    fn publish_all(&self, bumps: Vec<LiveEvent>, described: Option<&Described>) {
        for bump in bumps {
            self.live.publish(match described {
                Some(described) => described.tell(bump),
                None => bump,
            });
        }
    }

    /// Moves the cache to the versions a committed change gave in the database, heard through
    /// it, and tells the open pages (less this instance's own commits, which tell them
    /// themselves).
    pub fn advance(&self, moved: &crate::cache::shared::Moved, token: &Receiving) {
        for bump in self.cache.advance_heard(moved, token) {
            self.live.publish(bump);
        }
    }

    /// Ends the open pages' streams of a user who logged out.
    pub fn end_user_streams(&self, user_id: UserId, token: &Receiving) {
        self.live.end_user_streams(user_id, token);
    }
}

type AfterCommit = Box<dyn FnOnce(&Effects, &Receiving)>;

/// The registry and what its post-commit work acts on; one per application.
pub struct Signals {
    registry: Registry,
    effects: Effects,
}

impl Signals {
    pub fn new(registry: Registry, effects: Effects) -> Self {
        Signals { registry, effects }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// An open transaction with its signal context: send signals, schedule post-commit work,
/// open nested savepoints.
pub struct Tx<'c> {
    conn: &'c mut Conn,
    registry: &'c Registry,
    after_commit: Vec<AfterCommit>,
    /// Subscriber ids of topics about to be deleted, captured at `pre_delete`.
    captured_subscribers: HashMap<TopicId, Vec<UserId>>,
    /// What the change makes stale, invalidated when it commits.
    stale: Stale,
}

impl<'c> Tx<'c> {
    fn new(conn: &'c mut Conn, registry: &'c Registry) -> Self {
        Tx {
            conn,
            registry,
            after_commit: Vec::new(),
            captured_subscribers: HashMap::new(),
            stale: Stale::default(),
        }
    }

    pub fn conn(&mut self) -> &mut Conn {
        self.conn
    }

    /// Runs the receivers of `signal` now, inside this transaction.
    pub fn send<S: Signal>(&mut self, signal: &S) -> Result<(), DomainError> {
        let registry = self.registry;
        S::slot(registry).send(self, signal)
    }

    /// Schedules `work` for after the outermost commit; it is dropped if the transaction (or
    /// the savepoint it was scheduled in) rolls back. Only receivers can use the token.
    pub fn on_commit(&mut self, work: impl FnOnce(&Effects, &Receiving) + 'static) {
        self.after_commit.push(Box::new(work));
    }

    /// Marks the users' cached lists stale as of this change's commit (and tells their open
    /// pages). Dropped if the transaction, or the savepoint it ran in, rolls back.
    pub fn invalidate_users(&mut self, user_ids: &[UserId], _: &Receiving) {
        self.stale.users.extend(user_ids.iter().copied());
        self.stale.described = None;
    }

    /// Marks the shared catalog stale as of this change's commit (and tells every open page).
    pub fn invalidate_catalog(&mut self, _: &Receiving) {
        self.stale.catalog = true;
        self.stale.described = None;
    }

    /// Marks stale what a change of subscriptions moved, saying how, so that open pages can
    /// patch their rows: the topics' `counts` and the users' `flags` (subscribed or not) as
    /// read in this transaction, after the change.
    pub fn subscriptions_moved(
        &mut self,
        counts: &[(TopicId, i64)],
        flags: &[(UserId, TopicId, bool)],
        _: &Receiving,
    ) {
        self.stale.catalog = true;
        self.stale
            .users
            .extend(flags.iter().map(|&(user, _, _)| user));
        if let Some(described) = &mut self.stale.described {
            described.counts.extend(counts.iter().copied());
            for &(user, topic, subscribed) in flags {
                described
                    .flags
                    .entry(user)
                    .or_default()
                    .insert(topic, subscribed);
            }
        }
    }

    pub(crate) fn capture_subscribers(&mut self, topic_id: TopicId, user_ids: Vec<UserId>) {
        self.captured_subscribers.insert(topic_id, user_ids);
    }

    pub(crate) fn captured_subscribers(&mut self, topic_id: TopicId) -> Option<Vec<UserId>> {
        self.captured_subscribers.remove(&topic_id)
    }

    /// Runs `f` in a savepoint. On success its scheduled work joins this transaction's; on
    /// failure the savepoint rolls back and its scheduled work is dropped.
    pub fn atomic<R>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
    ) -> Result<R, DomainError> {
        let registry = self.registry;
        let captured = &mut self.captured_subscribers;
        let (value, work) = diesel::Connection::transaction(self.conn, |conn| {
            let mut inner = Tx::new(conn, registry);
            inner.captured_subscribers = std::mem::take(captured);
            let value = f(&mut inner);
            *captured = std::mem::take(&mut inner.captured_subscribers);
            value.map(|value| (value, (inner.after_commit, inner.stale)))
        })?;
        let (work, stale) = work;
        self.after_commit.extend(work);
        self.stale.merge(stale);
        Ok(value)
    }
}

/// Runs a mutation in a write transaction; after it commits, runs the work its receivers
/// scheduled. Nothing scheduled runs when it rolls back.
pub fn write<R>(
    conn: &mut Conn,
    signals: &Signals,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
) -> Result<R, DomainError> {
    // The post-commit work runs in commit order: what a change tells open pages must not
    // overtake what the change before it tells them.
    db::write_transaction_then(
        conn,
        |conn| with_tx(conn, signals, f),
        |(value, work)| {
            run_after_commit(signals, work);
            value
        },
    )
}

/// Like [`write`], for signals that change no rows (a logout): a plain transaction that takes
/// no write lock.
pub fn read<R>(
    conn: &mut Conn,
    signals: &Signals,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
) -> Result<R, DomainError> {
    let (value, work) = diesel::Connection::transaction(conn, |conn| with_tx(conn, signals, f))?;
    run_after_commit(signals, work);
    Ok(value)
}

/// The body of an outermost transaction: `f` with a fresh signal context, returning what it
/// scheduled.
fn with_tx<R>(
    conn: &mut Conn,
    signals: &Signals,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
) -> Result<(R, Vec<AfterCommit>), DomainError> {
    let mut tx = Tx::new(conn, &signals.registry);
    let value = f(&mut tx)?;
    let Tx {
        conn,
        mut after_commit,
        stale,
        ..
    } = tx;
    if !stale.is_empty() {
        // Last before the commit: whatever the change's receivers marked stale.
        let invalidate = match conn {
            Conn::Pg(pg) => {
                let moved = crate::cache::shared::bump(pg, &stale)?;
                // Until this commit's own bumps are told (or it fails), the listener leaves
                // these versions to them.
                let own = signals.effects.cache.expect_own(&moved);
                let patchable = stale
                    .described
                    .as_ref()
                    .is_some_and(|described| described.covers(&stale));
                let described = stale.described;
                Box::new(move |effects: &Effects, token: &Receiving| {
                    effects.advance_described(&moved, described.as_ref(), patchable, token);
                    drop(own);
                }) as AfterCommit
            }
            Conn::Sqlite(_) => Box::new(move |effects: &Effects, token: &Receiving| {
                effects.invalidate(stale, token)
            }),
        };
        after_commit.push(invalidate);
    }
    Ok((value, after_commit))
}

fn run_after_commit(signals: &Signals, work: Vec<AfterCommit>) {
    let token = Receiving::new();
    for job in work {
        job(&signals.effects, &token);
    }
}

#[cfg(test)]
mod tests;
