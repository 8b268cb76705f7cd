//! Realised credit events (defaults, bankruptcies, distressed exchanges): recorded per company from the API, a
//! CSV import or NATS, each with its audit row in the same transaction, once per company, kind and date. They
//! are what the back-tests score the stored predictions against.

use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::StoreError;
use pdscore_nats::{
    message::Undeliverable,
    outcomes::{OutcomeMessage, OutcomeSink, SinkError},
};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::Scope,
    db::{
        audit::{self, Actor, AuditEntry},
        companies::{self, Company},
        outcomes::{self, Channel, NewOutcome, Outcome},
    },
    domain::{CompanySymbol, InvalidValue, OutcomeFields},
};

/// Who records an event.
pub struct RecordedBy {
    pub actor: Actor,
    /// The request's id, for the audit row.
    pub request_id: Option<String>,
}

impl RecordedBy {
    fn user_id(&self) -> Option<Uuid> {
        match self.actor {
            Actor::User(id) => Some(id),
            Actor::Cli | Actor::Nats => None,
        }
    }
}

/// Records `fields` for `company` (audited when written). `false`: the company's event of that kind on that date
/// was on file already, and nothing was written; `None`: the company is gone.
pub async fn record(
    db: &PgPool,
    company: &Company,
    fields: &OutcomeFields,
    channel: Channel,
    by: &RecordedBy,
) -> sqlx::Result<Option<(Outcome, bool)>> {
    let ids = (company.tenant_id, company.organization_id, company.id);
    record_for(db, ids, fields, channel, by).await
}

/// [`record`] for the company (tenant, organization, company) these ids name.
async fn record_for(
    db: &PgPool,
    (tenant_id, organization_id, company_id): (Uuid, Uuid, Uuid),
    fields: &OutcomeFields,
    channel: Channel,
    by: &RecordedBy,
) -> sqlx::Result<Option<(Outcome, bool)>> {
    let mut tx = db.begin().await?;
    let new = NewOutcome {
        tenant_id,
        organization_id,
        company_id,
        fields,
        channel,
        recorded_by: by.user_id(),
    };
    let recorded = outcomes::record(&mut tx, &new).await?;
    if let Some((outcome, true)) = &recorded {
        audit::record(
            &mut tx,
            AuditEntry {
                tenant_id: Some(outcome.tenant_id),
                organization_id: Some(outcome.organization_id),
                actor: by.actor,
                action: "outcome.record",
                target_type: "outcome",
                target_id: Some(outcome.id.to_string()),
                before: None,
                after: serde_json::to_value(outcome).ok(),
                request_id: by.request_id.clone(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// Credit events from NATS ([`pdscore_nats::outcomes`]), recorded like the API's (audited as `nats`).
pub struct NatsOutcomes {
    pub db: PgPool,
}

impl OutcomeSink for NatsOutcomes {
    fn record(
        &self,
        tenant_id: Uuid,
        organization_id: Uuid,
        company_id: Uuid,
        message: OutcomeMessage,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let db = self.db.clone();
        async move {
            let fields = OutcomeFields::parse(
                &message.event,
                &message.event_date,
                &message.source,
                message.note.as_deref(),
            )
            .map_err(|e| SinkError::Refused(Undeliverable::new("VALIDATION_ERROR", e.to_string())))?;
            let by = RecordedBy {
                actor: Actor::Nats,
                request_id: None,
            };
            match record_for(
                &db,
                (tenant_id, organization_id, company_id),
                &fields,
                Channel::Nats,
                &by,
            )
            .await
            {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(SinkError::Refused(Undeliverable::new(
                    "UNKNOWN_COMPANY",
                    "the company was deleted",
                ))),
                Err(e) => Err(match crate::db::store_error("cannot record the credit event", e) {
                    StoreError::Refused(reason) => SinkError::Refused(Undeliverable::new("UNSTORABLE_OUTCOME", reason)),
                    StoreError::Unavailable(reason) => SinkError::Unavailable(reason),
                }),
            }
        }
        .boxed()
    }
}

/// The most rows one CSV import takes (a larger history goes in several files, or over NATS).
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// What a CSV import did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows recorded now.
    pub recorded: usize,
    /// Rows whose event was on file already.
    pub already_recorded: usize,
    /// Rows not recorded, with their line number (1 = the header) and why.
    pub failed: Vec<FailedRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailedRow {
    pub row: usize,
    pub field: Option<String>,
    pub reason: String,
}

/// Why an import file was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The columns of an import, `note` optional.
pub const IMPORT_COLUMNS: [&str; 5] = ["company_symbol", "event", "event_date", "source", "note"];

/// Records every row of a CSV of events (`company_symbol, event, event_date, source[, note]`) for companies of
/// `organization_id` the scope covers. A bad row fails alone; a file without the columns, or with more than
/// [`MAX_IMPORT_ROWS`] rows, is refused whole before anything is written.
pub async fn import_csv(
    db: &PgPool,
    scope: &Scope,
    organization_id: Uuid,
    text: &str,
    by: &RecordedBy,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        Some(Ok(header)) => header.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        Some(Err(e)) => return Err(ImportError::File(format!("the header cannot be read: {e}"))),
        None => return Err(ImportError::File("the file is empty".into())),
    };
    let column = |name: &str| header.iter().position(|h| h == name);
    let [symbol_at, event_at, date_at, source_at] = ["company_symbol", "event", "event_date", "source"]
        .map(|name| column(name).ok_or_else(|| ImportError::File(format!("the column {name} is missing"))));
    let (symbol_at, event_at, date_at, source_at) = (symbol_at?, event_at?, date_at?, source_at?);
    let note_at = column("note");
    if let Some(unknown) = header.iter().find(|h| !IMPORT_COLUMNS.contains(&h.as_str())) {
        return Err(ImportError::File(format!("unknown column {unknown:?}")));
    }
    let rows: Vec<(usize, Result<csv::StringRecord, csv::Error>)> = records
        .enumerate()
        .map(|(i, r)| (i + 2, r))
        .take(MAX_IMPORT_ROWS + 1)
        .collect();
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ImportError::File(format!("more than {MAX_IMPORT_ROWS} rows")));
    }
    let mut report = ImportReport::default();
    let mut conn = db.acquire().await?;
    for (row, read) in rows {
        let fail = |field: Option<&str>, reason: String| FailedRow {
            row,
            field: field.map(str::to_owned),
            reason,
        };
        let line = match read {
            Ok(line) => line,
            Err(e) => {
                report.failed.push(fail(None, format!("the row cannot be read: {e}")));
                continue;
            }
        };
        if line.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let cell = |at: usize| line.get(at).unwrap_or("");
        let parsed = CompanySymbol::parse(cell(symbol_at)).and_then(|symbol| {
            let fields = OutcomeFields::parse(cell(event_at), cell(date_at), cell(source_at), note_at.map(cell))?;
            Ok((symbol, fields))
        });
        let (symbol, fields) = match parsed {
            Ok(parsed) => parsed,
            Err(InvalidValue { field, reason }) => {
                report.failed.push(fail(Some(field), reason));
                continue;
            }
        };
        let Some(company) = companies::find_by_symbol(&mut conn, scope, organization_id, symbol.as_str()).await? else {
            report.failed.push(fail(
                Some("company_symbol"),
                format!("no company {} in the organization", symbol.as_str()),
            ));
            continue;
        };
        match record(db, &company, &fields, Channel::Csv, by).await? {
            Some((_, true)) => report.recorded += 1,
            Some((_, false)) => report.already_recorded += 1,
            None => report
                .failed
                .push(fail(Some("company_symbol"), "the company no longer exists".into())),
        }
    }
    Ok(report)
}
