//! Risk-change alerts: the stored list, and a live Server-Sent Events stream. Each caller sees only the
//! alerts of companies their role lets them see.

use std::{collections::HashSet, sync::Arc, time::Duration};

use actix_web::{HttpResponse, get, web};
use futures_util::stream;
use pdscore_actors::Alert;
use serde::Deserialize;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use uuid::Uuid;

use super::{ApiError, envelope, field_details};
use crate::{
    auth::{Permission, Principal, Scope},
    db::predictions::{self, AlertRecord},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Only this company's alerts.
    pub company_id: Option<Uuid>,
    /// Cursor: alerts older than this alert id (the last id of the previous page).
    pub before: Option<Uuid>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Alerts in the caller's scope, newest first.
#[utoipa::path(tag = "alerts", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = envelope::Envelope<Vec<AlertRecord>>)))]
#[get("/alerts")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit must be between 1 and 200")
            .with_details(field_details("limit", "between 1 and 200")));
    }
    let mut conn = state.db.acquire().await?;
    let alerts = predictions::alerts(&mut conn, &principal.scope(), query.company_id, query.before, limit).await?;
    Ok(envelope::ok(alerts))
}

/// Which live alerts a subscriber may see.
struct Visibility {
    scope: Scope,
    /// For `user` accounts: the companies assigned at subscription time.
    assigned: Option<HashSet<Uuid>>,
}

impl Visibility {
    fn allows(&self, alert: &Alert) -> bool {
        self.scope.tenant().is_none_or(|t| t == alert.tenant_id)
            && self.scope.organization().is_none_or(|o| o == alert.organization_id)
            && self.assigned.as_ref().is_none_or(|a| a.contains(&alert.company_id))
    }
}

/// Live alerts as Server-Sent Events (`event: alert`, `id:` the alert id, `data:` the alert JSON), with a
/// keep-alive comment every 15 s.
#[utoipa::path(tag = "alerts", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of alerts", content_type = "text/event-stream", body = String)))]
#[get("/alerts/stream")]
pub async fn live(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let scope = principal.scope();
    let assigned = match scope.assigned_to() {
        Some(user) => {
            let mut conn = state.db.acquire().await?;
            Some(crate::db::companies::assigned_company_ids(&mut conn, &scope, user).await?)
        }
        None => None,
    };
    let visibility = Arc::new(Visibility { scope, assigned });
    let receiver = state.alerts.subscribe();
    let events = stream::unfold((receiver, visibility), |(mut receiver, visibility)| async move {
        let frame = next_frame(&mut receiver, &visibility).await?;
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from(frame)),
            (receiver, visibility),
        ))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

/// The next SSE frame: a visible alert, or a keep-alive after 15 s of silence; `None` when the feed ended.
async fn next_frame(receiver: &mut Receiver<Arc<Alert>>, visibility: &Visibility) -> Option<String> {
    loop {
        let received = tokio::time::timeout(Duration::from_secs(15), receiver.recv()).await;
        match received {
            Err(_) => return Some(": keep-alive\n\n".into()),
            Ok(Ok(alert)) if visibility.allows(&alert) => {
                let data = serde_json::to_string(&*alert).ok()?;
                return Some(format!("id: {}\nevent: alert\ndata: {data}\n\n", alert.id));
            }
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Lagged(missed))) => {
                metrics::counter!("pdscore_sse_alerts_missed_total").increment(missed);
                return Some(format!(
                    "event: lagged\ndata: {{\"missed\":{missed},\"hint\":\"read GET /api/v1/alerts\"}}\n\n"
                ));
            }
            Ok(Err(RecvError::Closed)) => return None,
        }
    }
}
