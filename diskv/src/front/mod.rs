//! The front doors: the HTTP API and the Redis protocol, each running the store's
//! operations through a pool of Clerks, and what they share: who may use them
//! ([`access`]) and how one runs in the background ([`running`]).

pub mod access;
pub mod http;
pub mod resp;
pub mod running;
