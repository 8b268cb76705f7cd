//! What every live (Server-Sent Events) stream shares: the re-check of its caller, and the response itself
//! (how many may be open is [`super::live_streams`]).
//!
//! A stream is authorized when it opens, but it may outlive the session it was opened with. Every
//! `recheck` (a few seconds) each stream asks whether its session is still live — logout, deactivation and a
//! change of role or organization all end the session — and, for `user` accounts, which companies are assigned
//! now; a stream whose session ended says so (`event: end`) and closes.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::{ApiError, live_streams::Opened};
use crate::{auth::Principal, db::sessions, http::AppState};

/// What a stream's caller may see now.
pub enum Standing {
    /// The session is live; for `user` accounts (when asked for), the companies assigned now.
    Live { assigned: Option<HashSet<Uuid>> },
    /// The session ended, or could not be checked twice in a row (a stream is not kept open on trust): the
    /// reason to send.
    Ended(&'static str),
}

/// A re-check's finding, before [`Liveness`] weighs it.
enum Checked {
    Standing(Standing),
    /// The session store or the database did not answer.
    Unknown(&'static str),
}

/// Checks a stream's caller (see the module's text); `with_assignments`: also read a `user`'s companies.
async fn check(state: &AppState, principal: &Principal, with_assignments: bool) -> Checked {
    match state
        .auth
        .sessions
        .is_active(
            principal.session_id,
            sessions::is_live(&state.db, principal.session_id, principal.user_id),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return Checked::Standing(Standing::Ended("the session has ended; sign in again")),
        Err(e) => {
            tracing::warn!(error = %e, "a live stream's session cannot be checked");
            return Checked::Unknown("the session cannot be checked right now; reconnect shortly");
        }
    }
    if !with_assignments {
        return Checked::Standing(Standing::Live { assigned: None });
    }
    match assigned(state, principal).await {
        Ok(assigned) => Checked::Standing(Standing::Live { assigned }),
        Err(e) => {
            tracing::warn!(error = %e, "a live stream's assignments cannot be read");
            Checked::Unknown("the stream's scope cannot be checked right now; reconnect shortly")
        }
    }
}

/// For `user` accounts, the companies assigned to them; `None` for roles that see whole organizations.
pub async fn assigned(state: &AppState, principal: &Principal) -> Result<Option<HashSet<Uuid>>, ApiError> {
    let scope = principal.scope();
    match scope.assigned_to() {
        Some(user) => {
            let mut conn = state.db.acquire().await?;
            Ok(Some(
                crate::db::companies::assigned_company_ids(&mut conn, &scope, user).await?,
            ))
        }
        None => Ok(None),
    }
}

/// Silence longer than this gets a keep-alive comment (sooner when re-checks are: writing is how a client
/// that went away is noticed, and its place freed).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A stream's caller and its clock: when to re-check it, when to say it is still there.
pub struct Liveness {
    principal: Principal,
    state: actix_web::web::Data<AppState>,
    /// Re-read a `user`'s assignments at each re-check (the alert stream filters by them).
    with_assignments: bool,
    checked: Instant,
    quiet_since: Instant,
    /// The last re-check could not be made: one more such ends the stream.
    unknown: bool,
    _opened: Opened,
}

impl Liveness {
    /// Counts a new stream of `principal` (see [`LiveStreams::open`](super::live_streams::LiveStreams::open)).
    pub fn open(
        state: actix_web::web::Data<AppState>,
        principal: Principal,
        with_assignments: bool,
    ) -> Result<Self, ApiError> {
        let opened = state.live.open(principal.user_id)?;
        Ok(Self {
            principal,
            state,
            with_assignments,
            checked: Instant::now(),
            quiet_since: Instant::now(),
            unknown: false,
            _opened: opened,
        })
    }

    fn keep_alive(&self) -> Duration {
        KEEP_ALIVE.min(self.state.live.recheck)
    }

    /// The caller's standing, when a re-check is due.
    pub async fn recheck_if_due(&mut self) -> Option<Standing> {
        if self.checked.elapsed() < self.state.live.recheck {
            return None;
        }
        self.checked = Instant::now();
        match check(&self.state, &self.principal, self.with_assignments).await {
            Checked::Standing(standing) => {
                self.unknown = false;
                Some(standing)
            }
            // One blip of Redis or the database does not end every stream at once.
            Checked::Unknown(_) if !self.unknown => {
                self.unknown = true;
                None
            }
            Checked::Unknown(reason) => Some(Standing::Ended(reason)),
        }
    }

    /// How long to wait for the stream's next event before a re-check or a keep-alive is due.
    pub fn wait(&self) -> Duration {
        self.state
            .live
            .recheck
            .saturating_sub(self.checked.elapsed())
            .min(self.keep_alive().saturating_sub(self.quiet_since.elapsed()))
    }

    /// A keep-alive comment, if one is due now.
    pub fn keep_alive_due(&mut self) -> Option<String> {
        (self.quiet_since.elapsed() >= self.keep_alive()).then(|| {
            self.sent();
            ": keep-alive\n\n".to_owned()
        })
    }

    /// A frame was sent.
    pub fn sent(&mut self) {
        self.quiet_since = Instant::now();
    }
}

/// What a live stream sends: its next frame, `None` once it is over.
pub trait Frames: 'static {
    fn next_frame(&mut self) -> impl std::future::Future<Output = Option<String>>;
}

/// The Server-Sent Events response of a live stream.
pub fn event_stream(source: impl Frames) -> actix_web::HttpResponse {
    let events = futures_util::stream::unfold(source, |mut source| async move {
        let frame = source.next_frame().await?;
        Some((Ok::<_, actix_web::Error>(actix_web::web::Bytes::from(frame)), source))
    });
    actix_web::HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events)
}

/// The frame that closes a stream, with why.
pub fn end_frame(reason: &str) -> String {
    format!("event: end\ndata: {}\n\n", serde_json::json!({ "reason": reason }))
}
