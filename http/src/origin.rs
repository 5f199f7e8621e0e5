//! Requests a web page could forge: a node on a developer's machine must not be driven by the
//! pages its browser opens.
//!
//! - A request whose `Origin` is another site (not the `Host` it was sent to, nor one of
//!   `allowed_origins`) is refused, 403 `forbidden_origin`: browsers send `Origin` on every
//!   cross-site POST, whatever its body.
//! - A node listening on a loopback address answers only requests addressed to a loopback name
//!   (`localhost`, `127.0.0.1`, `[::1]`, any port) or to one of `allowed_hosts`, 403
//!   `forbidden_host`: a DNS-rebinding page reaches it under its own name. A node listening on
//!   another address checks `Host` only when `allowed_hosts` is set.
//! - A POST whose body is declared as anything but JSON (`text/plain`, a form) is refused, 415
//!   `unsupported_media_type`; raw blob uploads are exempt. A body without `Content-Type` is
//!   read as JSON.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;

use crate::error::ApiError;

/// Which hosts and origins a node answers.
#[derive(Clone, Debug)]
pub struct RequestPolicy {
    /// Only loopback names in `Host` (the node listens on a loopback address).
    loopback_only: bool,
    /// Hosts accepted besides (`host` or `host:port`, lowercase).
    allowed_hosts: Vec<String>,
    /// Origins accepted besides the node's own (`scheme://host[:port]`, lowercase).
    allowed_origins: Vec<String>,
}

/// Paths whose POST body is not JSON.
const RAW_BODY_PATHS: [&str; 1] = ["/v1/blobs"];

impl RequestPolicy {
    /// The policy of a node listening on `listen`.
    pub fn new(listen: &str, allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        RequestPolicy {
            loopback_only: is_loopback(host_of(listen)),
            allowed_hosts: lower(allowed_hosts),
            allowed_origins: lower(allowed_origins),
        }
    }

    /// Why `request` is refused, if it is.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &header::HeaderMap,
    ) -> Result<(), ApiError> {
        // Compared without allocating: this runs on every request.
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let host = text(header::HOST).unwrap_or_default();
        let host_allowed = self
            .allowed_hosts
            .iter()
            .any(|h| same(h, host) || same(h, host_of(host)));
        let host_checked = self.loopback_only || !self.allowed_hosts.is_empty();
        if host_checked && !host_allowed && !(self.loopback_only && is_loopback(host_of(host))) {
            return Err(ApiError::new(
                "forbidden_host",
                format!("this node does not answer requests for host {host:?} (see allowed_hosts)"),
            ));
        }
        if let Some(origin) = text(header::ORIGIN) {
            let own = origin
                .split_once("://")
                .is_some_and(|(_, rest)| same(rest, host));
            if !own && !self.allowed_origins.iter().any(|o| same(o, origin)) {
                return Err(ApiError::new(
                    "forbidden_origin",
                    format!("requests from pages of {origin} are refused (see allowed_origins)"),
                ));
            }
        }
        let declared = match method == Method::POST && !RAW_BODY_PATHS.contains(&path) {
            true => text(header::CONTENT_TYPE),
            false => None,
        };
        let essence = declared.map(|d| d.split(';').next().unwrap_or_default().trim());
        let json = |essence: &str| {
            same(essence, "application/json")
                || essence.len() > 5 && same(&essence[essence.len() - 5..], "+json")
        };
        match essence {
            Some(essence) if !json(essence) => Err(ApiError::new(
                "unsupported_media_type",
                format!("the body is JSON: send Content-Type: application/json, not {essence:?}"),
            )),
            _ => Ok(()),
        }
    }
}

/// The host of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: refuses what [`RequestPolicy::check`] refuses, before any handler runs.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(policy) = request.app_data::<actix_web::web::Data<RequestPolicy>>() {
        policy.check(request.method(), request.path(), request.headers())?;
    }
    next.call(request).await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A request (method, path, headers) and the code it gets.
    type Case<'a> = (Method, &'a str, Vec<(&'static str, &'a str)>, &'a str);

    fn code(
        policy: &RequestPolicy,
        method: Method,
        path: &str,
        pairs: &[(&'static str, &str)],
    ) -> &'static str {
        match policy.check(&method, path, &headers(pairs)) {
            Ok(()) => "ok",
            Err(e) => e.code,
        }
    }

    #[test]
    fn pages_of_other_sites_and_rebound_names_are_refused() {
        let local = RequestPolicy::new("127.0.0.1:18000", &[], &[]);
        let here = ("host", "127.0.0.1:18000");
        let json = ("content-type", "application/json");
        let typed = |t| [here, ("content-type", t)];
        let cases: [Case; 13] = [
            (Method::POST, "/v1/transactions", vec![here, json], "ok"),
            (
                Method::GET,
                "/health",
                vec![("host", "localhost:18000")],
                "ok",
            ),
            (Method::GET, "/health", vec![("host", "[::1]:18000")], "ok"),
            (
                Method::GET,
                "/health",
                vec![("host", "attacker.example:18000")],
                "forbidden_host",
            ),
            (
                Method::POST,
                "/v1/faucet",
                vec![here, ("origin", "https://evil.example"), json],
                "forbidden_origin",
            ),
            (
                Method::POST,
                "/v1/faucet",
                vec![here, ("origin", "http://127.0.0.1:18000"), json],
                "ok",
            ),
            (
                Method::POST,
                "/v1/faucet",
                typed("text/plain;charset=UTF-8").to_vec(),
                "unsupported_media_type",
            ),
            (
                Method::POST,
                "/rpc",
                typed("application/x-www-form-urlencoded").to_vec(),
                "unsupported_media_type",
            ),
            (
                Method::POST,
                "/v1/blobs",
                typed("application/octet-stream").to_vec(),
                "ok",
            ),
            (
                Method::POST,
                "/v1/faucet",
                typed("application/problem+json").to_vec(),
                "ok",
            ),
            (
                Method::POST,
                "/v1/faucet",
                vec![
                    ("host", "LOCALHOST:18000"),
                    ("content-type", "Application/JSON; charset=UTF-8"),
                ],
                "ok",
            ),
            (Method::POST, "/v1/faucet", vec![here], "ok"),
            (Method::GET, "/health", vec![], "forbidden_host"),
        ];
        for (method, path, headers, expected) in cases {
            assert_eq!(
                code(&local, method, path, &headers),
                expected,
                "{path} {headers:?}"
            );
        }
        let public = RequestPolicy::new("0.0.0.0:18000", &[], &["https://wallet.example".into()]);
        assert_eq!(
            code(
                &public,
                Method::GET,
                "/health",
                &[("host", "node.example:18000")]
            ),
            "ok"
        );
        let allowed = [
            ("host", "node.example"),
            ("origin", "https://wallet.example"),
            json,
        ];
        assert_eq!(code(&public, Method::POST, "/v1/faucet", &allowed), "ok");
        let named = RequestPolicy::new("0.0.0.0:18000", &["node.example".into()], &[]);
        assert_eq!(
            code(
                &named,
                Method::GET,
                "/health",
                &[("host", "node.example:443")]
            ),
            "ok"
        );
        let other = [("host", "other.example")];
        assert_eq!(
            code(&named, Method::GET, "/health", &other),
            "forbidden_host"
        );
    }
}
