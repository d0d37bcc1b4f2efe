//! One test binary for the client (each file under `tests/` would link separately).
//! Set `TEST_LOG=1` to see the client's logs.

// Test code: a failed unwrap is a failed test. (clippy's allow-*-in-tests covers `#[test]`
// functions but not the shared helpers of an integration-test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apikey_cache;
mod apikey_fetch;
mod apikey_helpers;
mod apikey_manager;
mod apikey_real_server;
mod fingerprint;
mod grace;
mod helpers;
mod license_file;
mod mock_server;
mod real_server;
mod reports;
