//! The stylesheet, scripts and icon, compiled into the binary and served under `/ui/assets/`.
//!
//! Each has an ETag computed at compile time, so a browser revalidates with a cheap 304 and never
//! runs a script of an older build.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its file name under `/ui/assets/`.
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// FNV-1a of the bytes, the basis of the ETag.
    pub digest: u64,
}

/// FNV-1a, 64 bits: not cryptographic, only a change detector for caching.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $name)),
            digest: fnv1a(include_bytes!(concat!("../assets/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every asset the pages use.
pub const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("common.js", "text/javascript; charset=utf-8"),
    asset!("forms.js", "text/javascript; charset=utf-8"),
    asset!("sign-in.js", "text/javascript; charset=utf-8"),
    asset!("integrations.js", "text/javascript; charset=utf-8"),
    asset!("add-integration.js", "text/javascript; charset=utf-8"),
    asset!("map-audience.js", "text/javascript; charset=utf-8"),
    asset!("integration-detail.js", "text/javascript; charset=utf-8"),
];

/// The asset called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

impl Asset {
    /// The quoted ETag.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.digest)
    }

    /// Whether the asset is a script (every script is an ES module of the pages).
    pub fn is_script(&self) -> bool {
        self.content_type == JS
    }
}

/// `GET /ui/assets/{file}`: the asset, a 304 when the browser has it, or the HTML 404 page.
pub async fn serve(Path(file): Path<String>, request: HeaderMap) -> Response {
    let Some(asset) = find(&file) else {
        return crate::pages::not_found().await.into_response();
    };
    let etag = asset.etag();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_assets_folder_is_served_and_names_are_unique() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("assets folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        served.sort();
        assert_eq!(
            on_disk, served,
            "add new files under assets/ to ASSETS (and remove gone ones)"
        );
    }

    #[test]
    fn scripts_only_import_assets_that_exist() {
        for asset in ASSETS.iter().filter(|a| a.is_script()) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for line in text.lines().filter(|l| l.contains(" from \"./")) {
                let target = line
                    .split("from \"./")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("import path");
                assert!(
                    find(target).is_some(),
                    "{} imports {target}, which is not an asset",
                    asset.name
                );
            }
            // Data reaches the page as text only: no markup sinks.
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", asset.name);
            }
        }
    }

    #[test]
    fn etags_differ_with_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(find("app.css").map(Asset::etag).map(|e| e.len()), Some(18));
    }
}
