//! The client side: the [`Clerk`](clerk::Clerk), which routes each operation to
//! the group owning its key and retries until it is done, and the request side of
//! the line protocol that `diskv client` reads from stdin; and the operator's
//! side: the cluster survey (`diskv admin status`) and replica-set changes
//! (`diskv admin replica ...`).

pub mod clerk;
pub mod line;
pub mod replicas;
pub mod survey;
