//! Malformed and hostile requests at every endpoint: never a 5xx, and every refusal in the API's
//! error shape. Routes come from the router's own table, so a new endpoint is fuzzed too.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fuzz_inputs::{case, template, Body, Case, QUERY_KEYS};
use crate::helpers::{TestApp, TOKEN};

async fn send(
    app: &TestApp,
    routes: &[(Method, String)],
    case: &Case,
) -> Result<(), TestCaseError> {
    let (method, template) = &routes[case.route];
    let id: String = url::form_urlencoded::byte_serialize(case.id.as_bytes()).collect();
    let path = template.replace("{id}", &id);
    let method = case.method_override.map_or_else(
        || method.clone(),
        |m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET),
    );
    let mut url = reqwest::Url::parse(&app.url(&path))
        .map_err(|e| TestCaseError::fail(format!("url {path}: {e}")))?;
    if !case.query.is_empty() {
        url.query_pairs_mut().extend_pairs(case.query.iter());
    }
    let mut request = app.http.request(method.clone(), url.clone());
    if case.authorised {
        request = request.bearer_auth(TOKEN);
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    request = match &case.body {
        Body::None => request,
        Body::Json(value) => request.body(value.to_string()),
        Body::Raw(bytes) => request.body(bytes.clone()),
        Body::Deep(depth) => request.body(format!("{}{}", "[".repeat(*depth), "]".repeat(*depth))),
    };
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    prop_assert!(
        status.as_u16() < 500,
        "{method} {url} with {:?} answered {status}: {}",
        case.body,
        String::from_utf8_lossy(&bytes)
    );
    if !status.is_success() && !template.starts_with("/readyz") {
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        prop_assert!(
            parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string(),
            "{method} {url} answered {status} without the error shape: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

/// Fixed hostile values, each put into every field of every body template in turn.
fn sweep_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(59),
        json!(i64::from(i32::MAX) + 1),
        json!(u64::MAX),
        json!(1.5),
        json!([]),
        json!({}),
        json!([null]),
        json!({"x": 1}),
        json!(""),
        json!("   "),
        json!("\u{0}"),
        json!("a\u{0}b"),
        json!("line\nbreak"),
        json!("' OR 1=1 --"),
        json!("\u{202e}\u{1F600}"),
        json!("x".repeat(5000)),
        json!("00000000-0000-0000-0000-000000000000"),
        json!(uuid::Uuid::new_v4().to_string()),
    ]
}

/// Every field of every body, one hostile value at a time; every query parameter and path id
/// likewise. Deterministic, so a regression is caught on every run, not by luck.
async fn sweep(
    app: &TestApp,
    routes: &[(Method, String)],
    ids: &[String],
) -> Result<(), TestCaseError> {
    let mut sent = 0;
    for (index, (method, path)) in routes.iter().enumerate() {
        let template = template(path, method);
        let keys: Vec<String> = template
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let base = Case {
            route: index,
            id: ids[0].clone(),
            query: Vec::new(),
            body: Body::Json(template.clone()),
            content_type: Some("application/json"),
            authorised: true,
            method_override: None,
        };
        for key in &keys {
            for value in sweep_values() {
                let mut body = template.clone();
                body[key.as_str()] = value.clone();
                send(
                    app,
                    routes,
                    &Case {
                        body: Body::Json(body),
                        ..base.clone()
                    },
                )
                .await?;
                if let Some(inner) = template[key.as_str()].as_object() {
                    for inner_key in inner.keys() {
                        let mut body = template.clone();
                        body[key.as_str()][inner_key.as_str()] = value.clone();
                        send(
                            app,
                            routes,
                            &Case {
                                body: Body::Json(body),
                                ..base.clone()
                            },
                        )
                        .await?;
                    }
                }
                if template[key.as_str()].is_array() {
                    let mut body = template.clone();
                    body[key.as_str()] = json!([value.clone()]);
                    send(
                        app,
                        routes,
                        &Case {
                            body: Body::Json(body),
                            ..base.clone()
                        },
                    )
                    .await?;
                }
                sent += 1;
            }
        }
        for value in sweep_values().iter().filter_map(Value::as_str) {
            send(
                app,
                routes,
                &Case {
                    id: value.to_owned(),
                    ..base.clone()
                },
            )
            .await?;
            for key in QUERY_KEYS {
                send(
                    app,
                    routes,
                    &Case {
                        query: vec![((*key).to_owned(), value.to_owned())],
                        ..base.clone()
                    },
                )
                .await?;
            }
            sent += 1;
        }
    }
    prop_assert!(sent > 200, "the sweep sent only {sent} requests");
    Ok(())
}

#[test]
fn hostile_requests_at_every_endpoint_never_get_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (app, ids) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let (integration, audience) = app.mapped_integration("acct_f").await;
        let id = integration["id"].as_str().expect("id").to_owned();
        let (_, run) = app
            .call(
                Method::POST,
                &format!("/v1/integrations/{id}/syncs"),
                Some(json!({})),
            )
            .await;
        let ids = vec![
            id,
            audience["id"].as_str().expect("id").to_owned(),
            run["id"].as_str().expect("run id").to_owned(),
        ];
        (app, ids)
    });
    let mut routes: Vec<(Method, String)> = pledgesync_scheduler::api::api_routes()
        .into_iter()
        .map(|r| (r.method, r.path.to_owned()))
        .collect();
    routes.extend(
        pledgesync_scheduler::api::OPEN_ROUTES
            .iter()
            .map(|p| (Method::GET, (*p).to_owned())),
    );

    let config = Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    };
    if let Err(failure) = runtime.block_on(sweep(&app, &routes, &ids)) {
        runtime.block_on(app.stop());
        panic!("{failure}");
    }
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(routes.clone(), ids.clone()), |case| {
        runtime.block_on(send(&app, &routes, &case))
    });
    runtime.block_on(app.stop());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
