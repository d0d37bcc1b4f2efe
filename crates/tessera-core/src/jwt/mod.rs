//! JWT signing and verification with aws-lc-rs, each key parsed once and pinned to its
//! algorithm. Expiry is deliberately *not* checked here: callers decide with an explicit `now`
//! and their grace rules (see [`crate::expiry`]).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::Algorithm;
use serde::Serialize;

use crate::keys::{KeyError, PrivateKey};

mod verifier;
pub use verifier::Verifier;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not accepted")]
    WrongAlgorithm,
    #[error("token signature is not valid for any trusted key")]
    BadSignature,
    #[error("token key id `{0}` is not trusted")]
    UnknownKeyId(String),
    #[error("token claims are invalid: {0}")]
    BadClaims(String),
    #[error("signing failed")]
    Signing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    EdDSA,
}

impl SigningAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }
}

/// Signs tokens with one private key, parsed once. The JOSE header is pre-encoded.
pub struct Signer {
    key: PrivateKey,
    kid: Option<String>,
    header_b64: String,
    public_spki_der: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish()
    }
}

impl Signer {
    pub fn new(key: PrivateKey, kid: Option<String>) -> Result<Self, KeyError> {
        let alg = match key {
            PrivateKey::Rsa(_) => SigningAlgorithm::RS256,
            PrivateKey::Ed25519(_) => SigningAlgorithm::EdDSA,
        };
        let header = match &kid {
            Some(kid) => serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid}),
            None => serde_json::json!({"alg": alg.as_str(), "typ": "JWT"}),
        };
        let header_b64 = B64.encode(header.to_string());
        let public_spki_der = key.public_spki_der()?;
        Ok(Self {
            key,
            kid,
            header_b64,
            public_spki_der,
        })
    }

    pub fn from_pem(pem: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        Self::new(PrivateKey::from_pem(pem)?, kid)
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match self.key {
            PrivateKey::Rsa(_) => SigningAlgorithm::RS256,
            PrivateKey::Ed25519(_) => SigningAlgorithm::EdDSA,
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn public_pem(&self) -> Result<String, KeyError> {
        self.key.public_pem()
    }

    /// A verifier that trusts exactly this signer's public key.
    pub fn verifier(&self) -> Verifier {
        let mut v = Verifier::default();
        v.trust_der(self.algorithm(), &self.public_spki_der, self.kid.clone());
        v
    }

    /// The public key as a JWK (RFC 7517), for `/.well-known/jwks.json`.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = match &self.key {
            PrivateKey::Rsa(k) => {
                let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig",
                    "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
            PrivateKey::Ed25519(k) => serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "alg": "EdDSA", "use": "sig", "x": B64.encode(k.public_key().as_ref())}),
        };
        if let (Some(kid), Some(obj)) = (&self.kid, jwk.as_object_mut()) {
            obj.insert("kid".into(), serde_json::Value::String(kid.clone()));
        }
        jwk
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Signing)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let signature = match &self.key {
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    token.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| JwtError::Signing)?;
                sig
            }
            PrivateKey::Ed25519(k) => k.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        B64.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::LicenseClaims;
    use crate::keys::{generate_ed25519, generate_rsa};

    /// Shared with the verifier's tests.
    pub(super) fn claims() -> LicenseClaims {
        LicenseClaims {
            sub: "CFG-PRNG-AAAA-BBBB-CCCC".into(),
            product: "peregrine".into(),
            tier: "paid".into(),
            seats: 2,
            machine: "m1".into(),
            iat: 1_000,
            exp: 2_000,
            notice: None,
        }
    }

    #[test]
    fn rs256_round_trip_and_other_key_is_rejected() {
        let signer =
            Signer::from_pem(generate_rsa().unwrap().private_pem.as_bytes(), None).unwrap();
        let token = signer.sign(&claims()).unwrap();
        assert_eq!(
            signer.verifier().decode::<LicenseClaims>(&token).unwrap(),
            claims()
        );

        let other = Signer::from_pem(generate_rsa().unwrap().private_pem.as_bytes(), None).unwrap();
        assert_eq!(
            other.verifier().decode::<LicenseClaims>(&token),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn alg_none_and_hs256_with_the_public_key_are_rejected() {
        let pair = generate_rsa().unwrap();
        let signer = Signer::from_pem(pair.private_pem.as_bytes(), None).unwrap();
        let verifier = signer.verifier();
        let payload = B64.encode(serde_json::to_vec(&claims()).unwrap());

        let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(verifier.decode::<LicenseClaims>(&none).is_err());

        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(pair.public_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.decode::<LicenseClaims>(&hs),
            Err(JwtError::WrongAlgorithm)
        );
    }

    #[test]
    fn eddsa_keys_are_selected_by_kid() {
        let a = Signer::from_pem(
            generate_ed25519().unwrap().private_pem.as_bytes(),
            Some("a".into()),
        )
        .unwrap();
        let b = Signer::from_pem(
            generate_ed25519().unwrap().private_pem.as_bytes(),
            Some("b".into()),
        )
        .unwrap();
        let mut v = Verifier::default();
        v.trust_pem(a.public_pem().unwrap().as_bytes(), Some("a".into()))
            .unwrap();
        v.trust_pem(b.public_pem().unwrap().as_bytes(), Some("b".into()))
            .unwrap();
        assert!(
            v.decode::<LicenseClaims>(&b.sign(&claims()).unwrap())
                .is_ok()
        );
        let c = Signer::from_pem(
            generate_ed25519().unwrap().private_pem.as_bytes(),
            Some("c".into()),
        )
        .unwrap();
        assert_eq!(
            v.decode::<LicenseClaims>(&c.sign(&claims()).unwrap()),
            Err(JwtError::UnknownKeyId("c".into()))
        );
    }

    #[test]
    fn garbage_tokens_are_errors_not_panics() {
        let signer =
            Signer::from_pem(generate_ed25519().unwrap().private_pem.as_bytes(), None).unwrap();
        let v = signer.verifier();
        for t in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJhbGciOiJSUzI1NiJ9..",
            "\u{0}\u{1}",
        ] {
            assert!(v.decode::<LicenseClaims>(t).is_err(), "{t:?}");
        }
    }
}
