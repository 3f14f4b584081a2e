//! The per-spawn secret the sidecar demands on every request (`Authorization: Bearer …`).

/// 256 bits from the OS generator, as lowercase hex: safe in an environment variable and in an
/// HTTP header without any escaping.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // Without an OS random source there is no safe token to make, and nothing sensible to
    // fall back to; such a machine cannot run the shell at all.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::new_token;

    #[test]
    fn tokens_are_long_hex_and_fresh() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
