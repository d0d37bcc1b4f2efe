//! JWT signing and verification: what one activation (RS256) or one API-key token fetch
//! (EdDSA) costs in CPU, and what parsing the private key per call — as the seed did — adds.
//!
//! `cargo bench -p tessera-core --bench signing`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tessera_core::keys::{GeneratedKeyPair, generate_ed25519, generate_rsa};
use tessera_core::{LicenseClaims, Signer, Verifier};

fn claims() -> LicenseClaims {
    LicenseClaims {
        sub: "CFG-PRNG-7K2M-QX9D-4HTB".to_string(),
        product: "peregrine".to_string(),
        tier: "paid".to_string(),
        seats: 5,
        machine: "9f0c2b7e-5d1a-4c3e-8b6f-2a7d9e4c1b05".to_string(),
        iat: 1_795_000_000,
        exp: 1_797_592_000,
        notice: None,
    }
}

/// A signer, its verifier and one token it signed; `None` (with a message) if any step fails,
/// so a broken setup skips the benchmark instead of measuring nonsense.
fn setup(
    name: &str,
    generate: fn() -> Result<GeneratedKeyPair, tessera_core::keys::KeyError>,
) -> Option<(GeneratedKeyPair, Signer, Verifier, String)> {
    let pair = generate()
        .map_err(|e| eprintln!("{name}: key generation failed: {e}"))
        .ok()?;
    let signer = Signer::from_pem(pair.private_pem.as_bytes(), Some("bench".to_string()))
        .map_err(|e| eprintln!("{name}: cannot load the key: {e}"))
        .ok()?;
    let token = signer
        .sign(&claims())
        .map_err(|e| eprintln!("{name}: signing failed: {e}"))
        .ok()?;
    let verifier = signer.verifier();
    match verifier.decode::<LicenseClaims>(&token) {
        Ok(decoded) if decoded == claims() => Some((pair, signer, verifier, token)),
        Ok(_) => {
            eprintln!("{name}: the token decodes to other claims");
            None
        }
        Err(e) => {
            eprintln!("{name}: verification failed: {e}");
            None
        }
    }
}

fn rs256(c: &mut Criterion) {
    let Some((pair, signer, verifier, token)) = setup("RS256", generate_rsa) else {
        return;
    };
    let claims = claims();
    let mut group = c.benchmark_group("rs256");
    group.bench_function("sign (Signer, key parsed once)", |b| {
        b.iter(|| black_box(signer.sign(black_box(&claims))))
    });
    group.bench_function("verify (Verifier::decode)", |b| {
        b.iter(|| black_box(verifier.decode::<LicenseClaims>(black_box(&token))))
    });
    let pem = pair.private_pem.as_bytes();
    let header = Header::new(Algorithm::RS256);
    match EncodingKey::from_rsa_pem(pem) {
        Ok(parsed_once) => {
            group.bench_function("jsonwebtoken::encode (key parsed once)", |b| {
                b.iter(|| black_box(jsonwebtoken::encode(&header, &claims, &parsed_once)))
            });
            group.bench_function("jsonwebtoken::encode (PEM parsed per call, seed)", |b| {
                b.iter(|| {
                    let key = EncodingKey::from_rsa_pem(black_box(pem));
                    black_box(key.and_then(|k| jsonwebtoken::encode(&header, &claims, &k)))
                })
            });
        }
        Err(e) => eprintln!("RS256: jsonwebtoken cannot read the PEM key: {e}"),
    }
    group.finish();
}

fn eddsa(c: &mut Criterion) {
    let Some((_pair, signer, verifier, token)) = setup("EdDSA", generate_ed25519) else {
        return;
    };
    let claims = claims();
    let mut group = c.benchmark_group("eddsa");
    group.bench_function("sign (Signer, key parsed once)", |b| {
        b.iter(|| black_box(signer.sign(black_box(&claims))))
    });
    group.bench_function("verify (Verifier::decode)", |b| {
        b.iter(|| black_box(verifier.decode::<LicenseClaims>(black_box(&token))))
    });
    group.finish();
}

criterion_group!(benches, rs256, eddsa);
criterion_main!(benches);
