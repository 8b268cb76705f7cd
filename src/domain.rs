//! Domain values that can only exist when valid ("parse, don't validate"): the service's own (e-mail
//! addresses, tenant slugs, free text, a new company's fields). The values every ingest path shares — company
//! symbols, filing keys, prediction types — and their error, [`InvalidValue`], are in
//! [`pdscore_actors::domain`], with the pipeline that reads them.

use std::fmt;

pub use pdscore_actors::domain::{CompanySymbol, InvalidValue};
use serde::Serialize;

/// A lower-cased, syntactically valid e-mail address (the login name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let normalized = raw.trim().to_lowercase();
        if normalized.len() > 254 {
            return Err(InvalidValue::new("email", "must be at most 254 characters"));
        }
        // A bare address only: no display name ("Ada <ada@x>") and no domain literal ("ada@[10.0.0.1]").
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal();
        email_address::EmailAddress::parse_with_options(&normalized, options)
            .map_err(|e| InvalidValue::new("email", format!("{normalized:?} is not a valid address ({e})")))?;
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's short name: lowercase letters, digits and dashes, 2-63 characters (used in URLs and subjects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let valid = (2..=63).contains(&raw.len())
            && raw
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue::new(
                "slug",
                "use 2-63 characters among a-z, 0-9 and '-', starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A required piece of text: trimmed, 1 to `max` characters, no control characters.
pub fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    optional_text(field, text, max).map(|t| t.unwrap_or_default())
}

/// Optional text: trimmed (empty means absent), at most `max` characters, no control characters.
pub fn optional_text(field: &'static str, raw: &str, max: usize) -> Result<Option<String>, InvalidValue> {
    let text = raw.trim();
    if text.chars().count() > max {
        return Err(InvalidValue::new(field, format!("must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(InvalidValue::new(field, "must not contain control characters"));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A company's market capitalisation: a finite number ≥ 0, or absent.
pub fn market_cap(value: Option<f64>) -> Result<Option<f64>, InvalidValue> {
    match value {
        Some(v) if !(v.is_finite() && v >= 0.0) => Err(InvalidValue::new("market_cap", "must be a finite number ≥ 0")),
        other => Ok(other),
    }
}

/// A realised credit event: what a back-test scores a PD against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditEvent {
    /// A missed payment past its grace period (or any default as the tenant's policy defines it).
    Default,
    Bankruptcy,
    /// An exchange offer or restructuring that leaves creditors with less than promised.
    DistressedExchange,
}

impl CreditEvent {
    pub const ALL: [Self; 3] = [Self::Default, Self::Bankruptcy, Self::DistressedExchange];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Bankruptcy => "bankruptcy",
            Self::DistressedExchange => "distressed_exchange",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let raw = raw.trim();
        Self::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| InvalidValue::new("event", "use default, bankruptcy or distressed_exchange"))
    }
}

/// A credit event to record, validated: the one rule for the API, CSV imports and NATS.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeFields {
    pub event: CreditEvent,
    pub event_date: chrono::NaiveDate,
    pub source: String,
    pub note: Option<String>,
}

impl OutcomeFields {
    pub fn parse(event: &str, event_date: &str, source: &str, note: Option<&str>) -> Result<Self, InvalidValue> {
        let event = CreditEvent::parse(event)?;
        let event_date = chrono::NaiveDate::parse_from_str(event_date.trim(), "%Y-%m-%d")
            .ok()
            .filter(|d| (1900..=2999).contains(&chrono::Datelike::year(d)))
            .ok_or_else(|| InvalidValue::new("event_date", "a date YYYY-MM-DD between 1900 and 2999"))?;
        Ok(Self {
            event,
            event_date,
            source: required_text("source", source, 200)?,
            note: note.map(|n| optional_text("note", n, 2000)).transpose()?.flatten(),
        })
    }
}

/// A new company's fields, validated: the one rule for every path that creates a company (the API, AccuNode's
/// routes, bulk files).
pub struct CompanyFields {
    pub symbol: CompanySymbol,
    pub name: String,
    pub sector: Option<String>,
    pub market_cap: Option<f64>,
}

impl CompanyFields {
    /// `name` is (field name, value): AccuNode's body calls it `company_name`.
    pub fn parse(
        symbol: &str,
        name: (&'static str, &str),
        sector: Option<&str>,
        market_cap_value: Option<f64>,
    ) -> Result<Self, InvalidValue> {
        Ok(Self {
            symbol: CompanySymbol::parse(symbol)?,
            name: required_text(name.0, name.1, 300)?,
            sector: sector.map(|s| optional_text("sector", s, 120)).transpose()?.flatten(),
            market_cap: market_cap(market_cap_value)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "Ada <ada@example.com>",
            "ada@[10.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(required_text("name", "  Acme  ", 10).unwrap(), "Acme");
        assert!(required_text("name", "   ", 10).is_err());
        assert!(required_text("name", &"x".repeat(11), 10).is_err());
        assert!(required_text("name", "a\u{0}b", 10).is_err());
        assert_eq!(optional_text("sector", " ", 10).unwrap(), None);
    }

    #[test]
    fn slugs_are_url_and_subject_safe() {
        assert!(TenantSlug::parse("acme-bank").is_ok());
        for bad in ["A", "acme.bank", "-acme", "acme bank", "ACME"] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
