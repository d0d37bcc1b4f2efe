//! One integration-test binary: each test starts the real server on a real socket and talks
//! HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod apikeys;
mod bad_input;
mod console;
mod durability;
mod helpers;
mod operations;
mod public;
mod replicas;
mod seed_bugs;
