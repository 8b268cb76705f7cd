//! The JSON body of every route: actix's extractor (size limit, content type, its errors as envelopes through
//! `JsonConfig`), then the text rule ([`pdscore_actors::text`]) over the body as sent, then the typed value.
//! So no route receives a string holding a control character, whatever field it is in.

use std::ops::Deref;

use actix_web::{FromRequest, HttpRequest, dev::Payload, error::JsonPayloadError, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{ApiError, error};

/// A request body decoded from JSON whose strings hold no control character.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// The refusal of a document holding a control character at byte `at`.
pub fn control_character_error(what: &str, at: usize) -> ApiError {
    ApiError::validation(format!(
        "{what} holds a control character (byte {at}); none of U+0000-U+001F and U+007F-U+009F is accepted."
    ))
    .with_details(serde_json::json!({ "reason": pdscore_actors::RejectCode::ControlCharacter, "offset": at }))
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            if let Some(at) = pdscore_actors::text::json_control_character(raw.get().as_bytes()) {
                return Err(control_character_error("A string of the body", at).into());
            }
            serde_json::from_str(raw.get())
                .map(Json)
                .map_err(|e| error::json_error(JsonPayloadError::Deserialize(e), &req))
        })
    }
}
