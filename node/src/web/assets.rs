//! The page's static files, compiled into the binary: a stylesheet, an icon
//! and the status page's optional refresh script. Served only by exact name
//! from this table: no path ever reaches the file system.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every embedded file.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/icon.svg"),
    },
    Asset {
        name: "refresh.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/refresh.js"),
    },
];

/// The file named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
