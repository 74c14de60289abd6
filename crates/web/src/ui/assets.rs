//! Static assets compiled into the binary, served under a content hash so
//! browsers may cache them forever and a new release is never stale.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

pub struct Asset {
    pub name: &'static str,
    pub body: &'static [u8],
    pub mime: &'static str,
    pub hash: String,
}

impl Asset {
    pub fn url(&self) -> String {
        format!("/static/{}/{}", self.hash, self.name)
    }
}

fn asset(name: &'static str, body: &'static [u8], mime: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body)[..6]);
    Asset {
        name,
        body,
        mime,
        hash,
    }
}

pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        asset(
            "app.css",
            include_bytes!("../../static/app.css"),
            "text/css; charset=utf-8",
        ),
        asset(
            "htmx.min.js",
            include_bytes!("../../static/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        asset(
            "app.js",
            include_bytes!("../../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        asset(
            "favicon.svg",
            include_bytes!("../../static/favicon.svg"),
            "image/svg+xml",
        ),
    ]
});

pub fn url(name: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(Asset::url)
        .unwrap_or_default()
}

pub async fn serve(Path((hash, file)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) if a.hash == hash => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Browsers ask for /favicon.ico whatever the page says; answer with the SVG.
pub async fn favicon() -> Response {
    let a = ASSETS.iter().find(|a| a.name == "favicon.svg");
    match a {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            a.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
