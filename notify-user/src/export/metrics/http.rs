//! The metrics endpoint: a minimal HTTP/1.1 responder on tokio's TcpListener, serving
//! `/metrics` and `/healthz`.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::export::metrics::registry::Metrics;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const MAX_REQUEST: usize = 16 << 10;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// Parses the head of an HTTP/1.x request (up to the blank line).
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Some(Request { method, path })
}

/// Where the head of a request ends (the blank line: CRLF CRLF, or LF LF from a lax client),
/// if it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// Status, content type and body for a request.
pub fn respond(m: &Metrics, req: &Request) -> (u16, &'static str, String) {
    if req.method != "GET" && req.method != "HEAD" {
        return (405, "text/plain; charset=utf-8", "use GET\n".into());
    }
    match req.path.as_str() {
        "/metrics" => (200, OPENMETRICS, m.render()),
        "/healthz" => {
            let h = m.health();
            let code = if h.ok() { 200 } else { 503 };
            let mut body = serde_json::to_string(&h).unwrap_or_default();
            body.push('\n');
            (code, "application/json", body)
        }
        "/" => (
            200,
            "text/plain; charset=utf-8",
            "notify agent: /metrics (Prometheus), /healthz (200 when every required probe is \
             attached, else 503)\n"
                .into(),
        ),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        ),
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn handle(mut sock: TcpStream, m: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(p) = head_end(&buf) {
            break Some(p);
        }
        if buf.len() > MAX_REQUEST {
            break None;
        }
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout(READ_TIMEOUT, sock.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let req = end.and_then(|e| parse_request(&buf[..e]));
    let (code, ctype, body, head_only) = match req {
        Some(r) => {
            let (c, t, b) = respond(&m, &r);
            (c, t, b, r.method == "HEAD")
        }
        None => (
            400,
            "text/plain; charset=utf-8",
            "bad request\n".into(),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        reason_phrase(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    sock.write_all(&out).await?;
    sock.shutdown().await
}

/// Binds the endpoint (port 0 picks a free one: the bound address is returned).
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the runtime stops. One task per connection; scrapes are tiny.
pub async fn serve(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let m = m.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(sock, m).await {
                        log::debug!("metrics connection: {e}");
                    }
                });
            }
            Err(e) => {
                log::warn!("metrics endpoint accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
