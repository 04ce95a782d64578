//! Text helpers of the evaluation path.

/// `text.trim()`, answered without decoding when both ends are printable
/// ASCII (nearly every id, symbol and amount): `str::trim` decodes
/// characters at each end, a measurable cost on an evaluation that trims
/// half a dozen fields.
pub fn trim(text: &str) -> &str {
    // Printable ASCII other than the space: not whitespace, and not part of
    // a longer character. (Other bytes take the general path.)
    let solid = |byte: Option<&u8>| byte.is_some_and(u8::is_ascii_graphic);
    let bytes = text.as_bytes();
    if solid(bytes.first()) && solid(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::trim;

    #[test]
    fn trims_as_str_trim_does() {
        for text in ["", " ", "a", " a", "a ", "\u{b}a\u{b}", "\u{a0}a\u{2003}", "é", " é ", "a b", "\ta\r\n"] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }
}
