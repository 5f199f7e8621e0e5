//! JSON-RPC 2.0 at `POST /rpc`, in the spirit of CometBFT: `status`, `get_block {height}`,
//! `get_tx {hash}`, `broadcast_tx {envelope}`, `get_balance {address, chain_id?}`.
//! Application errors carry the REST error code in `error.data.code`.

use std::sync::Arc;

use actix_web::{HttpResponse, ResponseError, web};
use domain::tx::SignedEnvelope;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::limits::BODY_LEN_MAX;
use crate::routes::{account_json, chain_json, find_block, transaction_json};

#[derive(Deserialize)]
struct Request {
    jsonrpc: Option<String>,
    id: Option<Value>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

fn error(id: Value, code: i64, message: &str, data: Option<&ApiError>) -> HttpResponse {
    let mut error = json!({"code": code, "message": message});
    if let Some(api) = data {
        error["data"] = json!({"code": api.code, "message": api.message});
    }
    HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id, "error": error}))
}

fn param<'a>(params: &'a Value, name: &str) -> Result<&'a Value, ApiError> {
    params
        .get(name)
        .ok_or_else(|| ApiError::malformed(format!("missing parameter {name:?}")))
}

fn param_str<'a>(params: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    param(params, name)?
        .as_str()
        .ok_or_else(|| ApiError::malformed(format!("parameter {name:?} must be a string")))
}

async fn dispatch(app: &Arc<App>, method: &str, params: &Value) -> Result<Value, Option<ApiError>> {
    let result = match method {
        "status" => {
            let chains: Result<Vec<Value>, ApiError> =
                app.chains.keys().map(|id| chain_json(app, id)).collect();
            Ok(json!({
                "ready": app.is_ready(),
                "log_position": app.store.next_position(),
                "default_chain": app.default_chain,
                "chains": chains?,
            }))
        }
        "get_block" => {
            let chain = params.get("chain_id").and_then(Value::as_str);
            let id = match param(params, "height") {
                Ok(Value::Number(n)) => n.to_string(),
                Ok(_) => return Err(Some(ApiError::malformed("height must be a number"))),
                Err(_) => param_str(params, "hash")?.to_string(),
            };
            find_block(app, chain, &id).map(|b| serde_json::to_value(b).expect("blocks serialize"))
        }
        "get_tx" => transaction_json(app, param_str(params, "hash")?).await,
        "broadcast_tx" => {
            let envelope: SignedEnvelope =
                serde_json::from_value(param(params, "envelope")?.clone())
                    .map_err(|e| ApiError::malformed(format!("envelope: {e}")))?;
            app.submit(envelope)
                .await
                .map(|accepted| serde_json::to_value(accepted).expect("serializes"))
        }
        "get_balance" => account_json(
            app,
            param_str(params, "address")?,
            params.get("chain_id").and_then(Value::as_str),
        ),
        _ => return Err(None),
    };
    result.map_err(Some)
}

/// Handles one JSON-RPC request (batches are not supported). The body is read here, bounded,
/// so that an oversized one gets the API's error shape.
pub async fn handle(app: web::Data<Arc<App>>, mut payload: web::Payload) -> HttpResponse {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::malformed("the request body could not be read").error_response();
        };
        if body.len() + chunk.len() > BODY_LEN_MAX {
            let message = format!("request body is larger than {BODY_LEN_MAX} bytes");
            return ApiError::new("payload_too_large", message).error_response();
        }
        body.extend_from_slice(&chunk);
    }
    let request: Request = match serde_json::from_slice::<Value>(&body) {
        Err(e) => return error(Value::Null, -32700, &format!("parse error: {e}"), None),
        Ok(Value::Array(_)) => {
            let message = "batches are not supported: send one request object";
            return error(Value::Null, -32600, message, None);
        }
        Ok(value) => match serde_json::from_value(value) {
            Ok(request) => request,
            Err(_) => {
                let message = "invalid request: an object with jsonrpc, method, params, id";
                return error(Value::Null, -32600, message, None);
            }
        },
    };
    let id = request.id.unwrap_or(Value::Null);
    let (Some("2.0"), Some(method)) = (request.jsonrpc.as_deref(), request.method.as_deref())
    else {
        return error(
            id,
            -32600,
            "invalid request: needs jsonrpc \"2.0\" and a method",
            None,
        );
    };
    match dispatch(&app, method, &request.params).await {
        Ok(result) => {
            HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
        }
        Err(None) => error(id, -32601, &format!("method {method:?} not found"), None),
        Err(Some(api)) if api.code == "malformed" => {
            error(id, -32602, "invalid params", Some(&api))
        }
        Err(Some(api)) => error(id, -32000, "request failed", Some(&api)),
    }
}
