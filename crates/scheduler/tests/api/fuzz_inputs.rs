//! What the fuzz test throws: hostile strings and values, JSON documents, valid body templates
//! and their mutations, and whole requests (route, path id, query, body, headers).

use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Field names the API knows, so generated objects get past "unknown field" now and then.
pub(crate) const FIELDS: &[&str] = &[
    "account_id",
    "name",
    "client_id",
    "client_secret",
    "refresh_token",
    "data_center",
    "modules",
    "schedule",
    "interval_secs",
    "full_sync_interval_secs",
    "audience_id",
    "mode",
    "queue",
    "run_id",
];
pub(crate) const QUERY_KEYS: &[&str] = &[
    "account_id",
    "limit",
    "cursor",
    "before",
    "queue",
    "mode",
    "x",
    "",
];

pub(crate) fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just("\0".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("tab\there".to_owned()),
        Just("' OR 1=1 --".to_owned()),
        Just("US".to_owned()),
        Just("Contacts".to_owned()),
        Just("full".to_owned()),
        Just("jobs".to_owned()),
        Just("acct_1".to_owned()),
        Just("\u{202e}\u{fffd}\u{1F600}".to_owned()),
        Just("x".repeat(3000)),
        Just(uuid::Uuid::new_v4().to_string()),
        "\\PC{0,40}",
        any::<String>(),
    ]
}

/// The values most likely to break a handler: boundaries, wrong types, NULs, huge numbers.
pub(crate) fn hostile_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => prop::sample::select(vec![-1i64, 0, 1, 59, 60, 3599, 3600, i64::from(i32::MAX), i64::from(i32::MAX) + 1, i64::MIN]).prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        1 => Just(json!(1e300)),
        1 => Just(json!([])),
        1 => Just(json!({})),
        4 => hostile_string().prop_map(Value::from),
    ]
}

pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(FIELDS), inner.clone()), 0..6).prop_map(
                |pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
            prop::collection::vec((any::<String>(), inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
    Deep(usize),
}

pub(crate) fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        json_value().prop_map(Body::Json),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Body::Raw),
        (100usize..5000).prop_map(Body::Deep),
    ]
}

#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub route: usize,
    pub id: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub content_type: Option<&'static str>,
    pub authorised: bool,
    pub method_override: Option<&'static str>,
}

/// A valid body for the route, so that mutations of one field reach the handler's own checks.
pub(crate) fn template(path: &str, method: &Method) -> Value {
    let some_id = uuid::Uuid::new_v4().to_string();
    match (method.as_str(), path) {
        ("POST", "/v1/audiences") => json!({"account_id": "acct_f", "name": "n"}),
        ("POST", "/v1/integrations") => {
            json!({"account_id": "acct_f", "name": "n", "client_id": "1000.X",
            "client_secret": "s", "refresh_token": "1000.code", "data_center": "US", "modules": ["Contacts"],
            "schedule": {"interval_secs": 3600}})
        }
        ("PATCH", "/v1/integrations/{id}") => {
            json!({"modules": ["Leads"], "schedule": {"interval_secs": 600, "full_sync_interval_secs": 7200}})
        }
        ("PUT", "/v1/integrations/{id}/audience") => json!({"audience_id": some_id}),
        ("PUT", "/v1/integrations/{id}/credentials") => {
            json!({"refresh_token": "1000.x", "client_id": "1000.y", "client_secret": "z", "data_center": "EU"})
        }
        ("POST", "/v1/integrations/{id}/syncs") => json!({"mode": "incremental"}),
        ("POST", "/v1/dead-letters/redrive") => json!({"queue": "jobs", "run_id": some_id}),
        _ => json!({}),
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    Replace(usize, Value),
    ReplaceNested(usize, Value),
    Remove(usize),
    Add(String, Value),
}

pub(crate) fn mutate(mut value: Value, mutations: Vec<Mutation>) -> Value {
    for mutation in mutations {
        let Some(map) = value.as_object_mut() else {
            break;
        };
        let keys: Vec<String> = map.keys().cloned().collect();
        let key = |i: usize| keys.get(i % keys.len().max(1)).cloned();
        match mutation {
            Mutation::Replace(i, v) => {
                if let Some(k) = key(i) {
                    map.insert(k, v);
                }
            }
            Mutation::ReplaceNested(i, v) => {
                if let Some(inner) = key(i).and_then(|k| map.get_mut(&k)) {
                    match inner {
                        Value::Object(o) => {
                            if let Some(k) = o.keys().next().cloned() {
                                o.insert(k, v);
                            }
                        }
                        Value::Array(a) if !a.is_empty() => a[0] = v,
                        other => *other = v,
                    }
                }
            }
            Mutation::Remove(i) => {
                if let Some(k) = key(i) {
                    map.remove(&k);
                }
            }
            Mutation::Add(k, v) => {
                map.insert(k, v);
            }
        }
    }
    value
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), hostile_scalar()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (any::<usize>(), hostile_scalar()).prop_map(|(i, v)| Mutation::ReplaceNested(i, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => (prop_oneof![prop::sample::select(FIELDS).prop_map(str::to_owned), any::<String>()], json_value())
            .prop_map(|(k, v)| Mutation::Add(k, v)),
    ]
}

pub(crate) fn case(routes: Vec<(Method, String)>, ids: Vec<String>) -> impl Strategy<Value = Case> {
    let count = routes.len();
    (0..count).prop_flat_map(move |route| {
        let (method, path) = &routes[route];
        let template = template(path, method);
        let body = prop_oneof![
            4 => prop::collection::vec(mutation(), 1..3).prop_map(move |m| Body::Json(mutate(template.clone(), m))),
            2 => body(),
        ];
        (
            Just(route),
            prop_oneof![prop::sample::select(ids.clone()), hostile_string()],
            prop::collection::vec((prop::sample::select(QUERY_KEYS).prop_map(str::to_owned), hostile_string()), 0..4),
            body,
            prop_oneof![
                8 => Just(Some("application/json")),
                1 => Just(None),
                1 => prop::sample::select(&["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", ""][..]).prop_map(Some),
            ],
            prop::bool::weighted(0.9),
            prop::option::weighted(0.1, prop::sample::select(&["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"][..])),
        )
            .prop_map(|(route, id, query, body, content_type, authorised, method_override)| Case {
                route,
                id,
                query,
                body,
                content_type,
                authorised,
                method_override,
            })
    })
}
