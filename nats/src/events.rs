//! What the JetStream adapters report (as `pdscore_actors::events`): one struct per event, whose `emit`
//! records its metric and writes its log line together; [`describe`] registers their help text.

use metrics::{counter, describe_counter, describe_gauge, gauge};

const CONSUMER_PENDING: &str = "pdscore_consumer_pending";
const CONSUMER_ACK_PENDING: &str = "pdscore_consumer_ack_pending";
const CONSUMER_REDELIVERED: &str = "pdscore_consumer_redelivered";
const REDELIVERIES: &str = "pdscore_consumer_redeliveries_total";
const REFUSED_EARLY: &str = "pdscore_ingest_refused_early_total";
const DEAD_LETTERS: &str = "pdscore_dead_letters_total";
const ALERTS_PUBLISHED: &str = "pdscore_alerts_published_total";

/// A durable consumer's state, as the server last reported it.
pub struct ConsumerSampled {
    /// Which consumer: `filings`, `outcomes`.
    pub consumer: &'static str,
    pub pending: u64,
    pub ack_pending: usize,
    pub redelivered: usize,
}

impl ConsumerSampled {
    pub fn emit(self) {
        gauge!(CONSUMER_PENDING, "consumer" => self.consumer).set(self.pending as f64);
        gauge!(CONSUMER_ACK_PENDING, "consumer" => self.consumer).set(self.ack_pending as f64);
        gauge!(CONSUMER_REDELIVERED, "consumer" => self.consumer).set(self.redelivered as f64);
    }
}

/// A message arrived again (its delivery count above 1).
pub struct Redelivered;

impl Redelivered {
    pub fn emit(self) {
        counter!(REDELIVERIES).increment(1);
    }
}

/// A message Nak'ed before decoding: its tenant refused a filing moments ago (rate limit, full queue).
pub struct RefusedEarly;

impl RefusedEarly {
    pub fn emit(self) {
        counter!(REFUSED_EARLY).increment(1);
    }
}

/// A message goes to the dead-letter subject with its reason.
pub struct DeadLettered<'a> {
    pub code: &'static str,
    pub reason: &'a str,
    pub subject: &'a str,
    pub sequence: u64,
}

impl DeadLettered<'_> {
    pub fn emit(self) {
        counter!(DEAD_LETTERS, "code" => self.code).increment(1);
        tracing::warn!(
            code = self.code,
            reason = %self.reason,
            subject = %self.subject,
            sequence = self.sequence,
            "dead letter"
        );
    }
}

/// A risk-change alert reached the ALERTS stream.
pub struct AlertPublished;

impl AlertPublished {
    pub fn emit(self) {
        counter!(ALERTS_PUBLISHED).increment(1);
    }
}

/// Registers the help text of every metric above.
pub fn describe() {
    describe_gauge!(
        CONSUMER_PENDING,
        "Messages not yet delivered to the service's consumer, by consumer (filings, outcomes)"
    );
    describe_gauge!(
        CONSUMER_ACK_PENDING,
        "Messages delivered to the service and not yet acknowledged"
    );
    describe_gauge!(
        CONSUMER_REDELIVERED,
        "Messages delivered more than once and not yet acknowledged"
    );
    describe_counter!(REDELIVERIES, "Deliveries of a message after its first");
    describe_counter!(
        REFUSED_EARLY,
        "Messages Nak'ed before decoding because their tenant was refusing filings (rate limit, full queue)"
    );
    describe_counter!(
        DEAD_LETTERS,
        "Messages written to the dead-letter subject, by reason code"
    );
    describe_counter!(ALERTS_PUBLISHED, "Risk-change alerts published to the ALERTS stream");
}
