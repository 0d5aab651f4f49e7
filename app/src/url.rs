//! Building URLs: the one percent-encoder for values put into a query string.

/// Percent-encodes `value` for a query string. Unreserved characters stay as they are, and so
/// does `/` (allowed in a query, and it keeps `?next=/topics/` readable).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_non_ascii_bytes_are_encoded() {
        assert_eq!(encode_query_value("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode_query_value("/topics/?x"), "/topics/%3Fx");
        assert_eq!(encode_query_value("Zoë"), "Zo%C3%AB");
        assert_eq!(encode_query_value("A-z_0.9~"), "A-z_0.9~");
    }
}
