//! JWT signing (aws-lc-rs, key parsed once) and verification (jsonwebtoken, algorithm pinned
//! per key). Expiry is deliberately *not* checked here: callers decide with an explicit `now`
//! and their grace rules (see [`crate::expiry`]).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{KeyError, PrivateKey};

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

struct TrustedKey {
    kid: Option<String>,
    alg: SigningAlgorithm,
    key: DecodingKey,
}

/// Verifies tokens against a fixed set of trusted public keys. Each key accepts only its own
/// algorithm, so `alg: none`, HS256 keyed with a public key, or RS/Ed confusion all fail.
#[derive(Default)]
pub struct Verifier {
    keys: Vec<TrustedKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Verifier {
    /// Trusts a public key given as PEM (`BEGIN PUBLIC KEY` for RSA or Ed25519, or
    /// `BEGIN RSA PUBLIC KEY`).
    pub fn trust_pem(&mut self, pem_bytes: &[u8], kid: Option<String>) -> Result<(), KeyError> {
        let block = pem::parse(pem_bytes).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem_bytes) {
            (SigningAlgorithm::RS256, k)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem_bytes) {
            (SigningAlgorithm::EdDSA, k)
        } else {
            return Err(KeyError::Unsupported(format!(
                "public key PEM `{}`",
                block.tag()
            )));
        };
        self.keys.push(TrustedKey { kid, alg, key });
        Ok(())
    }

    /// Trusts a key published as a JWK (e.g. from `/.well-known/jwks.json`). Only RSA and
    /// Ed25519 keys are accepted, each pinned to its own algorithm.
    pub fn trust_jwk(&mut self, jwk: &jsonwebtoken::jwk::Jwk) -> Result<(), KeyError> {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let alg = match &jwk.algorithm {
            P::RSA(_) => SigningAlgorithm::RS256,
            P::OctetKeyPair(p) if p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519 => {
                SigningAlgorithm::EdDSA
            }
            _ => return Err(KeyError::Unsupported("JWK type".into())),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Unsupported(e.to_string()))?;
        self.keys.push(TrustedKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
        Ok(())
    }

    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, KeyError> {
        let mut v = Self::default();
        v.trust_pem(pem_bytes, None)?;
        Ok(v)
    }

    fn trust_der(&mut self, alg: SigningAlgorithm, spki_der: &[u8], kid: Option<String>) {
        let key = match alg {
            // jsonwebtoken's RSA DER form is PKCS#1; the PEM path handles SPKI, so go via PEM.
            SigningAlgorithm::RS256 => {
                match DecodingKey::from_rsa_pem(to_public_pem(spki_der).as_bytes()) {
                    Ok(k) => k,
                    Err(_) => return,
                }
            }
            SigningAlgorithm::EdDSA => {
                match DecodingKey::from_ed_pem(to_public_pem(spki_der).as_bytes()) {
                    Ok(k) => k,
                    Err(_) => return,
                }
            }
        };
        self.keys.push(TrustedKey { kid, alg, key });
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the signature and decodes the claims. Does not check `exp`: see [`crate::expiry`].
    pub fn decode<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        if token.len() > 16 * 1024 {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| classify(&e))?;
        let candidates = self.keys.iter().filter(|k| k.alg.jwt() == header.alg);
        let mut tried_any = false;
        for trusted in candidates {
            if let (Some(want), Some(have)) = (&header.kid, &trusted.kid)
                && want != have
            {
                continue;
            }
            tried_any = true;
            let mut validation = Validation::new(trusted.alg.jwt());
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            match jsonwebtoken::decode::<C>(token, &trusted.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match classify(&e) {
                    JwtError::BadSignature => continue,
                    other => return Err(other),
                },
            }
        }
        match (tried_any, header.kid) {
            (false, Some(kid)) if self.keys.iter().any(|k| k.alg.jwt() == header.alg) => {
                Err(JwtError::UnknownKeyId(kid))
            }
            (false, _) => Err(JwtError::WrongAlgorithm),
            (true, _) => Err(JwtError::BadSignature),
        }
    }
}

fn to_public_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
}

fn classify(e: &jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => JwtError::BadSignature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => JwtError::WrongAlgorithm,
        K::Json(inner) => JwtError::BadClaims(inner.to_string()),
        _ => JwtError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::LicenseClaims;
    use crate::keys::{generate_ed25519, generate_rsa};

    fn claims() -> LicenseClaims {
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
