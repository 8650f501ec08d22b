//! The collector's HTTP API: Zipkin's v2 query API under `/api/v2/`, so
//! Zipkin tools and Grafana work unchanged, and weir's own under `/api/v1/`
//! (logs, their histogram and live tail, bandwidth). Both read the store
//! through [`Store`] only, on blocking threads, so a slow query never
//! holds up the listener's intake.
//!
//! With query tokens configured, every request needs `Authorization:
//! Bearer TOKEN` (or, from a browser, the cookie the UI's sign-in form
//! sets), and a token limited to a tenant sees only its records.
//!
//! The web UI ([`crate::ui`]) is served beside the API, from the same
//! store.

pub(crate) mod logs;
pub mod params;
pub(crate) mod zipkin;

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use weir_agent::auth_guard;
use weir_agent::config::Token;
use weir_agent::http_server::{Body, Handler, whole};

use self::params::Params;
use crate::store::{Scope, Store, StoreError};
use crate::ui;

/// The API's state.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub tokens: Vec<Token>,
    pub autocomplete_keys: Vec<String>,
    /// Served over HTTPS (by a zipkin source with TLS on its address).
    pub secure: bool,
}

/// An answer that is not a success: the status and what to say.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        let status = match error {
            StoreError::TooSlow(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure {
            status,
            message: error.to_string(),
        }
    }
}

/// What a request is answered from: its path, parameters and who asks.
pub struct Asked {
    pub path: String,
    pub params: Params,
    pub scope: Scope,
    /// `Last-Event-ID`, for a live tail picked up again.
    pub last_event_id: Option<String>,
}

/// Whether a `Host` header names loopback (with or without a port).
fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Api {
    /// The API as a handler for the pipeline's HTTP listener.
    pub fn handler(self: Arc<Api>) -> Handler {
        Arc::new(move |request| {
            let api = Arc::clone(&self);
            Box::pin(async move { api.answer(request).await })
        })
    }

    async fn answer(self: Arc<Api>, request: Request<Incoming>) -> Response<Body> {
        if request.uri().path() == ui::SIGN_IN && request.method() == Method::POST {
            return ui::sign_in(&self.tokens, self.secure, request).await;
        }
        if request.method() == Method::OPTIONS && self.cors(request.uri().path()) {
            return preflight();
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return failure(Failure {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: format!(
                    "{} {}: the API answers GET",
                    request.method(),
                    request.uri().path()
                ),
            });
        }
        if let Some(asset) = ui::asset(request.uri().path()) {
            return asset;
        }
        let for_ui = ui::owns(request.uri().path());
        let scope = match self.scope(&request) {
            Ok(scope) => scope,
            Err(failure) if for_ui && failure.status == StatusCode::UNAUTHORIZED => {
                let asked_for = request.uri().path_and_query().map_or("/", |p| p.as_str());
                return ui::sign_in_form(asked_for);
            }
            Err(failure) => return self::failure(failure),
        };
        let asked = Asked {
            path: request.uri().path().to_owned(),
            params: Params::parse(request.uri().query()),
            scope,
            last_event_id: request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        if asked.path == "/api/v1/logs/tail" {
            return logs::tail(Arc::clone(&self.store), asked);
        }
        let api = Arc::clone(&self);
        if for_ui {
            return tokio::task::spawn_blocking(move || ui::answer(&api, &asked))
                .await
                .unwrap_or_else(|e| {
                    self::failure(Failure {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: format!("the page failed: {e}"),
                    })
                });
        }
        let answered = tokio::task::spawn_blocking(move || api.route(&asked)).await;
        match answered {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => self::failure(failure),
            Err(e) => self::failure(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the query failed: {e}"),
            }),
        }
    }

    /// Whose records the request may read.
    fn scope(&self, request: &Request<Incoming>) -> Result<Scope, Failure> {
        if self.tokens.is_empty() {
            // Without tokens the API listens on loopback only, and answers
            // only requests addressed to loopback: a web page whose own
            // name an attacker points at 127.0.0.1 (DNS rebinding) would
            // otherwise read it as its own origin.
            return match request.headers().get(hyper::header::HOST) {
                Some(host) if !is_loopback_host(host.as_bytes()) => Err(Failure {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "Host {:?}: without query tokens the API answers only requests to localhost, 127.0.0.1 or [::1]",
                        String::from_utf8_lossy(host.as_bytes())
                    ),
                }),
                _ => Ok(Scope::All),
            };
        }
        let given = weir_agent::source::http_intake::bearer(request)
            .or_else(|| ui::cookie_token(request))
            .unwrap_or("");
        let peer = weir_agent::http_server::peer(request);
        if !given.is_empty() {
            shut_out(peer)?;
        }
        match Token::find(&self.tokens, given) {
            Some(Token {
                tenant: Some(tenant),
                ..
            }) => Ok(Scope::Tenant(tenant.clone())),
            Some(_) => Ok(Scope::All),
            None => {
                if !given.is_empty() {
                    auth_guard::shared().failed(peer, given.as_bytes());
                }
                Err(Failure {
                    status: StatusCode::UNAUTHORIZED,
                    message: "expected Authorization: Bearer TOKEN (a query token)".into(),
                })
            }
        }
    }

    /// Whether other origins may read `path`. Zipkin's server lets any
    /// origin read its API; weir does so only where a token guards it
    /// (which a page sends as `Authorization`, after a preflight):
    /// otherwise any web page open in the operator's browser could read
    /// the traces of a collector on loopback.
    fn cors(&self, path: &str) -> bool {
        let path = path.strip_prefix("/zipkin").unwrap_or(path);
        !self.tokens.is_empty() && path.starts_with("/api/v2/")
    }

    fn route(&self, asked: &Asked) -> Result<Response<Body>, Failure> {
        let path = asked.path.strip_prefix("/zipkin").unwrap_or(&asked.path);
        if let Some(endpoint) = path.strip_prefix("/api/v2/") {
            let mut answer = zipkin::answer(self, endpoint, asked)?;
            if self.cors(&asked.path) {
                answer
                    .headers_mut()
                    .insert("access-control-allow-origin", HeaderValue::from_static("*"));
            }
            return Ok(answer);
        }
        match path {
            "/api/v1/logs" => logs::search(self.store.as_ref(), asked),
            "/api/v1/logs/histogram" => logs::histogram(self.store.as_ref(), asked),
            "/api/v1/usage" => logs::usage(self.store.as_ref(), asked),
            "/health" => Ok(json(&serde_json::json!({ "status": "ok" }))),
            _ => Err(Failure::not_found(format!("no {path} here"))),
        }
    }
}

/// A 200 with `value` as JSON.
pub fn json(value: &impl serde::Serialize) -> Response<Body> {
    json_bytes(serde_json::to_vec(value).unwrap_or_default())
}

/// A 200 with JSON already encoded.
pub fn json_bytes(body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(whole(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The answer to a CORS preflight: any origin may GET with a token.
fn preflight() -> Response<Body> {
    let mut response = Response::new(whole(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    for (name, value) in [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "GET, HEAD"),
        ("access-control-allow-headers", "authorization"),
        ("access-control-max-age", "86400"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

pub fn failure(failure: Failure) -> Response<Body> {
    let mut response = Response::new(whole(failure.message + "\n"));
    *response.status_mut() = failure.status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if failure.status == StatusCode::TOO_MANY_REQUESTS {
        // A client shut out for wrong tokens: the most it waits.
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from_static(auth_guard::RETRY_AFTER),
        );
    }
    response
}

/// Refuses (429) a client that gave too many wrong tokens lately
/// ([`auth_guard`]).
pub fn shut_out(peer: Option<std::net::IpAddr>) -> Result<(), Failure> {
    match auth_guard::shared().shut_out(peer) {
        Some(_) => Err(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: weir_agent::source::http_intake::SHUT_OUT.into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:9411",
            "127.0.0.1:9411",
            "127.9.9.9",
            "[::1]:9411",
            "[::1]",
        ] {
            assert!(super::is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9411",
            "10.0.0.1:9411",
            "[::2]:1",
            "localhost.evil.example",
            "",
        ] {
            assert!(!super::is_loopback_host(host.as_bytes()), "{host}");
        }
    }
}
