//! The HTTP listener: axum's router served by hyper's HTTP/1 connection
//! driver on the node's tokio runtime, one task per connection, with the
//! limits a box on an open LAN needs:
//!
//! - at most [`MAX_CONNECTIONS`] connections at once (more are closed on
//!   accept, before a byte is read);
//! - request heads of at most [`MAX_HEAD`] bytes (more: 431), read within
//!   [`HEAD_TIMEOUT`] (a client trickling bytes is cut off);
//! - bodies of at most [`MAX_BODY`] bytes (more: 413);
//! - a connection lives at most [`CONNECTION_LIFETIME`].
//!
//! Idle, it waits in `accept` and wakes for nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::names::Names;
use super::pages;
use super::password;
use super::rate_limit::Limiter;
use super::session::Sessions;
use crate::service::Node;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body, in bytes (the forms are a few fields).
pub const MAX_BODY: usize = 8 * 1024;
/// Longest a connection is kept, however busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Where and how the page is served.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// The data dir (its file system's use is shown).
    pub data_root: PathBuf,
    /// A boot-partition file with a plaintext admin password to take.
    pub password_file: Option<PathBuf>,
}

/// Why the page could not be served (our side: the address, the store).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address could not be bound.
    #[error("web page: listening on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        error: std::io::Error,
    },
}

/// What the pages share: the node and the page's own state.
pub struct Web {
    /// The running node.
    pub node: Arc<Node>,
    /// The data dir.
    pub data_root: PathBuf,
    /// Feeds' names.
    pub names: Names,
    /// Login sessions.
    pub sessions: Sessions,
    /// Password attempts.
    pub limiter: Limiter,
    /// One password hash at a time (each takes ~19 MiB and a core).
    pub hashing: Semaphore,
    /// Disk use, computed at most every few seconds.
    pub usage: pages::UsageCache,
}

/// The client's address, put in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub SocketAddr);

/// The router of every page.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(pages::status))
        .route("/status.json", get(pages::status_json))
        .route("/feeds", get(pages::feeds))
        .route("/feeds/follow", post(pages::follow))
        .route("/feeds/block", post(pages::block))
        .route("/feeds/carry", post(pages::carry))
        .route("/sticks", get(pages::sticks))
        .route("/invite", get(pages::invite).post(pages::invite_create))
        .route("/invite/revoke", post(pages::invite_revoke))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/assets/{name}", get(pages::asset))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(web)
}

/// Headers every answer carries: nothing from elsewhere may load, the page
/// may not be framed, and nothing is cached.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

/// The page's state for `node`.
pub fn web_state(node: Arc<Node>, data_root: PathBuf) -> Arc<Web> {
    Arc::new(Web {
        node,
        data_root,
        names: Names::default(),
        sessions: Sessions::default(),
        limiter: Limiter::default(),
        hashing: Semaphore::new(1),
        usage: pages::UsageCache::default(),
    })
}

/// Takes the boot-partition password if there is one, binds the address and
/// serves the page; returns the bound address and the tasks (the listener
/// and the names reader).
pub async fn start(
    node: Arc<Node>,
    opts: WebOptions,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>), WebError> {
    if let Some(path) = &opts.password_file {
        let (store, path) = (node.replica().store().clone(), path.clone());
        match tokio::task::spawn_blocking(move || password::take_boot_file(&store, &path)).await {
            Ok(Ok(true)) => tracing::info!("web: took the admin password from the boot partition"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("web: the boot partition's password: {e}"),
            Err(e) => tracing::warn!("web: the boot partition's password: {e}"),
        }
    }
    let listen_error = |error| WebError::Listen {
        addr: opts.addr.clone(),
        error,
    };
    let listener = TcpListener::bind(&opts.addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let web = web_state(node.clone(), opts.data_root);
    let names = tokio::spawn(web.names.clone().keep(node.replica().clone()));
    let serve = tokio::spawn(serve(listener, router(web)));
    tracing::info!(%local, "web page serving");
    Ok((local, vec![serve, names]))
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, app: Router) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("web: accept: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "web: connection cap reached, closing");
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Client(peer));
                app.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, "web: connection: {e}"),
                Err(_) => tracing::debug!(%peer, "web: connection outlived its limit"),
            }
            drop(permit);
        });
    }
}
