//! The frame every page shares (head, header with navigation, footer), HTML
//! escaping, and the few formats the pages use (ages, sizes).

use std::fmt::Write;

/// The pages in the navigation: path and label.
pub const NAV: &[(&str, &str)] = &[
    ("/", "Status"),
    ("/feeds", "Feeds"),
    ("/sticks", "Sticks"),
    ("/invite", "Invite"),
];

/// `text` escaped for HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the frame needs besides the page's own body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The navigation entry to mark current.
    pub current: &'a str,
    /// Load the refresh script.
    pub refresh: bool,
    /// The session's CSRF token, when logged in (shows "Log out").
    pub csrf: Option<&'a str>,
}

/// A whole page around `body`.
pub fn page(frame: Frame<'_>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · ssb-node</title>\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body>\
         <header><div class=\"bar\"><a class=\"brand\" href=\"/\">\
         <img src=\"/assets/icon.svg\" alt=\"\">ssb-node</a><nav>",
        esc(frame.title)
    );
    for (path, label) in NAV {
        let current = if *path == frame.current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{path}\"{current}>{label}</a>");
    }
    out.push_str("</nav></div></header>");
    let refresh = if frame.refresh { " data-refresh" } else { "" };
    let _ = write!(out, "<main{refresh}>{body}</main><footer>");
    match frame.csrf {
        Some(token) => {
            let _ = write!(
                out,
                "Logged in as the keeper. <form class=\"inline\" method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button class=\"danger\" type=\"submit\">Log out</button></form>",
                esc(token)
            );
        }
        None => out.push_str("Read-only view. <a href=\"/login\">Keeper login</a>"),
    }
    out.push_str("</footer>");
    if frame.refresh {
        out.push_str("<script src=\"/assets/refresh.js\" defer></script>");
    }
    out.push_str("</body></html>\n");
    out
}

/// An age in seconds as a person says it: "just now", "5 min ago", "3 h
/// ago", "2 days ago".
pub fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=9 => "just now".into(),
        10..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => match s / 86_400 {
            1 => "1 day ago".into(),
            d => format!("{d} days ago"),
        },
    }
}

/// Milliseconds since the epoch as an age from `now_ms`.
pub fn ago_ms(then_ms: f64, now_ms: f64) -> String {
    ago((now_ms - then_ms) / 1000.0)
}

/// A byte count in binary units: "812 B", "4.2 MiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `n` with its noun, plural when not 1.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_formats_read_naturally() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(ago(3.0), "just now");
        assert_eq!(ago(125.0), "2 min ago");
        assert_eq!(ago(2.0 * 86_400.0), "2 days ago");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4_404_019), "4.2 MiB");
        assert_eq!(count(1, "feed"), "1 feed");
        assert_eq!(count(3, "feed"), "3 feeds");
        let p = page(
            Frame {
                title: "<x>",
                current: "/feeds",
                ..Frame::default()
            },
            "<p>hi</p>",
        );
        assert!(p.contains("<title>&lt;x&gt; · ssb-node</title>"));
        assert!(p.contains("<a href=\"/feeds\" aria-current=\"page\">Feeds</a>"));
        assert!(!p.contains("refresh.js"));
    }
}
