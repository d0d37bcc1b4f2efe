//! Tessera's shared domain. Everything here is pure: no files, no sockets, no clock.
//! Time is always a parameter (`now`), so expiry decisions are deterministic in tests.

pub mod apikey;
pub mod catalog;
pub mod claims;
pub mod clock;
pub mod error;
pub mod expiry;
pub mod jwt;
pub mod keyfmt;
pub mod keys;
pub mod timefmt;
pub mod validate;
pub mod wire;

pub use claims::LicenseClaims;
pub use error::{ErrorBody, ErrorCode};
pub use jwt::{JwtError, Signer, Verifier};
