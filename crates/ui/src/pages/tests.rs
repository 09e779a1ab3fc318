//! Checks every rendered page for what a browser test would only catch one page at a time: CSP
//! compatibility, labels, references between ids, and the setup guide's required wording.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::assets;

/// One start tag: its name and attributes (the templates are ours, so a small scanner does).
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
}

fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find('>').expect("every tag closes");
        let inside = rest[..end].trim_end_matches('/');
        let (name, mut attrs_text) = inside
            .split_once(char::is_whitespace)
            .unwrap_or((inside, ""));
        let mut attrs = BTreeMap::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let name_end = attrs_text
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(attrs_text.len());
            let attr = attrs_text[..name_end].to_ascii_lowercase();
            attrs_text = &attrs_text[name_end..];
            if let Some(after) = attrs_text.strip_prefix("=\"") {
                let close = after.find('"').expect("attribute values are double-quoted");
                attrs.insert(attr, after[..close].to_owned());
                attrs_text = &after[close + 1..];
            } else {
                attrs.insert(attr, String::new());
            }
        }
        out.push(Tag {
            name: name.to_ascii_lowercase(),
            attrs,
        });
        rest = &rest[end..];
    }
    out
}

fn rendered() -> Vec<(Page, String, Vec<Tag>)> {
    Page::ALL
        .iter()
        .map(|page| {
            let html = page.render();
            let parsed = tags(&html);
            (*page, html, parsed)
        })
        .collect()
}

#[test]
fn pages_are_whole_documents_with_landmarks() {
    for (page, html, tags) in rendered() {
        assert!(!html.contains("{{"), "{page:?} has an unfilled placeholder");
        assert!(
            html.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{page:?}"
        );
        assert!(
            html.contains("name=\"viewport\" content=\"width=device-width, initial-scale=1\""),
            "{page:?}"
        );
        let count = |name: &str| tags.iter().filter(|t| t.name == name).count();
        assert_eq!(count("main"), 1, "{page:?} needs one <main>");
        assert_eq!(count("h1"), 1, "{page:?} needs one <h1>");
        assert_eq!(count("header"), 1, "{page:?}");
        assert!(
            tags.iter()
                .any(|t| t.name == "nav" && t.attrs.contains_key("aria-label")),
            "{page:?}"
        );
        assert!(
            tags.iter()
                .any(|t| t.name == "a" && t.attrs.get("class").is_some_and(|c| c == "skip-link")),
            "{page:?}"
        );
    }
}

#[test]
fn pages_need_nothing_inline_so_the_csp_holds() {
    for (page, html, tags) in rendered() {
        assert!(!html.contains("<style"), "{page:?} has a <style> block");
        for tag in &tags {
            assert!(
                !tag.attrs.contains_key("style"),
                "{page:?}: <{}> has a style attribute",
                tag.name
            );
            let handler = tag.attrs.keys().find(|a| a.starts_with("on"));
            assert!(
                handler.is_none(),
                "{page:?}: <{}> has an inline handler {handler:?}",
                tag.name
            );
            if tag.name == "script" {
                assert_eq!(
                    tag.attrs.get("type").map(String::as_str),
                    Some("module"),
                    "{page:?}"
                );
                assert!(
                    tag.attrs.contains_key("src"),
                    "{page:?} has an inline script"
                );
            }
            for attr in ["src", "href"] {
                if let Some(asset) = tag
                    .attrs
                    .get(attr)
                    .and_then(|v| v.strip_prefix("/ui/assets/"))
                {
                    assert!(
                        assets::find(asset).is_some(),
                        "{page:?} refers to a missing asset {asset}"
                    );
                }
                if let Some(url) = tag.attrs.get(attr) {
                    assert!(!url.starts_with("javascript:"), "{page:?}");
                }
            }
        }
    }
}

#[test]
fn ids_are_unique_and_every_reference_resolves() {
    for (page, _, tags) in rendered() {
        let mut ids = BTreeSet::new();
        for tag in &tags {
            if let Some(id) = tag.attrs.get("id") {
                assert!(ids.insert(id.clone()), "{page:?}: duplicate id {id}");
            }
        }
        for tag in &tags {
            for attr in ["for", "aria-describedby", "aria-labelledby", "data-copy"] {
                for id in tag
                    .attrs
                    .get(attr)
                    .map(|v| v.split_whitespace().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    assert!(
                        ids.contains(id),
                        "{page:?}: <{} {attr}> names {id}, which does not exist",
                        tag.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_control_has_a_label_and_every_field_input_a_place_for_its_error() {
    for (page, _, tags) in rendered() {
        let labelled: BTreeSet<&str> = tags
            .iter()
            .filter(|t| t.name == "label")
            .filter_map(|t| t.attrs.get("for").map(String::as_str))
            .collect();
        let ids: BTreeSet<&str> = tags
            .iter()
            .filter_map(|t| t.attrs.get("id").map(String::as_str))
            .collect();
        for tag in tags.iter().filter(|t| {
            matches!(
                t.name.as_str(),
                "input" | "select" | "textarea" | "progress"
            )
        }) {
            let id = tag
                .attrs
                .get("id")
                .unwrap_or_else(|| panic!("{page:?}: a <{}> without id", tag.name));
            assert!(
                labelled.contains(id.as_str()),
                "{page:?}: #{id} has no <label for>"
            );
        }
        for tag in tags.iter().filter(|t| t.attrs.contains_key("data-field")) {
            let field = &tag.attrs["data-field"];
            assert!(
                ids.contains(format!("{field}-error").as_str()),
                "{page:?}: {field} has no #{field}-error"
            );
            let described = tag
                .attrs
                .get("aria-describedby")
                .map(String::as_str)
                .unwrap_or_default();
            assert!(
                described.contains(&format!("{field}-help")),
                "{page:?}: {field} is not described by its help"
            );
        }
        for tag in tags.iter().filter(|t| t.name == "button") {
            assert!(
                tag.attrs.contains_key("type"),
                "{page:?}: a <button> without type"
            );
        }
    }
}

#[test]
fn add_integration_says_what_the_guide_says() {
    let html = Page::AddIntegration.render();
    let tags = tags(&html);
    assert!(html.contains("<label for=\"refresh_token\">Refresh Token</label>"));
    let help = html
        .split("id=\"refresh_token-help\"")
        .nth(1)
        .expect("help")
        .split("</p>")
        .next()
        .expect("help text");
    for words in ["grant code", "Zoho API Console", "refresh token"] {
        assert!(
            help.contains(words),
            "the Refresh Token help must mention {words:?}"
        );
    }
    for words in [
        "Self Client",
        "<code id=\"scope\">ZohoCRM.modules.ALL,ZohoCRM.org.READ</code>",
        "data-copy=\"scope\"",
        "<strong>10 minutes</strong>",
        "<strong>PledgeBox Integration</strong>",
        "within 10 minutes",
    ] {
        assert!(html.contains(words), "the guide must say {words:?}");
    }
    let secret = tags
        .iter()
        .find(|t| t.attrs.get("id").is_some_and(|id| id == "client_secret"))
        .expect("secret input");
    assert_eq!(secret.attrs["type"], "password");
    assert!(
        !secret.attrs.contains_key("value"),
        "the secret input is never pre-filled"
    );
    let options: Vec<&str> = tags
        .iter()
        .filter(|t| t.name == "option")
        .filter_map(|t| t.attrs.get("value").map(String::as_str))
        .collect();
    assert_eq!(
        options,
        ["", "US", "EU", "IN", "AU", "JP", "CN", "CA", "SA"]
    );
    assert!(html.contains(">Detect automatically</option>"));
}

#[test]
fn detail_has_sync_now_progress_and_reauthorisation() {
    let html = Page::IntegrationDetail.render();
    assert!(html.contains("id=\"sync-now\" class=\"button button-primary button-large\""));
    assert!(html.contains(">Sync Now</button>"));
    assert!(html.contains("<progress id=\"run-progress\" max=\"100\"></progress>"));
    assert!(html.contains("id=\"reauth-form\""));
    assert!(html.contains("re-authorise"));
}

#[test]
fn navigation_marks_the_current_page() {
    let html = Page::AddIntegration.render();
    assert!(
        html.contains("<a href=\"/ui/integrations/new\" aria-current=\"page\">Add integration</a>")
    );
    assert!(html.contains("<a href=\"/ui/\">Integrations</a>"));
    assert!(!Page::SignIn.render().contains("aria-current=\"page\""));
}

#[test]
fn ids_in_paths_must_be_uuids() {
    assert!(is_id("0190f3b4-6c3e-7d1a-9a55-3f7c2b8e1d20"));
    assert!(!is_id("0190f3b4"));
    assert!(!is_id("../../v1"));
}
