//! PEM key loading and key generation. Keys are parsed once; signing reuses the parsed key.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM file: {0}")]
    NotPem(String),
    #[error(
        "encrypted private keys are not supported; decrypt it first (openssl pkey -in key.pem -out plain.pem)"
    )]
    Encrypted,
    #[error("unsupported key ({0}); use an RSA (2048 bits or more) or Ed25519 key")]
    Unsupported(String),
    #[error("key generation failed")]
    Generation,
}

/// A parsed private key, ready to sign.
pub enum PrivateKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for PrivateKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKey::Rsa(_) => f.write_str("PrivateKey::Rsa(..)"),
            PrivateKey::Ed25519(_) => f.write_str("PrivateKey::Ed25519(..)"),
        }
    }
}

impl PrivateKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or Ed25519) or PKCS#1
    /// (`RSA PRIVATE KEY`, as `openssl genrsa` writes it).
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, KeyError> {
        let block = pem::parse(pem_bytes).map_err(|e| KeyError::NotPem(e.to_string()))?;
        match block.tag() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents())
                .map(PrivateKey::Rsa)
                .map_err(|e| KeyError::Unsupported(e.to_string())),
            "PRIVATE KEY" => {
                if let Ok(k) = RsaKeyPair::from_pkcs8(block.contents()) {
                    return Ok(PrivateKey::Rsa(k));
                }
                Ed25519KeyPair::from_pkcs8(block.contents())
                    .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(block.contents()))
                    .map(PrivateKey::Ed25519)
                    .map_err(|e| KeyError::Unsupported(e.to_string()))
            }
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
            other => Err(KeyError::Unsupported(format!("PEM block `{other}`"))),
        }
    }

    /// The public half as SubjectPublicKeyInfo DER (what `BEGIN PUBLIC KEY` holds).
    pub fn public_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        let der = match self {
            PrivateKey::Rsa(k) => {
                AsDer::<PublicKeyX509Der>::as_der(k.public_key()).map(|d| d.as_ref().to_vec())
            }
            PrivateKey::Ed25519(k) => {
                AsDer::<PublicKeyX509Der>::as_der(k.public_key()).map(|d| d.as_ref().to_vec())
            }
        };
        der.map_err(|_| KeyError::Unsupported("cannot encode public key".into()))
    }

    pub fn public_pem(&self) -> Result<String, KeyError> {
        Ok(to_pem("PUBLIC KEY", self.public_spki_der()?))
    }
}

fn to_pem(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A freshly generated key pair as PEM text: (private PKCS#8, public SPKI).
pub struct GeneratedKeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

impl std::fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

pub fn generate_rsa() -> Result<GeneratedKeyPair, KeyError> {
    let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
    let private = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(|_| KeyError::Generation)?;
    let private_pem = to_pem("PRIVATE KEY", private.as_ref().to_vec());
    let public_pem = PrivateKey::Rsa(key).public_pem()?;
    Ok(GeneratedKeyPair {
        private_pem,
        public_pem,
    })
}

pub fn generate_ed25519() -> Result<GeneratedKeyPair, KeyError> {
    let key = Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
    let private = key.to_pkcs8v1().map_err(|_| KeyError::Generation)?;
    let private_pem = to_pem("PRIVATE KEY", private.as_ref().to_vec());
    let public_pem = PrivateKey::Ed25519(key).public_pem()?;
    Ok(GeneratedKeyPair {
        private_pem,
        public_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for pair in [generate_rsa().unwrap(), generate_ed25519().unwrap()] {
            let parsed = PrivateKey::from_pem(pair.private_pem.as_bytes()).unwrap();
            assert_eq!(parsed.public_pem().unwrap(), pair.public_pem);
            assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        }
    }

    #[test]
    fn garbage_and_encrypted_keys_are_refused_with_a_reason() {
        assert!(matches!(
            PrivateKey::from_pem(b"hello"),
            Err(KeyError::NotPem(_))
        ));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(enc.as_bytes()),
            Err(KeyError::Encrypted)
        ));
    }
}
