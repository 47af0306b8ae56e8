//! Trigger adapters as axum extractors, so a handler's signature says what it takes and
//! returns:
//!
//! - [`Push<T>`]: a Pub/Sub push delivery of topic `T`: the caller is checked as
//!   [`GoogleCaller`] does (OIDC), the envelope is parsed with `gcp::pubsub::parse_push`, and an
//!   undecodable delivery is a *permanent* error (dead letter, acknowledged) named after the
//!   message id when the envelope itself is readable, so a redelivery overwrites the same record.
//! - [`Callable<Req>`]: the `data` of a Firebase callable request (`{"data": ...}`), refused as
//!   `INVALID_ARGUMENT` with `gcp::callable`'s public messages; [`CallableResult<Resp>`]
//!   answers `200 {"result": ...}`.
//!
//! ```text
//! async fn push(Push(event): Push<UserSignups>) -> Result<StatusCode, Error> { ... }
//! async fn call(who: SignedIn, Callable(req): Callable<Req>) -> Result<CallableResult<Resp>, Error> { ... }
//! ```

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use domain::messages::Topic;
use gcp::callable::{ResultBody, parse_request};
use gcp::error::PublicError;
use gcp::oidc::GoogleClaims;
use gcp::pubsub::{PushEvent, parse_push, parse_push_bytes};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{GoogleCaller, PushAuth};
use crate::error::Error;

/// A verified push delivery of topic `T`: the message id, attributes and typed data.
#[derive(Debug)]
pub struct Push<T: Topic> {
    /// The verified caller (`None` in insecure local mode).
    pub caller: Option<GoogleClaims>,
    /// The delivery.
    pub event: PushEvent<T::Message>,
}

impl<S, T> FromRequest<S> for Push<T>
where
    S: Send + Sync,
    PushAuth: FromRef<S>,
    T: Topic,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let GoogleCaller(caller) = GoogleCaller::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let event = parse_push::<T::Message>(&body)
            .map_err(|error| undecodable(T::NAME, &body, error).into_response())?;
        Ok(Push { caller, event })
    }
}

/// The permanent error of an undecodable delivery of `topic`, named after the message id when
/// the envelope is readable.
pub fn undecodable(topic: &str, body: &[u8], error: gcp::pubsub::PushError) -> Error {
    let message_id = parse_push_bytes(body).ok().map(|event| event.message_id);
    let reason = format!("undecodable {topic} message: {}", error.public_message());
    Error::permanent(reason, error, message_id)
}

/// The `data` of a callable request, typed.
#[derive(Debug, Clone)]
pub struct Callable<Req>(pub Req);

impl<S, Req> FromRequest<S> for Callable<Req>
where
    S: Send + Sync,
    Req: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        parse_request(&body)
            .map(Callable)
            .map_err(|e| Error::reject(e.code(), e.public_message()).into_response())
    }
}

/// A callable's success: `200 {"result": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallableResult<Resp>(pub Resp);

impl<Resp: Serialize> IntoResponse for CallableResult<Resp> {
    fn into_response(self) -> Response {
        Json(ResultBody::new(self.0)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::StatusCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        n: u32,
    }

    async fn callable(body: &'static str) -> Result<Callable<Args>, Response> {
        let req = http::Request::post("/f").body(Body::from(body)).unwrap();
        Callable::<Args>::from_request(req, &()).await
    }

    #[tokio::test]
    async fn callables_take_their_data_or_answer_invalid_argument() {
        assert_eq!(callable(r#"{"data":{"n":3}}"#).await.unwrap().0, Args { n: 3 });
        for bad in [r#"{"n":3}"#, "{", r#"{"data":{"n":"x"}}"#] {
            let rejected = callable(bad).await.unwrap_err();
            assert_eq!(rejected.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[tokio::test]
    async fn results_are_wrapped() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out {
            order_id: &'static str,
        }
        let response = CallableResult(Out { order_id: "o1" }).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], br#"{"result":{"orderId":"o1"}}"#);
    }
}
