//! API errors: `{"error": {"code", "message"}}` with a status per code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::CommandError;
use domain::TxError;
use serde_json::json;

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human text.
    pub message: String,
    /// When to try again, seconds (a `Retry-After` header).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 429 `rate_limited`: try again in `retry_after_s` seconds.
    pub fn rate_limited(message: impl Into<String>, retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..ApiError::new("rate_limited", message)
        }
    }

    /// 400 `malformed`.
    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError::new("malformed", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new("not_found", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new("unauthorized", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new("internal", message)
    }

    /// JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        ApiError::new(error.code(), error.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected(tx) => tx.into(),
            CommandError::NotFound(message) => ApiError::not_found(message),
            CommandError::Store(store) => {
                tracing::error!(error = %store, "event log failure");
                ApiError::new(
                    "unavailable",
                    "the event log failed; the node cannot accept writes",
                )
            }
            CommandError::Restarting | CommandError::Unavailable(_) => {
                ApiError::new("unavailable", error.to_string())
            }
            CommandError::Conflict(message) => ApiError::new("conflict", message),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            "not_found" => StatusCode::NOT_FOUND,
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "paused" | "frozen" | "not_council" | "not_owner" | "forbidden_host"
            | "forbidden_origin" => StatusCode::FORBIDDEN,
            "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
            "bad_nonce" | "conflict" | "already_voted" | "not_active" => StatusCode::CONFLICT,
            "insufficient_funds" | "fee_too_low" | "nothing_to_claim" | "no_voting_power"
            | "below_threshold" | "bad_action" | "locked" | "not_assigned" | "bad_result"
            | "limit_exceeded" => StatusCode::UNPROCESSABLE_ENTITY,
            "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_s {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.json(self.body())
    }
}
