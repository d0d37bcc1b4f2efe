//! Small helpers for secrets: digests and random tokens. Secrets are never logged or `Debug`-printed.

use aws_lc_rs::digest;

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

pub fn fill_random(buf: &mut [u8]) {
    // aws-lc's DRBG only fails if the OS entropy source is gone; nothing sensible to do then.
    if aws_lc_rs::rand::fill(buf).is_err() {
        tracing::error!("system random number generator failed");
        std::process::abort();
    }
}

/// A URL-safe random token with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    hex::encode(buf)
}

/// A secret string whose `Debug` does not show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}
