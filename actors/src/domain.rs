//! The values every ingest path (HTTP, NATS, bulk files) types its input into before a filing is built:
//! one rule each, written once ("parse, don't validate"). The service's other values (e-mail addresses,
//! tenant slugs, free text) are in its own `domain` module, with the same error.

use std::fmt;

use pdscore_models::PredictionType;
use serde::Serialize;

use crate::{error::Rejected, text::control_character};

/// Why a value was refused; the message is meant for the person who typed it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl From<InvalidValue> for Rejected {
    fn from(e: InvalidValue) -> Self {
        Rejected::validation(e.field, e.reason)
    }
}

/// A company's ticker or internal identifier: upper-cased, 1-32 characters among A-Z, 0-9 and `. - _ / : &`.
/// A company is created with one (API, AccuNode's routes, bulk files) and found by it (AccuNode's routes, NATS
/// messages, bulk files).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CompanySymbol(String);

impl CompanySymbol {
    pub const FIELD: &'static str = "symbol";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let symbol = raw.trim().to_uppercase();
        let valid = (1..=32).contains(&symbol.chars().count())
            && symbol
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || ".-_/:&".contains(c));
        if valid {
            Ok(Self(symbol))
        } else {
            Err(InvalidValue::new(
                Self::FIELD,
                "use 1-32 characters among A-Z, 0-9 and . - _ / : &",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CompanySymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's idempotency key for a filing (`filing_id`, `Idempotency-Key`, `Nats-Msg-Id`): 1 to
/// [`FilingKey::MAX_CHARS`] characters, none of them a control character (the database checks the length too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilingKey(String);

impl FilingKey {
    pub const FIELD: &'static str = "filing_id";
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS || control_character(raw).is_some() {
            return Err(InvalidValue::new(
                Self::FIELD,
                format!("1 to {} printable characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `annual` or `quarterly`, as a client names it (any case, surrounding blanks ignored), under the field
/// name `type`.
pub fn prediction_type(raw: &str) -> Result<PredictionType, InvalidValue> {
    raw.parse::<PredictionType>()
        .map_err(|e| InvalidValue::new("type", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_upper_case_identifiers() {
        assert_eq!(CompanySymbol::parse(" brk.b ").unwrap().as_str(), "BRK.B");
        for bad in [
            "",
            "A B",
            "X'; DROP TABLE companies;--",
            &"A".repeat(33),
            "AC\u{0}ME",
            "ÄCME",
        ] {
            assert!(CompanySymbol::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn filing_keys_are_printable_and_bounded() {
        assert_eq!(FilingKey::parse("f-1").unwrap().as_str(), "f-1");
        assert!(FilingKey::parse(&"k".repeat(FilingKey::MAX_CHARS)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(FilingKey::MAX_CHARS + 1),
            "a\u{0}b".into(),
            "a\u{9f}b".into(),
        ] {
            let refused = FilingKey::parse(&bad).unwrap_err();
            assert_eq!(refused.field, "filing_id", "{bad:?}");
        }
    }

    #[test]
    fn prediction_types_are_named_in_lower_case() {
        assert_eq!(prediction_type(" Annual ").unwrap(), PredictionType::Annual);
        assert_eq!(prediction_type("monthly").unwrap_err().field, "type");
    }
}
