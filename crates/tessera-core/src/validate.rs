//! Input checks shared by the server (rejects with 422) and the client (refuses before sending).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Non-empty, at most `max` bytes, no control characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    optional_text(field, Some(value), max)
}

pub fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<(), FieldError> {
    let Some(value) = value else { return Ok(()) };
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Product and tier names: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
pub fn identifier(field: &'static str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be 1-64 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

/// A JSON value kept as opaque metadata: an object (or null), bounded in size.
pub fn metadata(field: &'static str, value: Option<&serde_json::Value>) -> Result<(), FieldError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(v @ serde_json::Value::Object(_)) => {
            if v.to_string().len() > MAX_METADATA_BYTES {
                Err(FieldError::new(
                    field,
                    format!("must be at most {MAX_METADATA_BYTES} bytes"),
                ))
            } else {
                Ok(())
            }
        }
        Some(_) => Err(FieldError::new(field, "must be a JSON object")),
    }
}

pub const MAX_METADATA_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_reject_odd_strings() {
        assert!(identifier("p", "peregrine").is_ok());
        assert!(identifier("p", "pro-2.0_x").is_ok());
        for bad in ["", "Peregrine", "-x", "a b", "x\u{0}", "ü", &"a".repeat(65)] {
            assert!(identifier("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_rejects_empty_control_and_long() {
        assert!(text("f", "ok", 10).is_ok());
        assert!(text("f", "  ", 10).is_err());
        assert!(text("f", "a\nb", 10).is_err());
        assert!(text("f", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(metadata("m", Some(&serde_json::json!({"a": 1}))).is_ok());
        assert!(metadata("m", Some(&serde_json::json!([1]))).is_err());
        let big = serde_json::json!({"a": "x".repeat(MAX_METADATA_BYTES)});
        assert!(metadata("m", Some(&big)).is_err());
    }
}
