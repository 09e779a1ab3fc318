//! Path and query parameters shared by the CRM handlers, validated as Zoho validates them.

use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use crate::clock::parse_ts_ms;
use crate::query::Converted;
use crate::reply;
use crate::schema::Module;

/// Path parameters of every CRM route (absent ones stay `None`).
#[derive(Debug, Deserialize)]
pub struct CrmPath {
    /// `xx` of `/dc/xx/…`; `None` on unprefixed paths.
    pub dc: Option<String>,
    /// `v8`, `v2`…
    pub version: String,
    /// Module API name.
    pub module: Option<String>,
    /// `/settings/modules/{api_name}`.
    pub api_name: Option<String>,
}

/// Most fields one call may ask for.
pub const MAX_FIELDS: usize = 50;
/// Most records per page.
pub const MAX_PER_PAGE: usize = 200;

/// The API version number of `v2`…`v8`; other versions do not exist.
pub fn version(text: &str) -> Option<u8> {
    let n: u8 = text.strip_prefix('v')?.parse().ok()?;
    (2..=8).contains(&n).then_some(n)
}

/// Decodes a query string into pairs, in order.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of a parameter.
pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses `per_page` (1–200, default 200).
pub fn per_page(params: &[(String, String)]) -> Result<usize, Response> {
    match param(params, "per_page") {
        None => Ok(MAX_PER_PAGE),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PER_PAGE).contains(n))
            .ok_or_else(|| {
                reply::invalid_param("per_page", "per_page must be a number from 1 to 200")
            }),
    }
}

/// Parses `page` (≥ 1, default 1).
pub fn page(params: &[(String, String)]) -> Result<usize, Response> {
    match param(params, "page") {
        None => Ok(1),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=u32::MAX as usize).contains(n))
            .ok_or_else(|| reply::invalid_param("page", "page must be a positive number")),
    }
}

/// Parses the `If-Modified-Since` header into epoch ms.
pub fn if_modified_since(headers: &HeaderMap) -> Result<Option<i64>, Response> {
    match headers.get(axum::http::header::IF_MODIFIED_SINCE) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_ts_ms)
            .map(Some)
            .ok_or_else(|| {
                reply::invalid_param(
                    "If-Modified-Since",
                    "If-Modified-Since must be an ISO-8601 date-time with offset, e.g. 2019-07-25T15:26:49+05:30",
                )
            }),
    }
}

/// The `converted` parameter of Leads.
pub fn converted(module: Module, params: &[(String, String)]) -> Result<Converted, Response> {
    if module != Module::Leads {
        return Ok(Converted::Both);
    }
    match param(params, "converted") {
        None | Some("false") => Ok(Converted::Exclude),
        Some("true") => Ok(Converted::Only),
        Some("both") => Ok(Converted::Both),
        Some(_) => Err(reply::invalid_param(
            "converted",
            "converted must be true, false or both",
        )),
    }
}
