//! A linearizability checker for histories of diskv client operations.
//!
//! Integration tests record what their clients did with a [`History`] — each operation's
//! invocation, and its reply or the fact that it never came — and ask [`check`] whether
//! some order of the operations, one that respects real time, explains every reply.
//!
//! # How it checks
//!
//! * **Per key.** Linearizability is local (Herlihy & Wing 1990): a history is
//!   linearizable iff each key's sub-history is. So the history is split by key and each
//!   key is searched on its own, with the model state `Option<String>` (`None` = missing).
//!   A `Scan` becomes a read of every key in its range that the history mentions
//!   ([`expand_scan`]); a `Clear` becomes a `Delete` of every such key whose reply is
//!   ignored. The per-key check therefore does *not* require a Clear or a Scan to be
//!   atomic across keys, only to act on each key at one point inside its interval.
//! * **Search.** Wing & Gong's search with Lowe's memoization ("Testing for
//!   linearizability", 2017), as used by Porcupine: the call and return events sorted by
//!   time in a doubly linked list; repeatedly linearize a call that comes before the
//!   first return still in the list, if the model accepts its reply, and remove it and
//!   its return from the list; when a return is reached first, undo the last choice.
//!   A set of (linearized operations, model state) pairs already explored prunes the
//!   search; three more sound prunings (see `Search`) handle many concurrent reads,
//!   concurrent appends and many unknown outcomes.
//! * **Unknown outcomes.** An operation that timed out or never returned may or may not
//!   have taken effect, at any time after its invocation. Its return time is +∞ and a
//!   write of that kind accepts any reply ([`KeyRet::Any`]). A write that never took
//!   effect is explained by linearizing it at the very end, after every other
//!   operation, where it changes nothing anyone observed (so the search stops as soon as
//!   every operation with a reply is placed); reads with no reply observe nothing and
//!   are left out.
//! * **Explanations.** When a key fails, its history is shrunk with steps that keep it
//!   failing and are sound (if the shrunk history fails, so does the original): cut it
//!   at the earliest return at which it already fails, which names the first reply no
//!   order explains, then drop the reads the failure does not need. The explanation
//!   shows that reply, the values the key could have had when it took effect, and the
//!   operations that led there.
//!
//! Files: `history.rs` (what a test records), `model.rs` (one key's model),
//! `options.rs` (the budget per key), `search.rs` (the search), `explain.rs` (the
//! report of a violation), `check.rs` (the entry points and the split by key):
//! each file imports only those before it.

mod check;
mod explain;
mod history;
mod model;
mod options;
mod search;

pub use check::*;
pub use history::*;
pub use model::*;
pub use options::CheckOptions;
