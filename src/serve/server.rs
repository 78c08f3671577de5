//! The listener of `serve`: owns binding, the accept loop (one task per connection,
//! HTTP/1.1 and h2c via hyper's auto builder), optional TLS (rustls with the ring provider,
//! PEM certificate chain and key), the access log (one plain line per request, handed to
//! the caller) and graceful shutdown (stop accepting, let requests in flight finish, up to
//! a grace period). Answers come from `handlers`.

use super::ServeError;
use super::handlers::{self, State, User};
use axum::body::Body;
use axum::http::{Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `host:port` to listen on (port 0 picks a free one; see `Server::local_addr`).
    pub addr: String,
    /// PEM certificate chain and private key; plain HTTP when `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long requests in flight may run on after a shutdown signal.
    pub grace: Duration,
}

impl Default for ServerOptions {
    /// `127.0.0.1:5000`, plain HTTP, 10 s grace.
    fn default() -> Self {
        ServerOptions {
            addr: "127.0.0.1:5000".into(),
            tls: None,
            grace: Duration::from_secs(10),
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    grace: Duration,
}

/// Where access log lines go.
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;

impl Server {
    pub async fn bind(state: State, opts: &ServerOptions) -> Result<Server, ServeError> {
        let tls = match &opts.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let listener = TcpListener::bind(&opts.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.addr.clone(),
                source,
            })?;
        Ok(Server {
            listener,
            tls,
            state: Arc::new(state),
            grace: opts.grace,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Serve until `shutdown` completes, then drain connections for the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>, log: LogSink) {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of file descriptors and the like: wait instead of spinning.
                            log(format!("accept failed: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let watcher = graceful.watcher();
                    let builder = builder.clone();
                    let tls = self.tls.clone();
                    let state = Arc::clone(&self.state);
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let state = Arc::clone(&state);
                            let log = Arc::clone(&log);
                            async move { Ok::<_, Infallible>(answer(&state, req, peer, &log).await) }
                        });
                        match tls {
                            None => {
                                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                                let _ = watcher.watch(conn.into_owned()).await;
                            }
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await;
                                let Ok(Ok(stream)) = handshake else { return };
                                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                                let _ = watcher.watch(conn.into_owned()).await;
                            }
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        let _ = tokio::time::timeout(self.grace, graceful.shutdown()).await;
    }
}

async fn answer(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
    log: &LogSink,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, _body) = req.into_parts();
    let resp = handlers::respond(state, &parts.method, &parts.uri, &parts.headers).await;
    let user = resp
        .extensions()
        .get::<User>()
        .map(|u| u.0.as_str())
        .unwrap_or("-");
    let len = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    log(format!(
        "{} {peer} {user} \"{} {} {:?}\" {} {len} {:.1}ms \"{}\"",
        crate::time::now_rfc3339(),
        parts.method,
        sanitize(target),
        parts.version,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
        sanitize(&agent.chars().take(120).collect::<String>()),
    ));
    resp
}

/// Keep log lines one line each: no control characters or quotes from the request.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == '"' { '?' } else { c })
        .collect()
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let tls_err = |path: &Path, message: String| ServeError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no PEM certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(cert, e.to_string()))?;
    // HTTP/1.1 only: large blobs stream faster without h2 flow-control windows.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
