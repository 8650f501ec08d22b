//! Signing in from a browser, when the collector has query tokens: a form
//! takes the token once and keeps it in an HTTP-only cookie, which the API
//! then accepts as it accepts `Authorization: Bearer`.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{COOKIE, HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use weir_agent::auth_guard;
use weir_agent::config::Token;
use weir_agent::http_server::Body;

use super::html::{self, esc};
use crate::api::params::Params;

/// Where the form is sent.
pub const SIGN_IN: &str = "/ui/sign-in";

/// The cookie that carries the token.
const COOKIE_NAME: &str = "weir_token";

/// The largest form accepted: a token and where to go next.
const MAX_FORM: usize = 4096;

/// The token in the request's `weir_token` cookie, if any.
pub fn cookie_token<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// Whether `then` is one of the UI's pages (with its query), where the
/// browser may be sent after signing in: never another site's address,
/// however a browser would read it (`//x`, `/\x`, a tab or a control).
fn is_page(then: &str) -> bool {
    let path = then.split('?').next().unwrap_or("");
    then.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && !then.starts_with("//")
        && super::owns(path)
        && !path.starts_with("/ui/")
}

/// The form, answered (401) to a browser that has no valid token.
pub fn sign_in_form(then: &str) -> Response<Body> {
    let body = format!(
        "<h1>Sign in</h1><p class=\"lead\">This collector asks for a query token.</p>\
         <form class=\"search\" method=\"post\" action=\"{SIGN_IN}\">\
         <label>query token <input name=\"token\" type=\"password\" size=\"40\" autofocus></label>\
         <input type=\"hidden\" name=\"then\" value=\"{}\"><button type=\"submit\">Sign in</button></form>",
        esc(then)
    );
    super::html_response(StatusCode::UNAUTHORIZED, html::page("Sign in", "", &body))
}

/// How long a browser keeps the token after signing in.
const COOKIE_MAX_AGE_S: u32 = 12 * 3600;

/// Takes the form: a known token is set as the cookie and the browser sent
/// on to the page it asked for; another gets the form again, and counts
/// against the client ([`auth_guard`], which past its failures answers
/// 429 instead of comparing). A form another site's page sent is refused
/// (403) and not counted, so no page can spend an operator's guesses.
/// Over HTTPS (`secure`) the cookie is only ever sent back over HTTPS.
pub async fn sign_in(tokens: &[Token], secure: bool, request: Request<Incoming>) -> Response<Body> {
    if is_cross_site(&request) {
        return crate::api::failure(crate::api::Failure {
            status: StatusCode::FORBIDDEN,
            message: "a sign-in form sent from another site's page".into(),
        });
    }
    let peer = weir_agent::http_server::peer(&request);
    let form = match Limited::new(request.into_body(), MAX_FORM).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let params = Params::parse(std::str::from_utf8(&form).ok());
    let token = params.get("token").unwrap_or("");
    let then = params.get("then").filter(|t| is_page(t)).unwrap_or("/");
    // Checked once the form is in, right before comparing: a client may
    // start many before it sends any.
    if !token.is_empty()
        && let Err(failure) = crate::api::shut_out(peer)
    {
        return crate::api::failure(failure);
    }
    let known = Token::find(tokens, token).is_some();
    if !known || token.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
        if !token.is_empty() {
            auth_guard::shared().failed(peer, token.as_bytes());
        }
        return sign_in_form(then);
    }
    let mut response = Response::new(weir_agent::http_server::whole(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(then) {
        headers.insert(LOCATION, location);
    }
    if let Ok(cookie) = HeaderValue::from_str(&cookie(token, secure)) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}

/// Whether a browser says another site's page sent the request: by
/// `Sec-Fetch-Site`, or an `Origin` that is not the `Host` asked.
fn is_cross_site<B>(request: &Request<B>) -> bool {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    match header("sec-fetch-site") {
        "cross-site" | "same-site" => return true,
        "same-origin" | "none" => return false,
        _ => {}
    }
    let origin = header("origin");
    if origin.is_empty() {
        return false;
    }
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    !authority.eq_ignore_ascii_case(header("host"))
}

/// The `Set-Cookie` value that keeps `token`.
fn cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict{secure}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_expires_and_is_kept_to_https_when_served_over_it() {
        assert_eq!(
            cookie("t0123456789abcdef", false),
            "weir_token=t0123456789abcdef; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"
        );
        assert!(cookie("t0123456789abcdef", true).ends_with("; SameSite=Strict; Secure"));
    }

    #[test]
    fn only_the_ui_s_own_pages_are_places_to_go_after_signing_in() {
        for good in [
            "/",
            "/logs?q=error&lookback=1h",
            "/traces/abc",
            "/dependencies",
        ] {
            assert!(is_page(good), "{good}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "/api/v1/logs",
            "/ui/sign-in",
            "",
        ] {
            assert!(!is_page(bad), "{bad:?}");
        }
    }
}
