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

pub mod account_changes;
pub mod announce;
mod dispatch;
mod effects;
mod events;
pub mod receivers;
pub mod remote;
pub mod token;

pub use dispatch::{read, write, ReceiverFn, Registry, Signal, Signals, Slot, Tx};
pub use effects::Effects;
pub use events::{
    AccountChange, AccountChanged, M2mAction, M2mChanged, M2mSide, PostDelete, PostSave, PreDelete,
    TopicAction, TopicChanged, TopicRecord, UserLoggedOut,
};
pub use token::Receiving;

#[cfg(test)]
mod tests;
