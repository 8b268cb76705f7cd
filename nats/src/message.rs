//! The filing message (schema version 1) that upstream feeds publish on `filings.<tenant>.<annual|quarterly>`.
//!
//! Documented for publishers in `nats/FILINGS.md`. Decoding is strict: an unknown field, a missing
//! `schema_version` or another version than the ones listed, a control character in any string (escaped or
//! not, keys too: [`pdscore_actors::text`]) is refused with a reason, and the message goes to the
//! dead-letter subject instead of being guessed at.

use pdscore_actors::{
    Filing, FilingContent, FilingSource, PredictionType, Rejected, Terms,
    domain::{CompanySymbol, FilingKey},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Versions this service decodes.
pub const SUPPORTED_SCHEMA_VERSIONS: [u64; 1] = [1];

/// Largest message accepted (the FILINGS stream refuses larger ones at publish time too).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Version 1 of the message, as published.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilingMessageV1 {
    pub schema_version: u64,
    /// The publisher's id of this filing: its idempotency key (else the `Nats-Msg-Id` header).
    pub filing_id: Option<String>,
    /// The company, by symbol, within the tenant.
    pub company_symbol: String,
    /// Needed only when the symbol exists in several organizations of the tenant.
    pub organization_id: Option<Uuid>,
    pub reporting_year: Value,
    pub reporting_quarter: Option<Value>,
    pub statement: Option<Value>,
    pub ratios: Option<Map<String, Value>>,
    /// A model by id (`annual/polish-gbdt@1`); default: the tenant's.
    pub model: Option<String>,
}

/// Why a message cannot be scored: the reason recorded with its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Undeliverable {
    pub code: &'static str,
    pub message: String,
}

impl Undeliverable {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<Rejected> for Undeliverable {
    fn from(r: Rejected) -> Self {
        let message = match r.field {
            Some(field) => format!("{field}: {}", r.message),
            None => r.message,
        };
        Self {
            code: r.code.as_str(),
            message,
        }
    }
}

/// A decoded, validated message.
#[derive(Debug)]
pub struct DecodedFiling {
    pub tenant: String,
    pub prediction_type: PredictionType,
    pub filing_id: Option<FilingKey>,
    pub company_symbol: CompanySymbol,
    pub organization_id: Option<Uuid>,
    pub content: FilingContent,
    /// The payload as JSON, stored with the filing.
    pub raw: Value,
}

impl DecodedFiling {
    /// The filing to score, once its tenant and company are known.
    pub fn into_filing(
        self,
        tenant_id: Uuid,
        organization_id: Uuid,
        company_id: Uuid,
        idempotency_key: String,
    ) -> Filing {
        Filing {
            tenant_id,
            organization_id,
            company_id,
            idempotency_key,
            source: FilingSource::Nats,
            prediction_type: self.prediction_type,
            content: self.content,
            terms: Terms::Product,
            raw: self.raw,
            bulk: None,
            received_at: std::time::Instant::now(),
            trailing: None,
            new_company: None,
        }
    }
}

/// The tenant and prediction type a subject names (`[<prefix>.]filings.<tenant>.<type>`).
pub fn parse_subject(prefix: &str, subject: &str) -> Result<(String, PredictionType), Undeliverable> {
    let rest = if prefix.is_empty() {
        Some(subject)
    } else {
        subject.strip_prefix(prefix).and_then(|s| s.strip_prefix('.'))
    };
    let invalid = || {
        Undeliverable::new(
            "INVALID_SUBJECT",
            format!("{subject}: expected filings.<tenant>.<annual|quarterly>"),
        )
    };
    let tokens: Vec<&str> = rest.ok_or_else(invalid)?.split('.').collect();
    match tokens.as_slice() {
        ["filings", tenant, _] if pdscore_actors::text::control_character(tenant).is_some() => Err(invalid()),
        ["filings", tenant, kind] => {
            let prediction_type = kind
                .parse::<PredictionType>()
                .map_err(|e| Undeliverable::new("INVALID_SUBJECT", e.to_string()))?;
            Ok(((*tenant).to_owned(), prediction_type))
        }
        _ => Err(invalid()),
    }
}

/// Decodes and validates a message's payload.
pub fn decode(prefix: &str, subject: &str, payload: &[u8]) -> Result<DecodedFiling, Undeliverable> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(Undeliverable::new(
            "PAYLOAD_TOO_LARGE",
            format!("{} bytes; at most {MAX_MESSAGE_BYTES}", payload.len()),
        ));
    }
    let (tenant, prediction_type) = parse_subject(prefix, subject)?;
    if let Some(at) = pdscore_actors::text::json_control_character(payload) {
        return Err(Undeliverable::new(
            pdscore_actors::RejectCode::ControlCharacter.as_str(),
            format!("byte {at}: a string holds a control character (U+0000-U+001F, U+007F-U+009F)"),
        ));
    }
    let raw: Value =
        serde_json::from_slice(payload).map_err(|e| Undeliverable::new("INVALID_MESSAGE", format!("not JSON: {e}")))?;
    let version = raw
        .get("schema_version")
        .ok_or_else(|| Undeliverable::new("INVALID_MESSAGE", "schema_version is missing"))?;
    if !version.as_u64().is_some_and(|v| SUPPORTED_SCHEMA_VERSIONS.contains(&v)) {
        return Err(Undeliverable::new(
            "UNSUPPORTED_SCHEMA_VERSION",
            format!("schema_version {version}; this service reads {SUPPORTED_SCHEMA_VERSIONS:?}"),
        ));
    }
    let message: FilingMessageV1 =
        FilingMessageV1::deserialize(&raw).map_err(|e| Undeliverable::new("INVALID_MESSAGE", e.to_string()))?;
    let symbol = CompanySymbol::parse(&message.company_symbol).map_err(Rejected::from)?;
    let filing_id = message
        .filing_id
        .as_deref()
        .map(FilingKey::parse)
        .transpose()
        .map_err(Rejected::from)?;
    let content = FilingContent::parse(
        prediction_type,
        &message.reporting_year,
        message.reporting_quarter.as_ref(),
        message.statement,
        message.ratios,
        message.model.as_deref(),
    )?;
    Ok(DecodedFiling {
        tenant,
        prediction_type,
        filing_id,
        company_symbol: symbol,
        organization_id: message.organization_id,
        content,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema_version":1,"filing_id":"f-1","company_symbol":"acme","reporting_year":2024,
        "ratios":{"total_debt_to_ebitda":2.5}}"#;

    #[test]
    fn a_good_message_decodes_with_its_tenant_and_type_from_the_subject() {
        let d = decode("p1", "p1.filings.demo.annual", GOOD.as_bytes()).unwrap();
        assert_eq!((d.tenant.as_str(), d.prediction_type), ("demo", PredictionType::Annual));
        assert_eq!(d.company_symbol.as_str(), "ACME");
        assert_eq!(d.content.period.year, 2024);
    }

    #[test]
    fn every_bad_message_says_why() {
        let code = |subject: &str, payload: &[u8]| decode("", subject, payload).unwrap_err().code;
        assert_eq!(code("filings.demo.annual", b"\x00\xff garbage"), "INVALID_MESSAGE");
        assert_eq!(code("filings.demo.monthly", GOOD.as_bytes()), "INVALID_SUBJECT");
        assert_eq!(code("filings.demo", GOOD.as_bytes()), "INVALID_SUBJECT");
        assert_eq!(
            code(
                "filings.demo.annual",
                GOOD.replace("\"schema_version\":1", "\"schema_version\":2").as_bytes()
            ),
            "UNSUPPORTED_SCHEMA_VERSION"
        );
        assert_eq!(
            code(
                "filings.demo.annual",
                br#"{"schema_version":1,"company_symbol":"A","reporting_year":2024}"#
            ),
            "VALIDATION_ERROR"
        );
        assert_eq!(
            code(
                "filings.demo.annual",
                GOOD.replace("\"ratios\"", "\"ratio\"").as_bytes()
            ),
            "INVALID_MESSAGE"
        );
        assert_eq!(
            code("filings.demo.annual", &vec![b' '; MAX_MESSAGE_BYTES + 1]),
            "PAYLOAD_TOO_LARGE"
        );
        assert_eq!(code("filings.de\u{0}mo.annual", GOOD.as_bytes()), "INVALID_SUBJECT");
    }

    #[test]
    fn a_control_character_in_any_string_is_refused_before_anything_is_stored() {
        let code = |payload: String| {
            decode("", "filings.demo.quarterly", payload.as_bytes())
                .unwrap_err()
                .code
        };
        let message = r#"{"schema_version":1,"filing_id":"f-1","company_symbol":"acme","reporting_year":2024,
            "reporting_quarter":"Q1","ratios":{"sga_margin":"NM"}}"#;
        for (what, with) in [
            ("filing_id", message.replace("f-1", "p\\u0000x")),
            ("reporting_quarter", message.replace("\"Q1\"", "\"Q1\\u0000\"")),
            ("company_symbol", message.replace("acme", "ac\\u0001me")),
            ("a ratio's value", message.replace("\"NM\"", "\"N\\u007fM\"")),
            ("a ratio's name", message.replace("sga_margin", "sga\\u0000margin")),
        ] {
            assert_eq!(code(with), "CONTROL_CHARACTER", "{what}");
        }
    }
}
