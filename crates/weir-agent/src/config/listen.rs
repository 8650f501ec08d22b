//! The keys of sources that listen on the network or a Unix socket:
//! where (loopback unless told otherwise), and the limits every listener
//! keeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Token;
use super::{Checker, ConfigError, RawSink, RawSource, SourceConfig};
use crate::sink::forward::{Balance, ForwardSinkConfig};
use crate::source::forward::{self, ForwardConfig};
use crate::source::http_intake;
use crate::source::net::{Endpoint, Limits};
use crate::source::otlp::{self, OtlpConfig};
use crate::source::syslog::{self, Mode, SyslogConfig};
use crate::source::zipkin::{self, ZipkinConfig};
use crate::tls::{ClientFiles, ServerFiles};

/// `[sources.NAME] type = "syslog"`: `mode` tcp (default), udp or unix;
/// `address` (default 127.0.0.1:5514) or, for unix, `path`.
pub(super) fn check_syslog(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<SourceConfig, ConfigError> {
    refuse_file_keys(checker, key, raw)?;
    for (name, value) in [
        ("shared_key", &raw.shared_key),
        ("self_hostname", &raw.self_hostname),
        ("token", &raw.token),
        ("tenant", &raw.tenant),
        ("max_memory", &raw.max_memory),
    ] {
        if let Some(value) = value {
            return Err(not_for(checker, key, name, value.span().start, raw));
        }
    }
    refuse_tokens(checker, key, raw)?;
    let mode = match &raw.mode {
        Some(mode) => checker.choice(
            &format!("{key}.mode"),
            mode,
            &[("tcp", Mode::Tcp), ("udp", Mode::Udp), ("unix", Mode::Unix)],
        )?,
        None => Mode::Tcp,
    };
    let endpoint = match mode {
        Mode::Unix => {
            if let Some(address) = &raw.address {
                return Err(checker.error(
                    address.span().start,
                    format!("{key}.address: mode = \"unix\" listens on path = \"SOCKET\""),
                ));
            }
            let path = raw.path.as_ref().ok_or_else(|| {
                checker.error(
                    raw.r#type.span().start,
                    format!("{key}: mode = \"unix\" needs path = \"SOCKET\""),
                )
            })?;
            Endpoint::Unix(PathBuf::from(path.get_ref()))
        }
        Mode::Tcp | Mode::Udp => {
            if let Some(path) = &raw.path {
                return Err(checker.error(
                    path.span().start,
                    format!("{key}.path: only for mode = \"unix\"; tcp and udp take address"),
                ));
            }
            Endpoint::Inet(address(checker, key, raw, syslog::DEFAULT_PORT)?)
        }
    };
    let tls = server_tls(checker, key, raw)?;
    if let (Some(_), Some(spanned)) = (&tls, &raw.tls)
        && mode != Mode::Tcp
    {
        return Err(checker.error(
            spanned.span().start,
            format!("{key}.tls: only for mode = \"tcp\" (syslog over TLS, RFC 5425)"),
        ));
    }
    Ok(SourceConfig::Syslog(SyslogConfig {
        mode,
        endpoint,
        limits: limits_from(checker, key, raw, Limits::default())?,
        tls,
    }))
}

/// `[sources.NAME] type = "forward"`: `address` (default 127.0.0.1:24224),
/// `shared_key` for the handshake, `self_hostname` (default the machine's),
/// `max_memory` for the connections' buffers and messages.
pub(super) fn check_forward(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<SourceConfig, ConfigError> {
    refuse_file_keys(checker, key, raw)?;
    for (name, value) in [
        ("mode", &raw.mode),
        ("path", &raw.path),
        ("token", &raw.token),
    ] {
        if let Some(value) = value {
            return Err(not_for(checker, key, name, value.span().start, raw));
        }
    }
    refuse_tokens(checker, key, raw)?;
    let mut limits = Limits {
        max_message: forward::DEFAULT_MAX_MESSAGE,
        ..Limits::default()
    };
    limits = limits_from(checker, key, raw, limits)?;
    if let Some(shared_key) = &raw.shared_key
        && shared_key.get_ref().is_empty()
    {
        return Err(checker.error(
            shared_key.span().start,
            format!("{key}.shared_key: empty; leave it out for no handshake"),
        ));
    }
    Ok(SourceConfig::Forward(ForwardConfig {
        tls: server_tls(checker, key, raw)?,
        address: address(checker, key, raw, forward::DEFAULT_PORT)?,
        shared_key: raw.shared_key.as_ref().map(|k| k.get_ref().clone()),
        hostname: raw
            .self_hostname
            .as_ref()
            .map_or_else(forward::hostname, |h| h.get_ref().clone()),
        tenant: tenant(checker, key, raw)?,
        max_memory: max_memory(checker, key, raw, &limits)?,
        limits,
    }))
}

/// `[sinks.NAME] type = "forward"`: `servers = ["HOST:PORT", …]`,
/// `balance` failover (default) or round_robin, `tag` (default
/// "weir"), `gzip`, `require_ack` (default true), `shared_key`,
/// `self_hostname`, `timeout` (default 30s).
pub(super) fn check_forward_sink(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSink,
    at: usize,
) -> Result<ForwardSinkConfig, ConfigError> {
    let listed = raw.servers.as_ref().ok_or_else(|| {
        checker.error(
            at,
            format!("{key}: a forward sink needs servers = [\"HOST:PORT\", ...]"),
        )
    })?;
    if listed.get_ref().is_empty() {
        return Err(checker.error(
            listed.span().start,
            format!("{key}.servers: expected at least one \"HOST:PORT\""),
        ));
    }
    let mut servers = Vec::new();
    for server in listed.get_ref() {
        let address = server.get_ref().parse().map_err(|_| {
            checker.error(
                server.span().start,
                format!(
                    "{key}.servers: {:?} is not an address and port, like \"127.0.0.1:24224\"",
                    server.get_ref()
                ),
            )
        })?;
        servers.push(address);
    }
    let balance = match &raw.balance {
        Some(b) => checker.choice(
            &format!("{key}.balance"),
            b,
            &[
                ("failover", Balance::Failover),
                ("round_robin", Balance::RoundRobin),
            ],
        )?,
        None => Balance::Failover,
    };
    Ok(ForwardSinkConfig {
        tls: client_tls(checker, key, raw)?,
        servers,
        balance,
        tag: raw
            .tag
            .as_ref()
            .map_or_else(|| "weir".to_owned(), |t| t.get_ref().clone()),
        gzip: raw.gzip.unwrap_or(false),
        require_ack: raw.require_ack.unwrap_or(true),
        shared_key: raw.shared_key.as_ref().map(|k| k.get_ref().clone()),
        hostname: raw
            .self_hostname
            .as_ref()
            .map_or_else(forward::hostname, |h| h.get_ref().clone()),
        timeout: match &raw.timeout {
            Some(d) => checker.duration(&format!("{key}.timeout"), d)?,
            None => Duration::from_secs(30),
        },
    })
}

/// `[sources.NAME] type = "otlp"`: `address` (default 127.0.0.1:4318),
/// `token` (clients must send `Authorization: Bearer TOKEN`) or `tokens`
/// (any of them, each maybe with its tenant), `tenant`, `max_memory`
/// (default 256MiB) for the requests under way.
pub(super) fn check_otlp(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<SourceConfig, ConfigError> {
    refuse_file_keys(checker, key, raw)?;
    for (name, value) in [
        ("mode", &raw.mode),
        ("path", &raw.path),
        ("shared_key", &raw.shared_key),
        ("self_hostname", &raw.self_hostname),
    ] {
        if let Some(value) = value {
            return Err(not_for(checker, key, name, value.span().start, raw));
        }
    }
    let limits = Limits {
        max_message: otlp::DEFAULT_MAX_MESSAGE,
        ..Limits::default()
    };
    let limits = limits_from(checker, key, raw, limits)?;
    Ok(SourceConfig::Otlp(OtlpConfig {
        tls: server_tls(checker, key, raw)?,
        address: address(checker, key, raw, otlp::DEFAULT_PORT)?,
        tokens: ingest_tokens(checker, key, raw)?,
        tenant: tenant(checker, key, raw)?,
        max_memory: max_memory(checker, key, raw, &limits)?,
        limits,
    }))
}

/// `max_memory`: what an HTTP source's requests under way, or a forward
/// source's connections, may hold at once; no less than a message of
/// `max_message` may take decoded.
fn max_memory(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
    limits: &Limits,
) -> Result<usize, ConfigError> {
    let least = http_intake::min_max_memory(limits.max_message);
    let Some(size) = &raw.max_memory else {
        return Ok(http_intake::DEFAULT_MAX_MEMORY.max(least));
    };
    let bytes = checker.size(&format!("{key}.max_memory"), size)?;
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    if bytes < least {
        return Err(checker.error(
            size.span().start,
            format!(
                "{key}.max_memory = {:?}: less than {least} bytes, what a body of max_message ({} bytes) may take decoded ({} times)",
                size.get_ref(),
                limits.max_message,
                http_intake::MAX_EXPANSION
            ),
        ));
    }
    Ok(bytes)
}

/// `[sources.NAME] type = "zipkin"`: `address` (default 127.0.0.1:9411),
/// `token`.
pub(super) fn check_zipkin(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<SourceConfig, ConfigError> {
    let SourceConfig::Otlp(otlp) = check_otlp(checker, key, raw)? else {
        unreachable!("check_otlp makes an otlp source");
    };
    let address = match &raw.address {
        Some(_) => otlp.address,
        None => SocketAddr::from(([127, 0, 0, 1], zipkin::DEFAULT_PORT)),
    };
    Ok(SourceConfig::Zipkin(ZipkinConfig {
        address,
        limits: otlp.limits,
        tokens: otlp.tokens,
        tenant: otlp.tenant,
        tls: otlp.tls,
        max_memory: otlp.max_memory,
    }))
}

/// `tls = { ca = "PEM", server_name = "NAME" }` of a sink.
pub(super) fn client_tls(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSink,
) -> Result<Option<ClientFiles>, ConfigError> {
    let Some(tls) = &raw.tls else {
        return Ok(None);
    };
    if tls.get_ref().cert.is_some() || tls.get_ref().key.is_some() {
        return Err(checker.error(
            tls.span().start,
            format!("{key}.tls: a sink takes ca and server_name, not cert and key"),
        ));
    }
    Ok(Some(ClientFiles {
        ca: tls.get_ref().ca.as_ref().map(PathBuf::from),
        server_name: tls.get_ref().server_name.clone(),
    }))
}

/// `tls = { cert = "PEM", key = "PEM" }` of a listener.
fn server_tls(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<Option<ServerFiles>, ConfigError> {
    let Some(tls) = &raw.tls else {
        return Ok(None);
    };
    match (&tls.get_ref().cert, &tls.get_ref().key, &tls.get_ref().ca) {
        (Some(cert), Some(file), None) => Ok(Some(ServerFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(file),
        })),
        _ => Err(checker.error(
            tls.span().start,
            format!("{key}.tls: expected {{ cert = \"PEM FILE\", key = \"PEM FILE\" }}"),
        )),
    }
}

/// `address = "HOST:PORT"`, by default on loopback.
fn address(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
    default_port: u16,
) -> Result<SocketAddr, ConfigError> {
    let Some(address) = &raw.address else {
        return Ok(SocketAddr::from(([127, 0, 0, 1], default_port)));
    };
    address.get_ref().parse().map_err(|_| {
        checker.error(
            address.span().start,
            format!(
                "{key}.address = {:?}: expected an address and port, like \"127.0.0.1:{default_port}\"",
                address.get_ref()
            ),
        )
    })
}

/// The limits `raw` sets, over `limits`.
fn limits_from(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
    mut limits: Limits,
) -> Result<Limits, ConfigError> {
    if let Some(size) = &raw.max_message {
        let bytes = checker.size(&format!("{key}.max_message"), size)?;
        limits.max_message = bytes.clamp(1, 64 << 20) as usize;
    }
    if let Some(count) = &raw.max_connections {
        limits.max_connections =
            checker.positive(&format!("{key}.max_connections"), count, 1 << 16)?;
    }
    if let Some(timeout) = &raw.read_timeout {
        limits.read_timeout = checker.duration(&format!("{key}.read_timeout"), timeout)?;
    }
    Ok(limits)
}

/// The tokens of an HTTP source: `token`, and those of `tokens` with
/// their tenants.
fn ingest_tokens(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(token) = &raw.token {
        if token.get_ref().is_empty() {
            return Err(checker.error(
                token.span().start,
                format!("{key}.token: empty; leave it out for none"),
            ));
        }
        tokens.push(Token {
            token: token.get_ref().clone(),
            tenant: None,
        });
    }
    if let Some(listed) = &raw.tokens {
        let listed = checker.tokens(&format!("{key}.tokens"), listed.get_ref())?;
        if listed
            .iter()
            .any(|t| tokens.iter().any(|o| o.token == t.token))
        {
            return Err(checker.error(
                raw.token.as_ref().map_or(0, |t| t.span().start),
                format!("{key}.token: also in {key}.tokens"),
            ));
        }
        tokens.extend(listed);
    }
    Ok(tokens)
}

/// `tenant`: every record the source takes belongs to it.
fn tenant(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<Option<String>, ConfigError> {
    match &raw.tenant {
        Some(tenant) if tenant.get_ref().is_empty() => Err(checker.error(
            tenant.span().start,
            format!("{key}.tenant: empty; leave it out for none"),
        )),
        tenant => Ok(tenant.as_ref().map(|t| t.get_ref().clone())),
    }
}

/// A source that takes no `tokens` given some.
fn refuse_tokens(checker: &Checker<'_>, key: &str, raw: &RawSource) -> Result<(), ConfigError> {
    match &raw.tokens {
        Some(tokens) => Err(not_for(checker, key, "tokens", tokens.span().start, raw)),
        None => Ok(()),
    }
}

/// A file or monitor source given a listener's keys.
pub(super) fn refuse_listener_keys(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSource,
) -> Result<(), ConfigError> {
    let strings = [
        ("mode", &raw.mode),
        ("address", &raw.address),
        ("path", &raw.path),
        ("max_message", &raw.max_message),
        ("max_memory", &raw.max_memory),
        ("read_timeout", &raw.read_timeout),
        ("shared_key", &raw.shared_key),
        ("self_hostname", &raw.self_hostname),
        ("token", &raw.token),
        ("tenant", &raw.tenant),
    ];
    for (name, value) in strings {
        if let Some(value) = value {
            return Err(not_for(checker, key, name, value.span().start, raw));
        }
    }
    refuse_tokens(checker, key, raw)?;
    if let Some(value) = &raw.max_connections {
        return Err(not_for(
            checker,
            key,
            "max_connections",
            value.span().start,
            raw,
        ));
    }
    Ok(())
}

/// A listener given a file source's keys.
fn refuse_file_keys(checker: &Checker<'_>, key: &str, raw: &RawSource) -> Result<(), ConfigError> {
    let strings = [
        ("dir", &raw.dir),
        ("format", &raw.format),
        ("start_at", &raw.start_at),
        ("max_record", &raw.max_record),
        ("poll", &raw.poll),
    ];
    for (name, value) in strings {
        if let Some(value) = value {
            return Err(not_for(checker, key, name, value.span().start, raw));
        }
    }
    if let Some(include) = &raw.include {
        return Err(not_for(checker, key, "include", include.span().start, raw));
    }
    Ok(())
}

fn not_for(
    checker: &Checker<'_>,
    key: &str,
    name: &str,
    at: usize,
    raw: &RawSource,
) -> ConfigError {
    checker.error(
        at,
        format!(
            "{key}.{name}: not a key of a {} source",
            raw.r#type.get_ref()
        ),
    )
}
