//! Subject and stream names.
//!
//! Every subject the service uses is built here, so that a prefix (one per deployment sharing a NATS server,
//! one per test) applies everywhere at once:
//!
//! | purpose       | subject (empty prefix)                  | stream         |
//! |---------------|-----------------------------------------|----------------|
//! | filings in    | `filings.<tenant>.<annual\|quarterly>`  | `FILINGS`      |
//! | alerts out    | `alerts.<tenant>.<company>`             | `ALERTS`       |
//! | drift alerts  | `alerts.<tenant>.drift`                 | `ALERTS`       |
//! | dead letters  | `deadletter.<source>`                   | `DEAD_LETTERS` |
//! | fleet changes | `fleet.changes`                         | none (core)    |
//!
//! With prefix `p1`, subjects become `p1.filings.…` and streams `P1_FILINGS`.

use std::fmt;

/// The last token of a drift alert's subject.
pub const DRIFT_TOKEN: &str = "drift";

/// Why a namespace prefix was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid NATS prefix {0:?}: use 1-32 characters among a-z, 0-9 and '-', starting with a letter or digit")]
pub struct InvalidNamespace(pub String);

/// The prefix under which this deployment's subjects and streams live (empty: none).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// Parses a prefix. Empty means "no prefix"; otherwise lowercase letters, digits and `-` only, because
    /// the prefix becomes a subject token and (upper-cased, `-` as `_`) part of a stream name, where `.`, `*`,
    /// `>` and whitespace are not allowed. `_` is refused so that two prefixes never map to one stream name.
    pub fn parse(prefix: &str) -> Result<Self, InvalidNamespace> {
        let valid = prefix.is_empty()
            || (prefix.len() <= 32
                && prefix.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if valid {
            Ok(Self {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(InvalidNamespace(prefix.to_owned()))
        }
    }

    /// The raw prefix (empty when none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `subject` under this namespace.
    pub fn subject(&self, subject: &str) -> String {
        if self.prefix.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.prefix)
        }
    }

    /// A stream's name under this namespace (`FILINGS` → `P1_FILINGS`).
    pub fn stream_name(&self, base: &str) -> String {
        if self.prefix.is_empty() {
            base.to_owned()
        } else {
            format!("{}_{base}", self.prefix.to_ascii_uppercase().replace('-', "_"))
        }
    }

    /// Where a tenant's filings of one prediction type are published.
    pub fn filings(&self, tenant: &str, prediction_type: &str) -> String {
        self.subject(&format!("filings.{tenant}.{prediction_type}"))
    }

    /// Where a tenant's realised credit events are published.
    pub fn outcomes(&self, tenant: &str) -> String {
        self.subject(&format!("outcomes.{tenant}"))
    }

    /// Where risk-change alerts of one company are published.
    pub fn alerts(&self, tenant: &str, company: &str) -> String {
        self.subject(&format!("alerts.{tenant}.{company}"))
    }

    /// Where a tenant's model-drift alerts are published (beside its companies' risk alerts; a company id is
    /// a UUID, so the token cannot collide).
    pub fn drift_alerts(&self, tenant: &str) -> String {
        self.subject(&format!("alerts.{tenant}.{DRIFT_TOKEN}"))
    }

    /// Where messages that cannot be processed go, by the path they came from (e.g. `filings`).
    pub fn dead_letters(&self, source: &str) -> String {
        self.subject(&format!("deadletter.{source}"))
    }

    /// The JetStream Object Store bucket holding bulk uploads until their job ends (its stream is
    /// `OBJ_<bucket>`).
    pub fn uploads_bucket(&self) -> String {
        self.stream_name("UPLOADS")
    }

    /// Where an instance announces a change the other instances keep copies of (core NATS: a change missed
    /// while disconnected is caught up by the copies' expiry).
    pub fn fleet_changes(&self) -> String {
        self.subject("fleet.changes")
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({:?})", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_prefix_leaves_names_unchanged() {
        let ns = Namespace::parse("").unwrap();
        assert_eq!(ns.filings("acme", "annual"), "filings.acme.annual");
        assert_eq!(ns.alerts("acme", "c1"), "alerts.acme.c1");
        assert_eq!(ns.dead_letters("filings"), "deadletter.filings");
        assert_eq!(ns.fleet_changes(), "fleet.changes");
        assert_eq!(ns.stream_name("FILINGS"), "FILINGS");
    }

    #[test]
    fn a_prefix_applies_to_subjects_and_streams() {
        let ns = Namespace::parse("t-42-x").unwrap();
        assert_eq!(ns.filings("acme", "quarterly"), "t-42-x.filings.acme.quarterly");
        assert_eq!(ns.stream_name("ALERTS"), "T_42_X_ALERTS");
        assert_eq!(ns.uploads_bucket(), "T_42_X_UPLOADS");
    }

    #[test]
    fn prefixes_that_would_break_subjects_are_refused() {
        for bad in ["a.b", "a b", ">", "*", "-x", "UPPER", "a_b", &"x".repeat(33)] {
            assert!(Namespace::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
