//! The API's edges: auth, probes, the OpenAPI document, size limits, unknown fields, content
//! types, unknown routes and methods, member paging. Every error has the documented shape.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TOKEN};

fn assert_error_shape(body: &Value) {
    let error = &body["error"];
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "not the error shape: {body}"
    );
}

#[tokio::test]
async fn auth_probes_limits_and_malformed_requests() {
    let app = TestApp::spawn().await;

    // Probes are open; everything else needs one of the configured tokens.
    let healthz = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(healthz.status(), StatusCode::OK);
    let readyz = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(readyz.status(), StatusCode::OK);
    let ready: Value = readyz.json().await.expect("json");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["postgres", "rabbitmq", "redis"], "{ready}");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("answer");
    assert_eq!(metrics.status(), StatusCode::OK);

    for (auth, what) in [
        (None, "missing"),
        (Some("Bearer wrong-token-0123456789"), "wrong"),
        (Some(&*format!("Basic {TOKEN}")), "basic"),
    ] {
        let mut request = app.http.get(app.url("/v1/audiences?account_id=a"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what} token");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let response = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The OpenAPI document is served as kept in docs/.
    let (status, doc) = app.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/integrations/{id}/syncs"]["post"].is_object());

    // A body over the limit: 413 in the same shape.
    let big = json!({"account_id": "a", "name": "x".repeat(70 * 1024)});
    let (status, body) = app.call(Method::POST, "/v1/audiences", Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("text")
            .contains("65536"),
        "{body}"
    );

    // Unknown fields are refused, naming the field.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(json!({"account_id": "a", "name": "n", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "colour");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("text")
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (status, body) = app
        .call(Method::GET, "/v1/audiences?account_id=a&colour=red", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body);

    // Wrong types and missing fields name the field too.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(json!({"account_id": "a", "name": 7})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("name")),
        "{body}"
    );
    let (status, body) = app
        .call(Method::POST, "/v1/audiences", Some(json!({"name": "n"})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("account_id")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(json!({"account_id": "bad id!", "name": "n"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("account_id")),
        "{body}"
    );

    // A NUL (which PostgreSQL cannot store in text) is refused as input, not failed on.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(json!({"account_id": "a", "name": "a\u{0}b"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("name")),
        "{body}"
    );

    // Not JSON, not declared as JSON, unknown route, wrong method.
    let response = app
        .request(Method::POST, "/v1/audiences")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .request(Method::POST, "/v1/audiences")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = app.call(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(status, 404);
    assert_error_shape(&body);
    let (status, body) = app.call(Method::PUT, "/v1/audiences", None).await;
    assert_eq!(status, 405);
    assert_error_shape(&body);

    // Duplicate audience name.
    app.create_audience("acct_x", "Backers").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(json!({"account_id": "acct_x", "name": "Backers"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("name")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn members_page_by_keyset_with_their_zoho_record() {
    let app = TestApp::spawn().await;
    let (integration, audience) = app.mapped_integration("acct_m").await;
    let audience_id = audience["id"].as_str().expect("id").to_owned();
    let integration_id = integration["id"].as_str().expect("id").to_owned();
    // Members as a sink would have written them.
    for i in 0..5 {
        let email = format!("backer{i}@example.com");
        sqlx::query(
            "INSERT INTO audience_members (audience_id, email, first_name, last_name, unsubscribed, origin) \
             VALUES ($1::uuid, $2, 'Ada', $3, $4, 'sync')",
        )
        .bind(&audience_id)
        .bind(&email)
        .bind(format!("Number {i}"))
        .bind(i == 3)
        .execute(&app.pool)
        .await
        .expect("member");
        sqlx::query(
            "INSERT INTO member_sources (integration_id, zoho_module, zoho_id, audience_id, email) \
             VALUES ($1::uuid, 'Contacts', $2, $3::uuid, $4)",
        )
        .bind(&integration_id)
        .bind(format!("41508680000000{i}"))
        .bind(&audience_id)
        .bind(&email)
        .execute(&app.pool)
        .await
        .expect("source");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/v1/audiences/{audience_id}/members?limit=2&cursor={c}"),
            None => format!("/v1/audiences/{audience_id}/members?limit=2"),
        };
        let (status, page) = app.call(Method::GET, &query, None).await;
        assert_eq!(status, 200, "{page}");
        for member in page["members"].as_array().expect("members") {
            assert_eq!(member["zoho_module"], "Contacts");
            assert!(member["zoho_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("41508680")));
            assert_eq!(member["first_name"], "Ada");
            seen.push((
                member["email"].as_str().expect("email").to_owned(),
                member["unsubscribed"].as_bool().expect("bool"),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let emails: Vec<&str> = seen.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        emails,
        [
            "backer0@example.com",
            "backer1@example.com",
            "backer2@example.com",
            "backer3@example.com",
            "backer4@example.com"
        ]
    );
    assert!(seen[3].1, "Email_Opt_Out is carried as unsubscribed");
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/audiences/{audience_id}/members?limit=0"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit")),
        "{body}"
    );
    app.stop().await;
}
