//! A tiny JSON object writer: the tools print flat objects of numbers and
//! short strings, one per line, which does not justify a serializer.

use std::fmt::Write as _;

/// Builds one flat JSON object, field by field, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct Obj {
    body: String,
}

impl Obj {
    /// An empty object.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_str(&mut self.body, k);
        self.body.push(':');
    }

    /// Adds a string field.
    pub(crate) fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_str(&mut self.body, v);
        self
    }

    /// Adds an integer field.
    pub(crate) fn int(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.body, "{v}");
        self
    }

    /// Adds a number field with one decimal (NaN and infinities become `null`).
    pub(crate) fn num(mut self, k: &str, v: f64) -> Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.body, "{v:.1}");
        } else {
            self.body.push_str("null");
        }
        self
    }

    /// Adds a field whose value is already JSON (a nested object).
    pub(crate) fn raw(mut self, k: &str, json: &str) -> Self {
        self.key(k);
        self.body.push_str(json);
        self
    }

    /// The finished object.
    pub(crate) fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// Appends `s` as a quoted JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_object() {
        let inner = Obj::new().int("reset", 2).finish();
        let s = Obj::new()
            .str("addr", "a\"b\n")
            .int("n", 3)
            .num("p50_us", 12.345)
            .num("bad", f64::NAN)
            .raw("errors", &inner)
            .finish();
        assert_eq!(
            s,
            r#"{"addr":"a\"b\n","n":3,"p50_us":12.3,"bad":null,"errors":{"reset":2}}"#
        );
        assert_eq!(Obj::new().finish(), "{}");
    }
}
