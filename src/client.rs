//! A client of the control API over its Unix socket, for `rvswitch ctl` and
//! the tests.
//!
//! Built on hyper 1's HTTP/1.1 client connection (with hyper-util's tokio
//! adapter) on a current-thread runtime rather than a hand-written blocking
//! client: the daemon already links hyper and tokio, so this costs no new
//! code to audit, and hyper gets the parts that are easy to get wrong by
//! hand right — chunked transfer decoding for the streamed pcap, header
//! framing, early EOF. One connection per request keeps it simple; the CLI
//! makes one or two requests per run.
//!
//! Requests carry the API's own types ([`crate::api`]) through
//! [`Client::send`], [`Client::post`] and [`Client::patch`], so a client
//! cannot build a body the daemon does not understand; [`Client::request`]
//! takes any JSON (the tests send malformed bodies with it).
//!
//! Owns: connecting, framing, streaming a body out. Never: interpreting
//! resources (that is `ctl.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {path}: {source} (is `rvswitch daemon` running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon at {path}: {reason}")]
    Http { path: PathBuf, reason: String },
    #[error("writing the response: {0}")]
    Output(#[source] std::io::Error),
    #[error("starting the client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("{0}")]
    Api(ApiFailure),
}

/// A 4xx/5xx answer: the status and the API's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The API's `error` text (or the raw body).
    pub fn error_message(&self) -> String {
        match self.json().get("error").and_then(|e| e.as_str()) {
            Some(e) => e.to_string(),
            None => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }

    /// `Err` for a 4xx/5xx answer.
    pub fn ok(self) -> Result<Reply, ClientError> {
        if self.status >= 400 {
            Err(ClientError::Api(ApiFailure {
                status: self.status,
                message: self.error_message(),
            }))
        } else {
            Ok(self)
        }
    }
}

pub struct Client {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Client {
    pub fn new(socket: &Path) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        Ok(Client {
            socket: socket.to_path_buf(),
            rt,
        })
    }

    fn http_err(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Http {
            path: self.socket.clone(),
            reason: e.to_string(),
        }
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.http_err(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "rvswitch");
        if body.is_some() {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(body.unwrap_or_default()))
            .map_err(|e| self.http_err(e))
    }

    /// Send one request with any JSON body (or none) and read the whole
    /// answer (any status).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ClientError> {
        let body = body.map(|v| Bytes::from(serde_json::to_vec(v).expect("JSON values serialize")));
        self.exchange(method, path, body)
    }

    /// Send one request with a typed body (one of [`crate::api`]'s request
    /// types) and read the whole answer (any status).
    pub fn send<T: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &T,
    ) -> Result<Reply, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.http_err(e))?;
        self.exchange(method, path, Some(Bytes::from(bytes)))
    }

    /// `POST` a typed body.
    pub fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, body)
    }

    /// `PATCH` a typed body.
    pub fn patch<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Reply, ClientError> {
        self.send(Method::PATCH, path, body)
    }

    /// `DELETE` (no body).
    pub fn delete(&self, path: &str) -> Result<Reply, ClientError> {
        self.exchange(Method::DELETE, path, None)
    }

    fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, ClientError> {
        let req = self.build(method, path, body)?;
        self.rt.block_on(async {
            let mut send = self.connect().await?;
            let resp = send.send_request(req).await.map_err(|e| self.http_err(e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.http_err(e))?
                .to_bytes()
                .to_vec();
            Ok(Reply { status, body })
        })
    }

    pub fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.exchange(Method::GET, path, None)
    }

    /// GET `path` and write the body to `out` as it arrives. Returns the
    /// bytes written; a 4xx/5xx answer is an [`ClientError::Api`].
    pub fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64, ClientError> {
        self.download_with(path, out, || {})
    }

    /// [`Client::download`], calling `started` once the server accepted
    /// (a 2xx status arrived) and before the body streams.
    pub fn download_with(
        &self,
        path: &str,
        out: &mut dyn Write,
        started: impl FnOnce(),
    ) -> Result<u64, ClientError> {
        let req = self.build(Method::GET, path, None)?;
        self.rt.block_on(async {
            let mut send = self.connect().await?;
            let resp = send.send_request(req).await.map_err(|e| self.http_err(e))?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            if status >= 400 {
                let bytes = body.collect().await.map_err(|e| self.http_err(e))?;
                return Reply {
                    status,
                    body: bytes.to_bytes().to_vec(),
                }
                .ok()
                .map(|_| 0);
            }
            started();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| self.http_err(e))?;
                if let Some(data) = frame.data_ref() {
                    out.write_all(data).map_err(ClientError::Output)?;
                    out.flush().map_err(ClientError::Output)?;
                    n += data.len() as u64;
                }
            }
            Ok(n)
        })
    }
}
