//! Payload arguments with C-style escapes, so a shell can pass
//! `'SSH-2.0-bench\r\n'` literally.

/// The default client-first payload: an SSH identification line, which every
/// sslh-like proxy routes by its `SSH-2.0-` prefix.
pub(crate) const DEFAULT: &str = r"SSH-2.0-bench\r\n";

/// Decodes `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` escapes; any other
/// character stands for itself.
pub(crate) fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad \\x escape \\x{hex} in payload"))?;
                out.push(b);
            }
            Some(other) => return Err(format!("unknown escape \\{other} in payload")),
            None => return Err("payload ends with a lone backslash".to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape(DEFAULT).unwrap(), b"SSH-2.0-bench\r\n");
        assert_eq!(unescape(r"a\x00\x16\\").unwrap(), b"a\0\x16\\");
        assert_eq!(unescape("").unwrap(), b"");
        assert!(unescape(r"\x1").is_err());
        assert!(unescape(r"\q").is_err());
        assert!(unescape("x\\").is_err());
    }
}
