//! The web UI: pages rendered on the server from the same [`Store`] the
//! API reads, with SVG charts and a little plain JavaScript (the live tail,
//! folding the waterfall), all built into the binary. Every page reads
//! well without JavaScript.
//!
//! - `/`: the overview, log bandwidth per node and container;
//! - `/logs`: search, a histogram of what matches, the live tail;
//! - `/traces`: search by service, operation, duration and tags;
//! - `/traces/{id}`: a trace's waterfall;
//! - `/dependencies`: which service calls which.
//!
//! [`Store`]: crate::store::Store

mod html;
mod logs;
mod overview;
mod sign_in;
mod svg;
mod traces;

pub use self::sign_in::{SIGN_IN, cookie_token, sign_in, sign_in_form};

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use weir_agent::http_server::{Body, whole};

use self::html::esc;
use crate::api::params::{BadRequest, Params};
use crate::api::{Api, Asked, Failure};

const CSS: &str = include_str!("assets/weir.css");
const JS: &str = include_str!("assets/weir.js");

/// A page made: its title, its place in the navigation, its content.
pub struct Page {
    title: String,
    active: &'static str,
    body: String,
}

impl Page {
    fn new(title: impl Into<String>, active: &'static str, body: String) -> Page {
        Page {
            title: title.into(),
            active,
            body,
        }
    }
}

/// Whether `path` is the UI's.
pub fn owns(path: &str) -> bool {
    matches!(path, "/" | "/logs" | "/traces" | "/dependencies")
        || path.starts_with("/traces/")
        || path.starts_with("/ui/")
}

/// Answers a request for one of the UI's paths.
pub fn answer(api: &Api, asked: &Asked) -> Response<Body> {
    let now_ns = weir_monitor::format::timestamp::Timestamp::now().as_nanos() as i64;
    let store = api.store.as_ref();
    let made = match asked.path.as_str() {
        "/" => overview::page(store, asked, now_ns),
        "/logs" => logs::page(store, asked, now_ns),
        "/traces" => traces::search(store, asked, now_ns),
        "/dependencies" => traces::dependencies(store, asked, now_ns),
        path => match path.strip_prefix("/traces/") {
            Some(id) => traces::trace(store, asked, id),
            None => Err(Failure::not_found(format!("no {path} here"))),
        },
    };
    match made {
        Ok(page) => html_response(
            StatusCode::OK,
            html::page(&page.title, page.active, &page.body),
        ),
        Err(failure) => {
            let body = format!(
                "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">Overview</a></p>",
                failure.status.canonical_reason().unwrap_or("Error"),
                esc(&failure.message)
            );
            html_response(failure.status, html::page("Error", "", &body))
        }
    }
}

fn html_response(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(whole(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The pages load only their own script and stylesheet (inline style
    // attributes place the bars), are never framed, and send no referrer:
    // a search's words stay out of other sites' logs.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// The stylesheet or the script at `path`, if it names one: served to
/// anyone, as the sign-in page needs them.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let (text, kind) = match path {
        "/ui/weir.css" => (CSS, "text/css; charset=utf-8"),
        "/ui/weir.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut response = Response::new(whole(Bytes::from_static(text.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    Some(response)
}

/// The time spans the pages offer: name, seconds and label.
const LOOKBACKS: [(&str, i64, &str); 6] = [
    ("15m", 15 * 60, "15 minutes"),
    ("1h", 3600, "1 hour"),
    ("6h", 6 * 3600, "6 hours"),
    ("24h", 24 * 3600, "24 hours"),
    ("7d", 7 * 86400, "7 days"),
    ("31d", 31 * 86400, "31 days"),
];

/// The `lookback` asked for (one of [`LOOKBACKS`]), or `default`: its
/// name and length.
fn lookback_ns(params: &Params, default: &'static str) -> Result<(&'static str, i64), BadRequest> {
    let asked = params.text("lookback").unwrap_or(default);
    LOOKBACKS
        .iter()
        .find(|(name, _, _)| *name == asked)
        .map(|(name, s, _)| (*name, s * 1_000_000_000))
        .ok_or_else(|| {
            let names: Vec<&str> = LOOKBACKS.iter().map(|(n, _, _)| *n).collect();
            format!("lookback={asked:?}: expected one of {}", names.join(", "))
        })
}

/// Links to the same page over each time span, `keep` carried along.
fn lookback_picker(path: &str, current: &str, keep: &[(&str, &str)]) -> String {
    let mut out = String::from("<nav class=\"span\">");
    for (name, _, _) in LOOKBACKS {
        let mut href = format!("{path}?lookback={name}");
        for (key, value) in keep.iter().filter(|(_, v)| !v.is_empty()) {
            href.push_str(&format!("&{key}={}", html::url(value)));
        }
        let class = if name == current { " class=\"on\"" } else { "" };
        out.push_str(&format!("<a href=\"{}\"{class}>{name}</a>", esc(&href)));
    }
    out.push_str("</nav>");
    out
}
