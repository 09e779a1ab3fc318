use serde_json::json;

use super::*;

fn reply(value: Value) -> Reply {
    match value {
        Value::Object(map) => Reply::Json(crate::crm::wire::JsonObject::from_tree(map)),
        _ => panic!("object expected"),
    }
}

fn records(ids: &[(u64, &str)], more: bool, token: Option<&str>) -> Reply {
    let data: Vec<Value> = ids
        .iter()
        .map(|(id, time)| json!({"id": id.to_string(), "Email": format!("{id}@example.com"), "Modified_Time": time}))
        .collect();
    reply(
        json!({"data": data, "info": {"per_page": 200, "count": ids.len(), "more_records": more, "next_page_token": token}}),
    )
}

fn query() -> RecordQuery {
    RecordQuery::new("Contacts", &["Email", "Email"], None).expect("valid")
}

fn param<'a>(request: &'a ApiRequest, name: &str) -> Option<&'a str> {
    request
        .query
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn fields_always_include_modified_time_and_respect_the_limit() {
    let q = query();
    let request = q.request(&PagePosition::default());
    assert_eq!(param(&request, "fields"), Some("Email,Modified_Time"));
    assert_eq!(param(&request, "per_page"), Some("200"));
    assert_eq!(param(&request, "sort_by"), Some("Modified_Time"));
    assert_eq!(param(&request, "sort_order"), Some("asc"));
    assert_eq!(param(&request, "page"), Some("1"));
    assert_eq!(request.if_modified_since, None);
    let fifty: Vec<String> = (0..50).map(|i| format!("F{i}")).collect();
    assert!(
        RecordQuery::new("Contacts", &fifty, None).is_err(),
        "50 + Modified_Time is 51"
    );
    assert!(RecordQuery::new("Contacts", &fifty[..49], None).is_ok());
    assert!(RecordQuery::new("Contacts", &["Email,Phone"], None).is_err());
}

#[test]
fn page_numbers_until_2000_then_page_token() {
    let q = query();
    let mut position = PagePosition::default();
    for page in 1..=10u32 {
        let request = q.request(&position);
        assert_eq!(param(&request, "page"), Some(page.to_string().as_str()));
        assert_eq!(param(&request, "page_token"), None);
        let id = u64::from(page);
        let out = q
            .read(
                records(&[(id, "2025-01-01T00:00:00+05:30")], true, Some("tok")),
                position,
            )
            .expect("page");
        position = out.next.expect("more");
    }
    let request = q.request(&position);
    assert_eq!(param(&request, "page"), None);
    assert_eq!(param(&request, "page_token"), Some("tok"));
}

#[test]
fn the_last_page_has_no_next_and_empty_answers_end_the_read() {
    let q = query();
    let out = q
        .read(
            records(
                &[
                    (1, "2025-01-01T00:00:00Z"),
                    (2, "2025-01-01T06:00:00+05:30"),
                ],
                false,
                None,
            ),
            PagePosition::default(),
        )
        .expect("page");
    assert_eq!(
        out.newest_modified(),
        DateTime::parse_from_rfc3339("2025-01-01T00:30:00Z").ok()
    );
    assert_eq!(out.records.len(), 2);
    assert!(out.next.is_none());
    let out = q
        .read(Reply::Empty, PagePosition::default())
        .expect("empty");
    assert!(out.records.is_empty() && out.next.is_none());
}

#[test]
fn a_full_window_restarts_at_the_last_modified_time_and_skips_what_was_seen() {
    let q = query();
    let mut position = PagePosition {
        window_records: TOKEN_RECORD_LIMIT - 2,
        step: Step::Token { token: "t".into() },
        ..PagePosition::default()
    };
    let out = q
        .read(
            records(
                &[
                    (7, "2025-01-01T10:00:00+05:30"),
                    (8, "2025-01-01T10:00:00+05:30"),
                ],
                true,
                Some("t2"),
            ),
            position,
        )
        .expect("page");
    position = q.prepare(out.next.expect("more")).expect("restart");
    let request = q.request(&position);
    assert_eq!(
        request.if_modified_since.as_deref(),
        Some("2025-01-01T10:00:00+05:30")
    );
    assert_eq!(param(&request, "page"), Some("1"));
    // The inclusive filter brings 7 and 8 back, plus 9 at the same second and 10 later.
    let out = q
        .read(
            records(
                &[
                    (7, "2025-01-01T10:00:00+05:30"),
                    (8, "2025-01-01T04:30:00Z"),
                    (9, "2025-01-01T10:00:00+05:30"),
                    (10, "2025-01-01T10:00:01+05:30"),
                ],
                false,
                None,
            ),
            position,
        )
        .expect("page");
    let ids: Vec<String> = out.records.iter().filter_map(record_id).collect();
    assert_eq!(ids, ["9", "10"]);
}

#[test]
fn a_window_that_cannot_move_is_reported_not_looped() {
    let q = query();
    let position = PagePosition {
        window_start: Some("2025-01-01T10:00:00+05:30".into()),
        window_records: TOKEN_RECORD_LIMIT,
        last_modified: Some("2025-01-01T10:00:00+05:30".into()),
        boundary_ids: vec!["1".into()],
        step: Step::Token { token: "t".into() },
    };
    assert!(matches!(
        q.prepare(position),
        Err(CrmError::PagingStalled { .. })
    ));
}

#[test]
fn refused_tokens_are_cured_by_a_new_window() {
    let q = query();
    let position = PagePosition {
        last_modified: Some("2025-01-01T10:00:00Z".into()),
        boundary_ids: vec!["1".into()],
        step: Step::Token {
            token: "old".into(),
        },
        window_records: 4000,
        window_start: None,
    };
    let expired = CrmError::from_envelope("records", "Contacts", 400, "EXPIRED_VALUE", "expired");
    let cured = q
        .recover(&position, &expired)
        .expect("curable")
        .expect("restart");
    assert_eq!(cured.page_number(), Some(1));
    assert_eq!(
        q.request(&cured).if_modified_since.as_deref(),
        Some("2025-01-01T10:00:00Z")
    );
    let other = CrmError::from_envelope("records", "Contacts", 400, "INVALID_DATA", "bad");
    assert!(q.recover(&position, &other).is_none());
    assert!(
        q.recover(&PagePosition::default(), &expired).is_none(),
        "nothing to continue from"
    );
}

#[test]
fn positions_serialize_for_checkpoints() {
    let position = PagePosition {
        window_start: None,
        step: Step::Token {
            token: "abc".into(),
        },
        window_records: 2200,
        last_modified: Some("2025-01-01T10:00:00+05:30".into()),
        boundary_ids: vec!["41".into()],
    };
    let json = serde_json::to_value(&position).expect("json");
    assert_eq!(json["step"], json!({"kind": "token", "token": "abc"}));
    let back: PagePosition = serde_json::from_value(json).expect("back");
    assert_eq!(back, position);
    let start: PagePosition = serde_json::from_str("{}").expect("defaults");
    assert_eq!(start.page_number(), Some(1));
}

#[test]
fn deleted_entries_page_by_number() {
    let body = json!({"data":[{"id":"410888000000099071","display_name":"Patricia","type":"recycle",
        "deleted_time":"2015-06-19T11:19:38+05:30","deleted_by":{"name":"Patricia Boyle","id":"410888000000086001"},
        "created_by":{"name":"Patricia Boyle","id":"410888000000086001"}},
        {"id":"410888000000680013","display_name":null,"type":"permanent","deleted_time":"2016-10-26T11:44:15+05:30",
        "deleted_by":null,"created_by":null}],"info":{"per_page":200,"count":2,"page":1,"more_records":true}});
    let page = read_deleted(reply(body), 1).expect("page");
    assert_eq!(page.records.len(), 2);
    assert_eq!(
        page.next.as_ref().and_then(PagePosition::page_number),
        Some(2)
    );
    let request = deleted_request("Leads", Some("2025-01-01T00:00:00+00:00".into()), 2);
    assert_eq!(request.path, "/crm/v8/Leads/deleted");
    assert_eq!(param(&request, "type"), Some("all"));
    assert_eq!(param(&request, "page"), Some("2"));
    assert!(read_deleted(Reply::Empty, 3).expect("empty").next.is_none());
}
