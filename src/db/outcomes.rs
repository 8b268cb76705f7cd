//! Realised credit events per company, recorded once each (a company's event of one kind on one date).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{BindScope, companies::IN_SCOPE, pagination::Page};
use crate::{auth::Scope, domain::OutcomeFields};

/// A recorded credit event as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Outcome {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub company_symbol: String,
    /// `default`, `bankruptcy` or `distressed_exchange`.
    pub event: String,
    pub event_date: NaiveDate,
    pub source: String,
    pub note: Option<String>,
    /// How it was recorded: `api`, `csv` or `nats`.
    pub channel: String,
    pub recorded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// How an event reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Api,
    Csv,
    Nats,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Csv => "csv",
            Self::Nats => "nats",
        }
    }
}

const COLUMNS: &str = "o.id, o.tenant_id, o.organization_id, o.company_id, c.symbol AS company_symbol,
    o.event::text AS event, o.event_date, o.source, o.note, o.channel, o.recorded_by, o.created_at";

/// A company's event to record.
pub struct NewOutcome<'a> {
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub fields: &'a OutcomeFields,
    pub channel: Channel,
    pub recorded_by: Option<Uuid>,
}

/// Records the event, or finds it when the company's event of that kind on that date is on file already
/// (`false`: nothing was written). `None`: the company is gone.
#[tracing::instrument(name = "db.outcomes.record", level = "debug", skip_all)]
pub async fn record(conn: &mut PgConnection, new: &NewOutcome<'_>) -> sqlx::Result<Option<(Outcome, bool)>> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO outcomes (id, tenant_id, organization_id, company_id, event, event_date, source, note, channel,
                               recorded_by)
         SELECT $1, c.tenant_id, c.organization_id, c.id, $5::credit_event, $6, $7, $8, $9, $10
         FROM companies c WHERE c.tenant_id = $2 AND c.organization_id = $3 AND c.id = $4
         ON CONFLICT (tenant_id, company_id, event, event_date) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(new.tenant_id)
    .bind(new.organization_id)
    .bind(new.company_id)
    .bind(new.fields.event.as_str())
    .bind(new.fields.event_date)
    .bind(&new.fields.source)
    .bind(&new.fields.note)
    .bind(new.channel.as_str())
    .bind(new.recorded_by)
    .fetch_optional(&mut *conn)
    .await?;
    let found: Option<Outcome> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM outcomes o JOIN companies c ON c.tenant_id = o.tenant_id AND c.id = o.company_id
         WHERE o.tenant_id = $1 AND o.company_id = $2 AND o.event = $3::credit_event AND o.event_date = $4"
    ))
    .bind(new.tenant_id)
    .bind(new.company_id)
    .bind(new.fields.event.as_str())
    .bind(new.fields.event_date)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|outcome| (outcome, inserted.is_some())))
}

/// A page of the events of a company the scope covers, newest first, and their total.
#[tracing::instrument(name = "db.outcomes.of_company", level = "debug", skip_all)]
pub async fn of_company(
    conn: &mut PgConnection,
    scope: &Scope,
    company_id: Uuid,
    page: Page,
) -> sqlx::Result<(Vec<Outcome>, i64)> {
    const FROM: &str = "outcomes o JOIN companies c ON c.tenant_id = o.tenant_id AND c.id = o.company_id";
    let total = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {FROM} WHERE {IN_SCOPE} AND o.company_id = $4"
    ))
    .bind_scope(scope)
    .bind(company_id)
    .fetch_one(&mut *conn)
    .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {IN_SCOPE} AND o.company_id = $4
         ORDER BY o.event_date DESC, o.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind_scope(scope)
    .bind(company_id)
    .bind(i64::from(page.per_page))
    .bind(i64::from(page.page - 1) * i64::from(page.per_page))
    .fetch_all(conn)
    .await?;
    Ok((items, total))
}
