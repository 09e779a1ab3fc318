//! The OpenAPI document: hand-written in `docs/openapi.json`, compiled into the binary and served
//! at `/openapi.json`, so the document a client reads is the one this build was tested against.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{api_routes, OPEN_ROUTES};

    fn parsed() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is valid JSON")
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = parsed();
        let paths = doc["paths"].as_object().expect("paths");
        let mut routed = Vec::new();
        for route in api_routes() {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &paths
                .get(route.path)
                .unwrap_or_else(|| panic!("{} is not in docs/openapi.json", route.path))[&method];
            assert!(
                operation.is_object(),
                "{} {} is not in docs/openapi.json",
                route.method,
                route.path
            );
            assert!(
                operation["operationId"].is_string(),
                "{} {} has no operationId",
                route.method,
                route.path
            );
            routed.push((method, route.path.to_owned()));
        }
        for open in OPEN_ROUTES {
            let operation = &paths
                .get(open)
                .unwrap_or_else(|| panic!("{open} is not documented"))["get"];
            assert_eq!(
                operation["security"],
                serde_json::json!([]),
                "{open} must be documented as open"
            );
            routed.push(("get".to_owned(), open.to_owned()));
        }
        for (path, item) in paths {
            for method in item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| *k != "parameters")
            {
                assert!(
                    routed.contains(&(method.clone(), path.clone())),
                    "docs/openapi.json documents {method} {path}, which the router does not serve"
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = parsed();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(
                doc.pointer(pointer).is_some(),
                "unresolved $ref {reference}"
            );
        }
    }

    fn collect_refs(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    into.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, into));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
            _ => {}
        }
    }
}
