//! Sending signals: the registry of receivers, the transaction a change runs in with the
//! signal context it carries, and the post-commit work run once the outermost commit lands.
//! (Receivers take the transaction and the transaction finds the receivers, so the two live
//! in one file.)

use std::collections::HashMap;

use crate::cache::Stale;
use crate::db::{self, Conn};
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::live::Count;

use super::effects::Effects;
use super::events::*;
use super::token::Receiving;

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

/// The registry and what its post-commit work acts on; one per application.
pub struct Signals {
    registry: Registry,
    pub(super) effects: Effects,
}

impl Signals {
    pub fn new(registry: Registry, effects: Effects) -> Self {
        Signals { registry, effects }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

type AfterCommit = Box<dyn FnOnce(&Effects, &Receiving)>;

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
        counts: &[(TopicId, Count)],
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
    let (value, versions) = db::write_transaction_then(
        conn,
        |conn| with_tx(conn, signals, f),
        |(value, work, versions)| {
            run_after_commit(signals, work);
            (value, versions)
        },
    )?;
    tell_versions(signals, versions);
    Ok(value)
}

/// Like [`write`], for signals that change no rows (a logout): a plain transaction that takes
/// no write lock.
pub fn read<R>(
    conn: &mut Conn,
    signals: &Signals,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
) -> Result<R, DomainError> {
    let (value, work, versions) =
        diesel::Connection::transaction(conn, |conn| with_tx(conn, signals, f))?;
    run_after_commit(signals, work);
    tell_versions(signals, versions);
    Ok(value)
}

/// After the commit (PostgreSQL): the versions the transaction moved, told to the cache, the
/// open pages and the other instances.
fn tell_versions(signals: &Signals, versions: Option<VersionsMoved>) {
    if let Some(versions) = versions {
        versions.tell(&signals.effects);
    }
}

/// What an outermost transaction returns: its value, the work its receivers scheduled, and on
/// PostgreSQL the versions it moved in the database.
type Committed<R> = (R, Vec<AfterCommit>, Option<VersionsMoved>);

/// The body of an outermost transaction: `f` with a fresh signal context, returning what it
/// scheduled.
fn with_tx<R>(
    conn: &mut Conn,
    signals: &Signals,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, DomainError>,
) -> Result<Committed<R>, DomainError> {
    let mut tx = Tx::new(conn, &signals.registry);
    let value = f(&mut tx)?;
    let Tx {
        conn,
        mut after_commit,
        stale,
        ..
    } = tx;
    if stale.is_empty() {
        return Ok((value, after_commit, None));
    }
    // Last before the commit: whatever the change's receivers marked stale.
    match conn {
        Conn::Pg(pg) => {
            let bumped = crate::cache::shared::bump(pg, &stale)?;
            // Until this commit's own bumps are told (or it fails), the listener leaves
            // these versions to them.
            let own = signals.effects.cache.expect_own(&bumped.moved);
            let patchable = stale
                .described
                .as_ref()
                .is_some_and(|described| described.covers(&stale));
            let versions = VersionsMoved {
                bumped,
                _own: own,
                described: stale.described,
                patchable,
            };
            Ok((value, after_commit, Some(versions)))
        }
        Conn::Sqlite(_) => {
            after_commit.push(Box::new(move |effects: &Effects, token: &Receiving| {
                effects.invalidate(stale, token)
            }));
            Ok((value, after_commit, None))
        }
    }
}

/// The versions a PostgreSQL change moved in its transaction, told once it has committed.
struct VersionsMoved {
    bumped: crate::cache::shared::Bumped,
    /// Held until they are told (dropped unheard if the transaction fails).
    _own: crate::cache::OwnCommit,
    described: Option<crate::cache::Described>,
    patchable: bool,
}

impl VersionsMoved {
    /// After the commit: the cache, the open pages, the other instances.
    fn tell(self, effects: &Effects) {
        effects.advance_described(
            &self.bumped,
            self.described.as_ref(),
            self.patchable,
            &Receiving::new(),
        );
    }
}

fn run_after_commit(signals: &Signals, work: Vec<AfterCommit>) {
    let token = Receiving::new();
    for job in work {
        job(&signals.effects, &token);
    }
}
