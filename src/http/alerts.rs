//! Risk-change alerts: the stored list, and a live Server-Sent Events stream. Each caller sees only the
//! alerts of companies their role lets them see.

use std::{collections::HashSet, sync::Arc};

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use uuid::Uuid;

use super::{
    ApiError, envelope,
    live::{Liveness, Standing},
};
use crate::{
    alerts::LiveAlert,
    auth::{Permission, Principal, Scope},
    db::{
        alerts::{self as stored, AlertRecord},
        pagination::CursorList,
    },
    http::AppState,
    telemetry::events::SseAlertsMissed,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Only this company's alerts.
    pub company_id: Option<Uuid>,
    /// 1 to 200 (default 50).
    pub per_page: Option<u32>,
    /// `next_cursor` of the previous answer: the alerts older than it.
    pub cursor: Option<Uuid>,
}

/// Alerts in the caller's scope, newest first, read with a cursor.
#[utoipa::path(tag = "alerts", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = envelope::Envelope<CursorList<AlertRecord>>)))]
#[get("/alerts")]
#[tracing::instrument(name = "http.alerts.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let cursor = super::cursor(query.per_page, query.cursor)?;
    let mut conn = state.db.acquire().await?;
    let alerts = stored::list(&mut conn, &principal.scope(), query.company_id, cursor).await?;
    Ok(envelope::ok(CursorList::new(alerts, cursor, |a| a.id)))
}

/// Which live alerts a subscriber may see.
struct Visibility {
    scope: Scope,
    /// For `user` accounts: the companies assigned (as of the last re-check).
    assigned: Option<HashSet<Uuid>>,
}

impl Visibility {
    fn allows(&self, alert: &LiveAlert) -> bool {
        match alert {
            LiveAlert::Risk(alert) => {
                self.scope.tenant().is_none_or(|t| t == alert.tenant_id)
                    && self.scope.organization().is_none_or(|o| o == alert.organization_id)
                    && self.assigned.as_ref().is_none_or(|a| a.contains(&alert.company_id))
            }
            // A model's drift is measured over the whole tenant: for the accounts that see the whole tenant.
            LiveAlert::Drift(alert) => {
                self.scope.tenant().is_none_or(|t| t == alert.tenant_id)
                    && self.scope.organization().is_none()
                    && self.assigned.is_none()
            }
        }
    }
}

/// Live alerts as Server-Sent Events (`event: alert`, `id:` the alert id, `data:` the alert JSON; for
/// accounts that see the whole tenant also `event: drift`, a model-drift alert), with a keep-alive comment
/// every 15 s at most. The stream ends (`event: end` with the reason) within a few seconds
/// of its session ending; a `user`'s stream follows their assignments. Open streams are capped per user and
/// instance (`RATE_LIMITED`).
#[utoipa::path(tag = "alerts", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of alerts", content_type = "text/event-stream", body = String),
    (status = 429, body = envelope::ErrorBody)))]
#[get("/alerts/stream")]
#[tracing::instrument(name = "http.alerts.live", skip_all)]
pub async fn live(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let assigned = super::live::assigned(&state, &principal).await?;
    let (scope, receiver) = (principal.scope(), state.alerts.subscribe());
    let liveness = Liveness::open(state, principal, true)?;
    let subscriber = Subscriber {
        receiver,
        visibility: Visibility { scope, assigned },
        ended: false,
        liveness,
    };
    Ok(super::live::event_stream(subscriber))
}

/// One live stream's state.
struct Subscriber {
    receiver: Receiver<Arc<LiveAlert>>,
    visibility: Visibility,
    liveness: Liveness,
    /// The end frame was sent: the stream is over.
    ended: bool,
}

impl super::live::Frames for Subscriber {
    /// The next SSE frame: a visible alert, a keep-alive, the end frame when the session ended; `None` when the
    /// stream is over.
    async fn next_frame(&mut self) -> Option<String> {
        if self.ended {
            return None;
        }
        loop {
            match self.liveness.recheck_if_due().await {
                Some(Standing::Live { assigned }) => self.visibility.assigned = assigned,
                Some(Standing::Ended(reason)) => {
                    self.ended = true;
                    return Some(super::live::end_frame(reason));
                }
                None => {}
            }
            let frame = match tokio::time::timeout(self.liveness.wait(), self.receiver.recv()).await {
                Err(_) => match self.liveness.keep_alive_due() {
                    Some(frame) => return Some(frame),
                    None => continue,
                },
                Ok(Ok(alert)) if self.visibility.allows(&alert) => match &*alert {
                    LiveAlert::Risk(alert) => {
                        let data = serde_json::to_string(alert).ok()?;
                        format!("id: {}\nevent: alert\ndata: {data}\n\n", alert.id)
                    }
                    LiveAlert::Drift(alert) => {
                        let data = serde_json::to_string(alert).ok()?;
                        format!("id: {}\nevent: drift\ndata: {data}\n\n", alert.id)
                    }
                },
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Lagged(missed))) => {
                    SseAlertsMissed { missed }.emit();
                    format!("event: lagged\ndata: {{\"missed\":{missed},\"hint\":\"read GET /api/v1/alerts\"}}\n\n")
                }
                Ok(Err(RecvError::Closed)) => return None,
            };
            self.liveness.sent();
            return Some(frame);
        }
    }
}
