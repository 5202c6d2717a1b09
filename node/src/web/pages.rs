//! The pages: status, feeds, sticks, invite, login, and `GET /status.json`
//! (the very text `ssb-node status --json` prints). Every page is plain
//! HTML that works without scripts; admin forms carry a CSRF token and need
//! a login session.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;

use super::layout::{self, ago, ago_ms, bytes, count, esc, Frame};
use super::server::{Client, Web};
use super::session::{self, Session};
use super::{assets, csrf, password};
use crate::appliance::wifi::report;
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::replica::carry::{CarryChoice, CarryMode, SetBy};
use crate::service::api;
use crate::service::invites::{self, CreateOptions, InviteRow};
use crate::store::now_ms;

type WebState = State<Arc<Web>>;
type Fields = Form<HashMap<String, String>>;

/// How long a disk-use figure is reused.
const USAGE_FOR: Duration = Duration::from_secs(30);
/// Most blob files counted for the storage figure.
const MAX_BLOBS_COUNTED: usize = 1_000_000;

/// The disk and blob storage in use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Bytes of the data dir's file system.
    pub disk_total: u64,
    /// Bytes free there.
    pub disk_free: u64,
    /// Blobs held.
    pub blobs: u64,
    /// Bytes the blobs take.
    pub blob_bytes: u64,
}

/// The last [`Usage`] and when it was taken.
#[derive(Debug, Default)]
pub struct UsageCache(Mutex<Option<(Instant, Usage)>>);

/// The disk and blob use of the data dir at `root` (walks the blob store).
pub fn usage_of(root: &Path) -> Usage {
    let mut u = Usage::default();
    if let Ok(s) = nix::sys::statvfs::statvfs(root) {
        let frag = s.fragment_size();
        u.disk_total = s.blocks() * frag;
        u.disk_free = s.blocks_available() * frag;
    }
    let mut seen = 0;
    let dirs = std::fs::read_dir(root.join("blobs").join("sha256"))
        .into_iter()
        .flatten();
    'walk: for dir in dirs.flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            seen += 1;
            if seen > MAX_BLOBS_COUNTED {
                break 'walk;
            }
            if let Ok(m) = f.metadata() {
                if m.is_file() {
                    u.blobs += 1;
                    u.blob_bytes += m.len();
                }
            }
        }
    }
    u
}

async fn usage(web: &Arc<Web>) -> Usage {
    if let Some((at, u)) = *web
        .usage
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        if at.elapsed() < USAGE_FOR {
            return u;
        }
    }
    let root = web.data_root.clone();
    let u = tokio::task::spawn_blocking(move || usage_of(&root))
        .await
        .unwrap_or_default();
    *web.usage
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), u));
    u
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The logged-in session of this request, with its id.
fn session_of(web: &Web, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = csrf::cookie(cookies, session::COOKIE)?;
    let s = web.sessions.get(id, Instant::now())?;
    Some((id.to_owned(), s))
}

fn has_password(web: &Web) -> bool {
    matches!(web.node.replica().store().web_password(), Ok(Some(_)))
}

/// A page saying what went wrong, with `status`.
fn problem(status: StatusCode, title: &str, text: &str, csrf: Option<&str>) -> Response {
    let body = format!(
        "<h1>{}</h1><section class=\"card\"><p>{}</p><p><a href=\"/\">Back to the status</a></p></section>",
        esc(title),
        esc(text)
    );
    let frame = Frame {
        title,
        csrf,
        ..Frame::default()
    };
    html(status, layout::page(frame, &body))
}

/// The session of an admin POST whose CSRF token is right, or the answer
/// refusing it (403).
fn admin(
    web: &Web,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Result<Session, Response> {
    let refuse = |text: &str| problem(StatusCode::FORBIDDEN, "Not allowed", text, None);
    let Some((_, s)) = session_of(web, headers) else {
        return Err(refuse("Log in as the keeper first."));
    };
    let given = fields.get("csrf").map_or("", String::as_str);
    if !csrf::matches(&s.csrf, given) {
        return Err(refuse(
            "This form is stale or came from another site: reload the page and try again.",
        ));
    }
    Ok(s)
}

/// The LED's pattern in words, and the light's CSS class.
fn led_words(pattern: &str) -> (&'static str, &'static str) {
    match pattern {
        "booting" => ("Starting up", "booting"),
        "idle" => ("Ready, nothing to do", "idle"),
        "peer-syncing" => ("Syncing with a peer", "idle"),
        "stick-busy" => ("Stick busy: do not pull it", "busy"),
        "stick-done" => ("Stick done: safe to pull", "idle"),
        "attention" => ("Needs attention: see the problems below", "attention"),
        _ => ("LED off", "booting"),
    }
}

fn text<'a>(o: &'a Object, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

fn num(o: &Object, k: &str) -> f64 {
    match o.get(k) {
        Some(Value::Number(n)) => *n,
        _ => 0.0,
    }
}

fn rows<'a>(o: &'a Object, k: &str) -> &'a [Value] {
    match o.get(k) {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

/// The rows of `behind`'s `list` (`peers` or `sticks`) by their `key` field.
fn lag_rows<'a>(behind: &'a Object, list: &str, key: &str) -> HashMap<&'a str, &'a Object> {
    rows(behind, list)
        .iter()
        .filter_map(Value::as_object)
        .map(|r| (text(r, key), r))
        .collect()
}

fn badge(state: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", esc(state), esc(state))
}

/// A feed as a person reads it: its name if known, and its id.
fn feed_label(web: &Web, id: &str) -> String {
    let name = id.parse::<FeedId>().ok().and_then(|f| web.names.get(&f));
    match name {
        Some(n) => format!(
            "<span class=\"name\">{}</span> <span class=\"id\">{}</span>",
            esc(&n),
            esc(id)
        ),
        None => format!("<span class=\"id\">{}</span>", esc(id)),
    }
}

fn lag_text(o: &Object, it: &str) -> String {
    let (we, they) = (num(o, "we_lack") as u64, num(o, "they_lack") as u64);
    if we == 0 && they == 0 {
        return format!("in step over {}", count(num(o, "feeds") as u64, "feed"));
    }
    format!(
        "we lack {}, {it} lacks {} (over {})",
        count(we, "message"),
        count(they, "message"),
        count(num(o, "feeds") as u64, "feed")
    )
}

/// `GET /status.json`: what `ssb-node status --json` prints.
pub async fn status_json(State(web): WebState) -> Response {
    let mut body = api::status(&web.node).to_compact();
    body.push('\n');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The status page's body from the status object and the disk use.
pub fn status_body(
    web: &Web,
    status: &Value,
    usage: Usage,
    seen_problems: &[String],
    keeper: bool,
) -> String {
    let empty = Object::new();
    let o = status.as_object().unwrap_or(&empty);
    let (words, class) = led_words(text(o, "led"));
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Status</h1><section class=\"card\"><div class=\"state\"><span class=\"led {class}\"></span>\
         <div><strong>{words}</strong><div class=\"muted small\">node {} · LED {}</div></div></div>\
         <div class=\"id\">{}</div></section><div class=\"grid\">",
        esc(text(o, "state")),
        esc(text(o, "led")),
        esc(text(o, "id")),
    );
    let behind = o.get("behind").and_then(Value::as_object).unwrap_or(&empty);
    let peer_lag = lag_rows(behind, "peers", "key");
    // Peers.
    let _ = write!(
        b,
        "<section class=\"card\"><h2>Peers</h2><p>{} connected, {} syncing</p><ul class=\"rows\">",
        num(o, "peers_connected"),
        num(o, "peers_syncing")
    );
    let peers = rows(o, "peers");
    if peers.is_empty() {
        b.push_str("<li class=\"muted\">No peers known yet.</li>");
    }
    for p in peers.iter().filter_map(Value::as_object) {
        let key = text(p, "key");
        let lag = peer_lag
            .get(key)
            .map(|r| format!("<div class=\"small\">{}</div>", lag_text(r, "it")))
            .unwrap_or_default();
        let source = esc(text(p, "source"));
        let from = match p.get("address").and_then(Value::as_str) {
            Some(_) => format!("{}:{} · {source}", esc(text(p, "host")), num(p, "port")),
            None => source,
        };
        let last = p
            .get("last_error")
            .and_then(Value::as_str)
            .map(|e| format!("<div class=\"small muted\">last link: {}</div>", esc(e)))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<li><div class=\"row-head\"><span>{}</span>{}</div><div class=\"small muted\">{from} · since {}</div>{lag}{last}</li>",
            feed_label(web, key),
            badge(text(p, "state")),
            ago(num(p, "seconds")),
        );
    }
    b.push_str("</ul></section>");
    // Sticks now.
    b.push_str("<section class=\"card\"><h2>Sticks</h2><ul class=\"rows\">");
    let sticks = rows(o, "sticks");
    if sticks.is_empty() {
        b.push_str("<li class=\"muted\">No stick in. Plug one in to sync it.</li>");
    }
    for s in sticks.iter().filter_map(Value::as_object) {
        let detail = ["summary", "reason", "detail"]
            .iter()
            .find_map(|k| s.get(k).and_then(Value::as_str))
            .unwrap_or("");
        let present = if s.get("present") == Some(&Value::Bool(false)) {
            " · pulled"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<li><div class=\"row-head\"><span class=\"id\">{}</span>{}</div><div class=\"small\">{}</div>\
             <div class=\"small muted\">{}{present}</div></li>",
            esc(text(s, "path")),
            badge(text(s, "state")),
            esc(detail),
            ago(num(s, "seconds")),
        );
    }
    for r in rows(behind, "sticks").iter().filter_map(Value::as_object) {
        let _ = write!(
            b,
            "<li><div class=\"row-head\"><span class=\"id\">stick {}</span><span class=\"small muted\">at its last visit</span></div>\
             <div class=\"small\">{}</div></li>",
            esc(text(r, "id")),
            lag_text(r, "the stick"),
        );
    }
    b.push_str("</ul></section>");
    // Problems.
    b.push_str("<section class=\"card\"><h2>Recent problems</h2><ul class=\"rows\">");
    let mut problems = 0;
    for s in sticks.iter().filter_map(Value::as_object) {
        if s.get("attention") == Some(&Value::Bool(true)) {
            problems += 1;
            let why = ["reason", "detail"]
                .iter()
                .find_map(|k| s.get(k).and_then(Value::as_str))
                .unwrap_or("pulled before it was done");
            let _ = write!(
                b,
                "<li class=\"problem\">Stick {}: {} ({})</li>",
                esc(text(s, "path")),
                esc(why),
                ago(num(s, "seconds"))
            );
        }
    }
    for r in seen_problems {
        problems += 1;
        let _ = write!(b, "<li class=\"problem\">{r}</li>");
    }
    if problems == 0 {
        b.push_str("<li class=\"muted\">None.</li>");
    }
    b.push_str("</ul></section>");
    if let Some(w) = o.get("wifi").and_then(Value::as_object) {
        b.push_str(&wifi_card(w, keeper));
    }
    // Storage.
    let used = usage.disk_total.saturating_sub(usage.disk_free);
    let pct = if usage.disk_total > 0 {
        used as f64 * 100.0 / usage.disk_total as f64
    } else {
        0.0
    };
    let carry = o.get("carry").and_then(Value::as_object).unwrap_or(&empty);
    let _ = write!(
        b,
        "<section class=\"card\"><h2>Storage</h2><dl class=\"facts\"><dt>Disk</dt><dd>{} of {} used ({pct:.0}%)\
         <meter min=\"0\" max=\"100\" low=\"80\" high=\"95\" optimum=\"0\" value=\"{pct:.0}\">{pct:.0}%</meter></dd>\
         <dt>Blobs</dt><dd>{}, {}</dd><dt>Blobs wanted</dt><dd>{}</dd>\
         <dt>Carrying</dt><dd>{} ({})</dd></dl></section></div>",
        bytes(used),
        bytes(usage.disk_total),
        count(usage.blobs, "blob"),
        bytes(usage.blob_bytes),
        num(o, "blob_wants"),
        count(num(carry, "feeds") as u64, "feed"),
        esc(text(carry, "mode")),
    );
    b
}

/// The Wi-Fi card: the controller's state and `wifi.txt`'s problems for
/// everyone; the hotspot's generated passphrase for the keeper only.
fn wifi_card(w: &Object, keeper: bool) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<section class="card"><h2>Wi-Fi</h2><p>{}</p><ul class="rows">"#,
        esc(text(w, "state"))
    );
    for p in rows(w, "problems").iter().filter_map(Value::as_str) {
        let _ = write!(b, r#"<li class="problem">{}</li>"#, esc(p));
    }
    b.push_str("</ul>");
    let note = report::read_note(&report::note_path());
    if !note.is_empty() {
        if keeper {
            b.push_str(r#"<p class="small">The hotspot, for phones:</p><pre class="code">"#);
            for line in &note {
                let _ = writeln!(b, "{}", esc(line));
            }
            b.push_str("</pre>");
        } else {
            b.push_str(concat!(
                r#"<p class="muted small">The keeper sees the hotspot's passphrase here "#,
                "after logging in (it is also in wifi-hotspot.txt on the card's boot ",
                "partition).</p>"
            ));
        }
    }
    b.push_str("</section>");
    b
}

/// The problems recorded at sticks' last visits, as HTML lines.
fn stick_problems(web: &Web) -> Vec<String> {
    let now = now_ms();
    let seen = crate::appliance::visits::sticks(web.node.replica()).unwrap_or_default();
    let mut rows: Vec<(u64, String)> = seen
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let p = s["problem"].as_str()?;
            let at = s["last_sync"].as_u64().unwrap_or(0);
            let id = s["id"].as_str().unwrap_or("?");
            Some((
                at,
                format!(
                    "Stick <span class=\"id\">{}</span> at its last visit ({}): {}",
                    esc(id),
                    ago_ms(at as f64, now),
                    esc(p)
                ),
            ))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().take(10).map(|r| r.1).collect()
}

/// `GET /`: the status page.
pub async fn status(State(web): WebState, headers: HeaderMap) -> Response {
    let u = usage(&web).await;
    let status = api::status(&web.node);
    let s = session_of(&web, &headers);
    let body = status_body(&web, &status, u, &stick_problems(&web), s.is_some());
    let frame = Frame {
        title: "Status",
        current: "/",
        refresh: true,
        csrf: s.as_ref().map(|(_, s)| s.csrf.as_str()),
    };
    html(StatusCode::OK, layout::page(frame, &body))
}

/// One carried feed as the feeds page lists it.
#[derive(Debug, Clone)]
pub struct FeedRow {
    /// The feed.
    pub id: FeedId,
    /// Its follow-graph distance (0: us).
    pub hops: u32,
    /// Its latest sequence held.
    pub seq: u32,
    /// When its latest message arrived (ms), if any is held.
    pub received: Option<f64>,
}

/// The carried feeds, latest update first.
pub fn feed_rows(web: &Web) -> Vec<FeedRow> {
    let set = web.node.replica().replicate_set();
    let store = web.node.replica().store();
    let mut out: Vec<FeedRow> = set
        .feeds
        .iter()
        .map(|(id, hops)| {
            let latest = store.latest(id).ok().flatten();
            FeedRow {
                id: *id,
                hops: *hops,
                seq: store.head(id).ok().flatten().map_or(0, |h| h.sequence),
                received: latest.map(|m| m.received),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.received
            .unwrap_or(0.0)
            .total_cmp(&a.received.unwrap_or(0.0))
            .then(a.hops.cmp(&b.hops))
    });
    out
}

/// The keeper's form choosing the carrying mode, `choice` checked.
fn carry_form(choice: CarryChoice, token: &str) -> String {
    let by = match choice.set_by {
        SetBy::Config => "the config file",
        SetBy::Keeper => "you",
    };
    let mut b = format!(
        "<section class=\"card\" id=\"carry\"><h2>Carrying policy</h2>\
         <p class=\"muted small\">Now: <strong>{}</strong>, set by {by}.</p>\
         <form method=\"post\" action=\"/feeds/carry\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        choice.mode.as_str(),
        esc(token)
    );
    for (mode, says) in [
        (
            CarryMode::Follows,
            "carry the feeds this box follows, and the feeds they follow; nobody else.",
        ),
        (
            CarryMode::Connected,
            "also carry every feed that connects to this box (a phone at its first sync): the box follows it.",
        ),
    ] {
        let m = mode.as_str();
        let checked = if mode == choice.mode { " checked" } else { "" };
        let _ = write!(
            b,
            "<label class=\"choice\" for=\"carry-{m}\"><input id=\"carry-{m}\" type=\"radio\" name=\"mode\" value=\"{m}\"{checked}>\
             <span><strong>{m}</strong>: {says}</span></label>"
        );
    }
    b.push_str("<button type=\"submit\">Set carrying policy</button></form></section>");
    b
}

/// The feeds page's body.
pub fn feeds_body(web: &Web, rows: &[FeedRow], csrf: Option<&str>, notice: Option<&str>) -> String {
    let now = now_ms();
    let mut b = String::with_capacity(256 * rows.len() + 1024);
    b.push_str("<h1>Feeds</h1>");
    if let Some(n) = notice {
        let _ = write!(b, "<p class=\"notice\">{}</p>", esc(n));
    }
    let held = rows.iter().filter(|r| r.seq > 0).count();
    let _ = write!(
        b,
        "<section class=\"card\"><p class=\"muted\">This box carries {}; it holds messages of {held}.</p><ul class=\"rows\">",
        count(rows.len() as u64, "feed")
    );
    for r in rows {
        let id = r.id.to_string();
        let who = match r.hops {
            0 => " · this box".to_owned(),
            h => format!(" · {h} hop{}", if h == 1 { "" } else { "s" }),
        };
        let when = r.received.map_or("nothing yet".to_owned(), |t| {
            format!("updated {}", ago_ms(t, now))
        });
        let _ = write!(
            b,
            "<li><div>{}</div><div class=\"small muted\">{}{who} · {when}</div></li>",
            feed_label(web, &id),
            if r.seq == 0 {
                "no messages".to_owned()
            } else {
                format!("latest #{}", r.seq)
            },
        );
    }
    b.push_str("</ul></section>");
    if let Some(token) = csrf {
        let _ = write!(
            b,
            "<section class=\"card\"><h2>Follow or block a feed</h2>\
             <form method=\"post\" action=\"/feeds/follow\"><input type=\"hidden\" name=\"csrf\" value=\"{t}\">\
             <label for=\"follow-feed\">Feed id to follow</label>\
             <input id=\"follow-feed\" type=\"text\" name=\"feed\" placeholder=\"@….ed25519\" autocomplete=\"off\" required>\
             <button type=\"submit\">Follow</button></form>\
             <form method=\"post\" action=\"/feeds/block\"><input type=\"hidden\" name=\"csrf\" value=\"{t}\">\
             <label for=\"block-feed\">Feed id to block</label>\
             <input id=\"block-feed\" type=\"text\" name=\"feed\" placeholder=\"@….ed25519\" autocomplete=\"off\" required>\
             <button class=\"secondary\" type=\"submit\">Block</button></form></section>",
            t = esc(token)
        );
        b.push_str(&carry_form(web.node.replica().carry(), token));
    }
    b
}

/// `GET /feeds`.
pub async fn feeds(
    State(web): WebState,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = web.clone();
    let rows = tokio::task::spawn_blocking(move || feed_rows(&w))
        .await
        .unwrap_or_default();
    let s = session_of(&web, &headers);
    let token = s.as_ref().map(|(_, s)| s.csrf.as_str());
    let notice = match q.get("done").map(String::as_str) {
        Some("followed") => Some("Followed: it will be replicated."),
        Some("blocked") => Some("Blocked: it is no longer replicated or served."),
        Some("follows") => Some("Carrying policy set: follows."),
        Some("connected") => Some("Carrying policy set: connected."),
        _ => None,
    };
    let body = feeds_body(&web, &rows, token, notice);
    let frame = Frame {
        title: "Feeds",
        current: "/feeds",
        csrf: token,
        ..Frame::default()
    };
    html(StatusCode::OK, layout::page(frame, &body))
}

async fn contact(
    web: Arc<Web>,
    headers: HeaderMap,
    fields: HashMap<String, String>,
    block: bool,
) -> Response {
    let s = match admin(&web, &headers, &fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let given = fields.get("feed").map_or("", |f| f.trim());
    let Ok(feed) = given.parse::<FeedId>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Not a feed id",
            "A feed id looks like @ followed by 44 characters and .ed25519.",
            Some(&s.csrf),
        );
    };
    let content = if block {
        let mut o = Object::new();
        o.push("type", Value::string("contact"));
        o.push("contact", Value::string(&feed.to_string()));
        o.push("blocking", Value::Bool(true));
        Value::Object(o)
    } else {
        api::contact(&feed, true)
    };
    match web.node.replica().publish(vec![content]).await {
        Ok(_) => Redirect::to(if block {
            "/feeds?done=blocked"
        } else {
            "/feeds?done=followed"
        })
        .into_response(),
        Err(e) => {
            tracing::warn!("web: publishing a contact: {e}");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not publish",
                &e.to_string(),
                Some(&s.csrf),
            )
        }
    }
}

/// `POST /feeds/follow`.
pub async fn follow(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    contact(web, headers, f, false).await
}

/// `POST /feeds/block`.
pub async fn block(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    contact(web, headers, f, true).await
}

/// `POST /feeds/carry`: sets the carrying mode as the keeper's choice.
pub async fn carry(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    let s = match admin(&web, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(mode) = f
        .get("mode")
        .map_or("", String::as_str)
        .parse::<CarryMode>()
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Not a carrying mode",
            "Choose follows or connected.",
            Some(&s.csrf),
        );
    };
    let replica = web.node.replica().clone();
    match tokio::task::spawn_blocking(move || replica.set_carry_mode(mode)).await {
        Ok(Ok(())) => Redirect::to(&format!("/feeds?done={}", mode.as_str())).into_response(),
        Ok(Err(e)) => problem(
            StatusCode::BAD_REQUEST,
            "Could not set the carrying policy",
            &e.to_string(),
            Some(&s.csrf),
        ),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not set the carrying policy",
            &e.to_string(),
            Some(&s.csrf),
        ),
    }
}

/// The sticks page's body from the recorded sticks and the lag rows.
pub fn sticks_body(seen: &serde_json::Value, status: &Value) -> String {
    let now = now_ms();
    let empty = Object::new();
    let o = status.as_object().unwrap_or(&empty);
    let behind = o.get("behind").and_then(Value::as_object).unwrap_or(&empty);
    let lag = lag_rows(behind, "sticks", "id");
    let mut list: Vec<&serde_json::Value> = seen
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|s| std::cmp::Reverse(s["last_sync"].as_u64().unwrap_or(0)));
    let mut b = String::from("<h1>Sticks</h1><section class=\"card\">");
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No stick has visited this box yet.</p>");
    }
    b.push_str("<ul class=\"rows\">");
    for s in list {
        let id = s["id"].as_str().unwrap_or("?");
        let last = s["last_sync"]
            .as_f64()
            .map_or("never".into(), |t| ago_ms(t, now));
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let moved = |v: &serde_json::Value| {
            format!(
                "{}, {}",
                count(n(&v["messages"]), "message"),
                count(n(&v["blobs"]), "blob")
            )
        };
        let _ = write!(
            b,
            "<li><div class=\"row-head\"><span class=\"id\">{}</span><span class=\"small muted\">last visit {}</span></div>\
             <dl class=\"facts small\"><dt>Holds</dt><dd>{} ({}, {})</dd>\
             <dt>Brought</dt><dd>{}</dd><dt>Took</dt><dd>{}</dd>",
            esc(id),
            esc(&last),
            count(n(&s["bundles"]), "bundle"),
            count(n(&s["feeds"]), "feed"),
            count(n(&s["messages"]), "message"),
            moved(&s["brought"]),
            moved(&s["took"]),
        );
        if let Some(m) = s["mount"].as_str() {
            let _ = write!(b, "<dt>Seen at</dt><dd class=\"id\">{}</dd>", esc(m));
        }
        if let Some(r) = lag.get(id) {
            let _ = write!(b, "<dt>Behind</dt><dd>{}</dd>", lag_text(r, "the stick"));
        }
        if let Some(p) = s["problem"].as_str() {
            let _ = write!(b, "<dt>Problem</dt><dd class=\"problem\">{}</dd>", esc(p));
        }
        b.push_str("</dl></li>");
    }
    b.push_str("</ul></section>");
    b
}

/// `GET /sticks`.
pub async fn sticks(State(web): WebState, headers: HeaderMap) -> Response {
    let seen = crate::appliance::visits::sticks(web.node.replica()).unwrap_or_else(|e| {
        tracing::warn!("web: reading the sticks: {e}");
        serde_json::Value::Array(Vec::new())
    });
    let status = api::status(&web.node);
    let body = sticks_body(&seen, &status);
    let s = session_of(&web, &headers);
    let frame = Frame {
        title: "Sticks",
        current: "/sticks",
        csrf: s.as_ref().map(|(_, s)| s.csrf.as_str()),
        ..Frame::default()
    };
    html(StatusCode::OK, layout::page(frame, &body))
}

/// An invite code as an SVG QR code.
pub fn qr_svg(code: &str) -> Option<String> {
    let qr = qrcode::QrCode::with_error_correction_level(code, qrcode::EcLevel::M).ok()?;
    Some(
        qr.render::<qrcode::render::svg::Color>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    )
}

fn invite_body(
    made: Option<&InviteRow>,
    list: &[InviteRow],
    token: &str,
    notice: Option<&str>,
) -> String {
    let mut b = String::from("<h1>Invite</h1>");
    if let Some(n) = notice {
        let _ = write!(b, "<p class=\"notice\">{}</p>", esc(n));
    }
    if let Some(code) = made.and_then(|r| r.code.as_deref()) {
        let svg = qr_svg(code).unwrap_or_default();
        let _ = write!(
            b,
            "<section class=\"card\"><h2>New invite</h2><p>Scan this with the phone's SSB app (Manyverse: \
             “Join a pub” → scan), or paste the code. It is shown only now.</p>\
             <div class=\"qr\" id=\"invite-qr\">{svg}</div><p class=\"code\" id=\"invite-code\">{}</p></section>",
            esc(code)
        );
    }
    let _ = write!(
        b,
        "<section class=\"card\"><h2>Make an invite</h2><form method=\"post\" action=\"/invite\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{t}\">\
         <label for=\"uses\">Uses</label><input id=\"uses\" type=\"number\" name=\"uses\" min=\"1\" max=\"{}\" value=\"1\">\
         <label for=\"expires\">Expires after (days, empty: never)</label>\
         <input id=\"expires\" type=\"number\" name=\"expires\" min=\"0\" step=\"any\">\
         <label for=\"note\">Note (who it is for)</label><input id=\"note\" type=\"text\" name=\"note\" maxlength=\"{}\">\
         <button type=\"submit\">Make invite</button></form></section>",
        invites::MAX_USES,
        invites::MAX_NOTE,
        t = esc(token),
    );
    b.push_str("<section class=\"card\"><h2>Invites</h2><ul class=\"rows\">");
    if list.is_empty() {
        b.push_str("<li class=\"muted\">None made yet.</li>");
    }
    let now = now_ms();
    for r in list.iter().rev() {
        let note = r
            .note
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "<span class=\"muted\">no note</span>".into());
        let expires = r.expires.map_or("never expires".to_owned(), |e| {
            if (e as f64) > now {
                format!(
                    "expires in {}",
                    ago((e as f64 - now) / 1000.0).trim_end_matches(" ago")
                )
            } else {
                "expired".into()
            }
        });
        let _ = write!(
            b,
            "<li><div class=\"row-head\"><span>{note}</span>{}</div><div class=\"small muted\">{} of {} uses left · {expires} · made {}</div>\
             <div class=\"id\">{}</div>",
            badge(&r.state),
            r.uses_left,
            r.uses,
            ago_ms(r.created as f64, now),
            esc(&r.id),
        );
        if r.state == "live" {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/invite/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"id\" value=\"{}\"><button class=\"danger\" type=\"submit\">Revoke</button></form>",
                esc(token),
                esc(&r.id)
            );
        }
        b.push_str("</li>");
    }
    b.push_str("</ul></section>");
    b
}

fn no_password_page() -> Response {
    let body = "<h1>Invite</h1><section class=\"card\"><p>No keeper password is set, so this page is read-only.</p>\
                <p>Set one on the box with <code>ssb-node web-password</code>, or write it into \
                <code>web-password.txt</code> on the card's boot partition and restart the box.</p></section>";
    html(
        StatusCode::OK,
        layout::page(
            Frame {
                title: "Invite",
                current: "/invite",
                ..Frame::default()
            },
            body,
        ),
    )
}

fn invite_page(
    web: &Web,
    s: &Session,
    made: Option<&InviteRow>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let list = invites::list(web.node.replica().store()).unwrap_or_default();
    let body = invite_body(made, &list, &s.csrf, notice);
    let frame = Frame {
        title: "Invite",
        current: "/invite",
        csrf: Some(&s.csrf),
        ..Frame::default()
    };
    html(status, layout::page(frame, &body))
}

/// `GET /invite`: the invites, for the keeper.
pub async fn invite(State(web): WebState, headers: HeaderMap) -> Response {
    if !has_password(&web) {
        return no_password_page();
    }
    match session_of(&web, &headers) {
        Some((_, s)) => invite_page(&web, &s, None, None, StatusCode::OK),
        None => Redirect::to("/login?next=/invite").into_response(),
    }
}

/// `POST /invite`: makes an invite and shows its code.
pub async fn invite_create(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    let s = match admin(&web, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let field = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let uses = match field("uses").map(str::parse::<u32>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return invite_page(
                &web,
                &s,
                None,
                Some("Uses must be a whole number."),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    let expires_days = match field("expires").map(str::parse::<f64>) {
        None => None,
        Some(Ok(d)) if d.is_finite() => Some(d),
        Some(_) => {
            return invite_page(
                &web,
                &s,
                None,
                Some("Expiry must be a number of days."),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    let opts = CreateOptions {
        uses,
        expires_days,
        note: field("note").map(str::to_owned),
    };
    match invites::create_on(&web.node, &opts) {
        Ok(row) => invite_page(&web, &s, Some(&row), None, StatusCode::OK),
        Err(e) => invite_page(
            &web,
            &s,
            None,
            Some(&e.to_string()),
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// `POST /invite/revoke`.
pub async fn invite_revoke(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    let s = match admin(&web, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = f.get("id").map_or("", String::as_str);
    match invites::revoke_row(web.node.replica().store(), id) {
        Ok(_) => invite_page(
            &web,
            &s,
            None,
            Some("Revoked: that code no longer works."),
            StatusCode::OK,
        ),
        Err(e) => invite_page(
            &web,
            &s,
            None,
            Some(&e.to_string()),
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// Where a login may lead: a page of ours, never another site.
fn next_page(q: Option<&String>) -> &'static str {
    let q = q.map_or("", String::as_str);
    layout::NAV
        .iter()
        .map(|(p, _)| *p)
        .find(|p| *p == q)
        .unwrap_or("/invite")
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let token = csrf::new_token();
    let mut b = String::from("<h1>Keeper login</h1>");
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"notice error\">{}</p>", esc(e));
    }
    let _ = write!(
        b,
        "<section class=\"card\"><form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Log in</button></form></section>",
        esc(&token),
        esc(next)
    );
    let page = layout::page(
        Frame {
            title: "Keeper login",
            ..Frame::default()
        },
        &b,
    );
    let cookie = format!(
        "{}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600",
        csrf::LOGIN_COOKIE
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
        page,
    )
        .into_response()
}

/// `GET /login`.
pub async fn login_form(
    State(web): WebState,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !has_password(&web) {
        return no_password_page();
    }
    login_page(StatusCode::OK, next_page(q.get("next")), None)
}

/// `POST /login`: checks the password (rate-limited, one hash at a time).
pub async fn login(
    State(web): WebState,
    Extension(Client(client)): Extension<Client>,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let next = next_page(f.get("next"));
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| csrf::cookie(c, csrf::LOGIN_COOKIE))
        .unwrap_or("");
    if !csrf::matches(cookie, f.get("csrf").map_or("", String::as_str)) {
        return login_page(
            StatusCode::FORBIDDEN,
            next,
            Some("This form is stale or came from another site: try again."),
        );
    }
    if !web.limiter.try_take(client.ip(), Instant::now()) {
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some("Too many attempts: wait a minute, then try again."),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return r;
    }
    let Ok(Some(hash)) = web.node.replica().store().web_password() else {
        return no_password_page();
    };
    let given = f.get("password").cloned().unwrap_or_default();
    let ok = match web.hashing.acquire().await {
        Ok(_permit) => tokio::task::spawn_blocking(move || password::verify(&hash, &given))
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    if !ok {
        tracing::info!(%client, "web: a wrong keeper password");
        return login_page(StatusCode::UNAUTHORIZED, next, Some("Wrong password."));
    }
    let id = web.sessions.start(Instant::now());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next.to_owned()),
            (header::SET_COOKIE, session::set_cookie(&id)),
        ],
    )
        .into_response()
}

/// `POST /logout`.
pub async fn logout(State(web): WebState, headers: HeaderMap, Form(f): Fields) -> Response {
    if let Some((id, s)) = session_of(&web, &headers) {
        if csrf::matches(&s.csrf, f.get("csrf").map_or("", String::as_str)) {
            web.sessions.end(&id);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, session::clear_cookie()),
        ],
    )
        .into_response()
}

/// `GET /assets/NAME`: an embedded file, by exact name.
pub async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match assets::find(&name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            a.body,
        )
            .into_response(),
        None => not_found().await,
    }
}

/// Anything else: 404.
pub async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page on this box.",
        None,
    )
}
