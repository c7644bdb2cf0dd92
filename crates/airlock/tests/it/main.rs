//! The end-to-end tests: one test binary, so the test bed in `common` is compiled once. Each module
//! drives the real `airlock` binary against a moto server per test; `cargo test --test it console::`
//! runs one suite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation stops the test where it failed"
)]

mod common;

mod agent;
mod authz;
mod cluster;
mod cluster_limits;
mod commands;
mod console;
mod credentials;
mod ec2_endpoint;
mod fleet;
mod gateway;
mod gateway_http;
mod maintenance_windows;
mod placement;
mod rolls;
mod scale;
mod snapshot_policies;
mod throttling;
mod web;
