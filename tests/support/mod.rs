#![allow(dead_code)]
//! Shared helpers of the integration tests.

pub mod appends;
pub mod checker;
pub mod cluster;
pub mod http;
pub mod kv_group;
pub mod launcher;
pub mod line_client;
pub mod line_ops;
pub mod linearizability;
pub mod netns;
pub mod process;
pub mod random_crashes;
pub mod resp;
pub mod seed;
pub mod small_fs;
pub mod tls;
pub mod workload;
