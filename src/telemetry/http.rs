//! The operations port: `/metrics` (Prometheus text), `/health/live` (the
//! process answers) and `/health/ready` (started, catalog reachable, not
//! stopping), over HTTP/1.1 on its own address. It serves only these three
//! GETs; it reads the registry and never touches the pipeline.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::metrics::metrics;

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` (so a taken port fails the start, not a later request) and
/// serves on a task until the runtime ends. Returns the bound address and
/// the task, which never ends by itself (its supervisor watches it).
pub async fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(
        addr = %bound,
        "serving /metrics, /health/live and /health/ready on http://{bound}"
    );
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: try again shortly.
                    tracing::warn!(error = %e, "operations port: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            crate::failpoint::hit(crate::failpoint::FailPoint::OperationsRequest);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| {
                    let response = answer(&req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, server))
}

/// The response to one request.
fn answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n".into(),
        );
    }
    let m = metrics();
    match req.uri().path() {
        "/metrics" => {
            let now = chrono::Utc::now().timestamp_micros();
            respond(StatusCode::OK, PROMETHEUS_TEXT, m.render(now))
        }
        "/health/live" => respond(StatusCode::OK, "text/plain", "live\n".into()),
        "/health/ready" => match m.not_ready_reason() {
            None => respond(StatusCode::OK, "text/plain", "ready\n".into()),
            Some(why) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /health/live or /health/ready\n".into(),
        ),
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// `floe health`: GETs `path` on `addr` (an unspecified address means this
/// host) and tells whether it answered 200, with the body.
pub async fn check(addr: SocketAddr, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("http://{addr}{path}: no answer within 5s"))?
        .map_err(|e| format!("http://{addr}{path}: {e}"))?;
    let status = response.split(' ').nth(1).unwrap_or("");
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim();
    if status == "200" {
        Ok(body.to_string())
    } else {
        Err(format!("http://{addr}{path}: {status} {body}"))
    }
}
