#![allow(dead_code)]
//! Shared helpers of the integration tests.

pub mod http;
pub mod kv_group;
pub mod line_client;
pub mod linearizability;
pub mod process;
pub mod random_crashes;
