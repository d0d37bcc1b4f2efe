//! One test binary for the client (each file under `tests/` would link separately).
//! Set `TEST_LOG=1` to see the client's logs.

mod fingerprint;
mod grace;
mod helpers;
mod license_file;
mod mock_server;
mod real_server;
mod reports;
