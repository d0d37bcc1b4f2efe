//! License key format: `CFG-<CODE>-XXXX-XXXX-XXXX`, the seed's product-code table and fallback.

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The seed's product codes. Unknown products use the first four characters, upper-cased.
const PRODUCT_CODES: &[(&str, &str)] = &[
    ("peregrine", "PRNG"),
    ("falcon", "FLCN"),
    ("osprey", "OSPY"),
    ("kestrel", "KSTR"),
    ("harrier", "HARR"),
    ("merlin", "MRLN"),
    ("ibis", "IBIS"),
    ("tern", "TERN"),
    ("wren", "WREN"),
    ("martin", "MRTN"),
];

pub fn product_code(product: &str) -> String {
    PRODUCT_CODES
        .iter()
        .find(|(name, _)| *name == product)
        .map(|(_, code)| (*code).to_string())
        .unwrap_or_else(|| product.chars().take(4).collect::<String>().to_uppercase())
}

/// Builds a key from a source of random bytes (the caller owns the RNG; this module does no I/O).
/// Bytes ≥ 252 are rejected so each of the 36 characters is equally likely.
pub fn generate_key_display(product: &str, mut fill_random: impl FnMut(&mut [u8])) -> String {
    let mut chars = Vec::with_capacity(12);
    let mut buf = [0u8; 32];
    while chars.len() < 12 {
        fill_random(&mut buf);
        for b in buf {
            if b < 252 && chars.len() < 12 {
                chars.push(ALPHABET[usize::from(b % 36)] as char);
            }
        }
    }
    let s: String = chars.into_iter().collect();
    format!(
        "CFG-{}-{}-{}-{}",
        product_code(product),
        &s[0..4],
        &s[4..8],
        &s[8..12]
    )
}

/// A cheap shape check before touching the database: printable ASCII, bounded length.
pub fn looks_like_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_products_use_the_seed_table_and_others_fall_back() {
        assert_eq!(product_code("peregrine"), "PRNG");
        assert_eq!(product_code("martin"), "MRTN");
        assert_eq!(product_code("zeppelin"), "ZEPP");
        assert_eq!(product_code("ab"), "AB");
    }

    #[test]
    fn generated_keys_have_the_seed_shape() {
        let mut n = 0u8;
        let key = generate_key_display("peregrine", |buf| {
            for b in buf.iter_mut() {
                *b = n;
                n = n.wrapping_add(7);
            }
        });
        assert!(key.starts_with("CFG-PRNG-"), "{key}");
        let parts: Vec<_> = key.split('-').collect();
        assert_eq!(parts.len(), 5);
        for part in &parts[2..] {
            assert_eq!(part.len(), 4);
            assert!(part.bytes().all(|b| ALPHABET.contains(&b)));
        }
    }
}
