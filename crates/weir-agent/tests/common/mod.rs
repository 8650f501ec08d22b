//! A real HTTP receiver on loopback for sink tests: it records every batch
//! it is sent and answers as the test scripts it (fail, stall, accept).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// How the receiver answers request number `n` (from 0).
pub type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// 503 with `Retry-After: 0`.
    Fail,
    /// Accept, but only after this long.
    Stall(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub lines: Vec<String>,
    pub answer: Answer,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(script: Script) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
                            async move {
                                let body = match request.into_body().collect().await {
                                    Ok(body) => body.to_bytes(),
                                    Err(_) => Bytes::new(),
                                };
                                let lines = String::from_utf8_lossy(&body)
                                    .lines()
                                    .map(str::to_owned)
                                    .collect();
                                let n = seen.lock().unwrap().len();
                                let answer = script(n);
                                seen.lock().unwrap().push(Received { lines, answer });
                                let status = match answer {
                                    Answer::Accept => StatusCode::OK,
                                    Answer::Fail => StatusCode::SERVICE_UNAVAILABLE,
                                    Answer::Stall(pause) => {
                                        tokio::time::sleep(pause).await;
                                        StatusCode::OK
                                    }
                                };
                                Response::builder()
                                    .status(status)
                                    .header("retry-after", "0")
                                    .body(Full::new(Bytes::new()))
                                    .map_err(|e| e.to_string())
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Receiver { addr, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
