//! What the node answers outside its endpoints: `/` says where to start, a known path asked
//! with another method is 405 `method_not_allowed` with `Allow`, anything else 404
//! `not_found`. The known paths are those of the OpenAPI document (a test keeps it complete).

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::OPENAPI;

/// Each documented path's segments (`None`: a `{parameter}`) and its methods, uppercase.
type Route = (Vec<Option<String>>, Vec<String>);

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let document: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON");
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    paths
        .into_iter()
        .map(|(path, operations)| {
            let segments = path
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                .collect();
            let methods = operations
                .as_object()
                .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                .unwrap_or_default();
            (segments, methods)
        })
        .collect()
});

/// The methods the API documents for `path` (none: no such path).
fn methods_of(path: &str) -> Vec<String> {
    let asked: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<String> = ROUTES
        .iter()
        .filter(|(segments, _)| {
            segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(s, a)| match s {
                    Some(fixed) => fixed == a,
                    None => !a.is_empty(),
                })
        })
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

/// `GET /`: the node's name and version, and where to start.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "aitbc node",
        "version": env!("CARGO_PKG_VERSION"),
        "health": "/health",
        "api": "/openapi.json",
        "chains": "/v1/chains",
        "blocks": "/v1/blocks",
        "live_blocks": "/v1/stream/blocks",
        "rpc": "/rpc",
    }))
}

/// Every request no endpoint took.
pub async fn fallback(request: HttpRequest) -> HttpResponse {
    let methods = methods_of(request.path());
    if methods.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::not_found(
            "no such endpoint (GET /openapi.json lists them)",
        ));
    }
    let allow = methods.join(", ");
    let error = ApiError::new(
        "method_not_allowed",
        format!("{} takes {allow}, not {}", request.path(), request.method()),
    );
    HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
        .insert_header(("Allow", allow))
        .json(error.body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_match_with_their_parameters_and_methods() {
        assert_eq!(methods_of("/v1/transactions"), vec!["POST"]);
        assert_eq!(methods_of("/v1/blocks/12"), vec!["GET"]);
        assert_eq!(methods_of("/v1/blocks/12/verify"), vec!["GET"]);
        assert!(
            methods_of("/v1/blocks/").is_empty(),
            "a parameter is not empty"
        );
        assert!(methods_of("/v1/nothing").is_empty());
        assert_eq!(methods_of("/"), vec!["GET"]);
    }
}
