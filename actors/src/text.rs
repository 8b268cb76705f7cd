//! The text rule every decoder applies (HTTP JSON bodies and queries, NATS messages, spreadsheet cells): no
//! control character (Unicode `Cc`: U+0000–U+001F and U+007F–U+009F) in any string. PostgreSQL refuses U+0000
//! in `text` and `jsonb`, so one such character would fail a whole transaction; the others have no place in
//! names, symbols, keys or numbers and only hide what a value says (logs, CSV files, terminals).
//!
//! A refusal by this rule carries [`crate::RejectCode::ControlCharacter`] (HTTP `details.reason`, NATS
//! dead-letter code, bulk row code).

/// The first control character of `text`, with its byte offset.
pub fn control_character(text: &str) -> Option<(usize, char)> {
    text.char_indices().find(|(_, c)| c.is_control())
}

/// The byte offset of the first control character that a JSON document's strings hold, escaped (`\u0000`,
/// `\n`, …) or written as is (DEL and the C1 range; a JSON parser refuses raw U+0000–U+001F in strings
/// itself). Keys are strings too. Whitespace between tokens is not a string, and `\\` is a backslash, not
/// the start of an escape. The document need not be valid JSON: what is not is the parser's to refuse.
pub fn json_control_character(json: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = json[i..].iter().position(|b| matches!(b, b'\\' | 0x7F | 0xC2)) {
        let at = i + found;
        match json[at] {
            b'\\' => match json.get(at + 1) {
                Some(b'u') => {
                    let code = json
                        .get(at + 2..at + 6)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
                    if code.is_some_and(|c| c < 0x20 || (0x7F..=0x9F).contains(&c)) {
                        return Some(at);
                    }
                    i = at + 2;
                }
                Some(b'b' | b'f' | b'n' | b'r' | b't') => return Some(at),
                Some(_) => i = at + 2,
                None => return None,
            },
            0x7F => return Some(at),
            // 0xC2 0x80..=0x9F is U+0080..=U+009F in UTF-8.
            _ if matches!(json.get(at + 1), Some(0x80..=0x9F)) => return Some(at),
            _ => i = at + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_and_raw_control_characters_are_found_in_any_string() {
        for (doc, at) in [
            (r#"{"filing_id":"p\u0000x"}"#, Some(15)),
            (r#"{"a":"\u001F"}"#, Some(6)),
            (r#"{"a":"\u007f"}"#, Some(6)),
            (r#"{"a":"\u009F"}"#, Some(6)),
            (r#"{"a":"line\nbreak"}"#, Some(10)),
            (r#"{"a":"\t"}"#, Some(6)),
            (r#"{"k\u0000":1}"#, Some(3)),
            ("{\"a\":\"\u{7f}\"}", Some(6)),
            ("{\"a\":\"\u{85}\"}", Some(6)),
        ] {
            assert_eq!(json_control_character(doc.as_bytes()), at, "{doc}");
        }
    }

    #[test]
    fn printable_text_and_escaped_backslashes_pass() {
        for doc in [
            r#"{"a":"plain","b":"\\u0000 is text here","c":"\u00e9\u20ac\"\/"}"#,
            "{\n\t\"a\": \"Zürich € ÂÃ\"\r\n}",
            r#"{"a":"\u00A0 no-break space"}"#,
            r#"{"a":"trailing backslash \\"}"#,
            r#"{"a":"\u12"}"#,
            "",
        ] {
            assert_eq!(json_control_character(doc.as_bytes()), None, "{doc}");
        }
    }

    #[test]
    fn plain_text_names_its_first_control_character() {
        assert_eq!(control_character("Acme\u{0}Corp"), Some((4, '\0')));
        assert_eq!(control_character("Zürich\u{9f}"), Some((7, '\u{9f}')));
        assert_eq!(control_character("Zürich S.A."), None);
    }
}
