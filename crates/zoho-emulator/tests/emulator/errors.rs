//! Get Records errors: bad parameters and failed authentication, in Zoho's envelopes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{envelope, status_json, Emu, PRODUCT_SCOPE};

#[tokio::test]
async fn parameter_errors_use_zoho_envelopes() {
    let e = Emu::small(30).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let bad = StatusCode::BAD_REQUEST;
    let check = |path: &'static str, expected: Value| {
        let (e, t) = (&e, &t);
        async move { assert_eq!(e.crm_json(t, path).await, (bad, expected), "{path}") }
    };
    check(
        "/crm/v8/Contacts",
        envelope(
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "fields"}),
        ),
    )
    .await;
    check(
        "/crm/v8/Contacts?fields=",
        envelope(
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "fields"}),
        ),
    )
    .await;
    let many: Vec<String> = (0..51).map(|i| format!("F{i}")).collect();
    let path = format!("/crm/v8/Contacts?fields={}", many.join(","));
    assert_eq!(
        e.crm_json(&t, &path).await,
        (
            bad,
            envelope(
                "LIMIT_EXCEEDED",
                "fields limit exceeded",
                json!({"limit": 50, "param_name": "fields"})
            )
        )
    );
    check(
        "/crm/v8/Contacts?fields=Email,Favourite_Colour",
        envelope(
            "INVALID_DATA",
            "the field name given seems to be invalid",
            json!({"api_name": "Favourite_Colour", "param_name": "fields"}),
        ),
    )
    .await;
    check(
        "/crm/v8/Deals?fields=Email",
        envelope(
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"resource_path_index": 0}),
        ),
    )
    .await;
    for per_page in ["0", "201", "abc"] {
        let path = format!("/crm/v8/Contacts?fields=Email&per_page={per_page}");
        assert_eq!(
            e.crm_json(&t, &path).await,
            (
                bad,
                envelope(
                    "INVALID_DATA",
                    "per_page must be a number from 1 to 200",
                    json!({"param_name": "per_page"})
                )
            )
        );
    }
    check(
        "/crm/v8/Contacts?fields=Email&sort_by=Email",
        envelope(
            "INVALID_DATA",
            "sort_by must be id, Created_Time or Modified_Time",
            json!({"param_name": "sort_by"}),
        ),
    )
    .await;
    check(
        "/crm/v8/Contacts?fields=Email&sort_order=up",
        envelope(
            "INVALID_DATA",
            "sort_order must be asc or desc",
            json!({"param_name": "sort_order"}),
        ),
    )
    .await;
    check(
        "/crm/v8/Contacts?fields=Email&page=0",
        envelope(
            "INVALID_DATA",
            "page must be a positive number",
            json!({"param_name": "page"}),
        ),
    )
    .await;
    // Wrong verb and unknown path.
    let resp = e
        .http
        .post(format!("{}/crm/v8/Contacts", t.api))
        .send()
        .await
        .expect("call");
    assert_eq!(
        status_json(resp).await,
        (
            bad,
            envelope(
                "INVALID_REQUEST_METHOD",
                "The http request method type is not a valid one",
                json!({})
            )
        )
    );
    let resp = e
        .crm(&t.api, "/crm/v8/Contacts/a/b/c", Some(&t.access), &[])
        .await;
    assert_eq!(
        status_json(resp).await,
        (
            StatusCode::NOT_FOUND,
            envelope(
                "INVALID_URL_PATTERN",
                "Please check if the URL trying to access is a correct one",
                json!({})
            )
        )
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v9/Contacts?fields=Email").await.0,
        StatusCode::NOT_FOUND
    );
    // Module names match case-insensitively.
    assert_eq!(
        e.crm_json(&t, "/crm/v8/contacts?fields=Email").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn authentication_errors() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let path = "/crm/v8/Contacts?fields=Email";
    let failed = envelope("AUTHENTICATION_FAILURE", "Authentication failed", json!({}));
    assert_eq!(
        status_json(e.crm(&t.api, path, None, &[]).await).await,
        (StatusCode::UNAUTHORIZED, failed.clone())
    );
    let bearer = e
        .http
        .get(format!("{}{path}", t.api))
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("call");
    assert_eq!(
        status_json(bearer).await,
        (StatusCode::UNAUTHORIZED, failed)
    );
    let unknown = e.crm(&t.api, path, Some("1000.0000.0000"), &[]).await;
    assert_eq!(
        status_json(unknown).await,
        (
            StatusCode::UNAUTHORIZED,
            envelope("INVALID_TOKEN", "invalid oauth token", json!({}))
        )
    );
    let stats = e.stats().await;
    assert_eq!(stats["api_calls"]["GET /crm/v8/{module}"]["401"], 3);
}
