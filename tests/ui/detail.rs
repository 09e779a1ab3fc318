//! The guide's second half on Integration Detail and Integrations: Sync Now with the progress bar
//! to the end and the members counted, the list, and re-authorisation.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pledgesync_tests::wait_until;
use serde_json::{json, Value};

use crate::browser::{Browser, STEP};
use crate::guide::{narrow_screenshot, number, CONTACTS, LEADS};
use crate::stack::{text, Stack};

pub(crate) async fn sync_now(browser: &Browser, stack: &mut Stack, id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(browser.text("#sync-now").await? == "Sync Now");
    let colour = browser
        .js(
            "return getComputedStyle(document.getElementById('sync-now')).backgroundColor;",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        colour == json!("rgb(29, 78, 216)"),
        "Sync Now is not blue: {colour}"
    );
    // No fetcher runs yet: the run waits in the queue, and the button shows it.
    browser.click("#sync-now").await?;
    browser.wait_for_text("#run-status", "Queued").await?;
    browser.wait_for_text("#sync-now", "show progress").await?;
    browser.click("#sync-now").await?;
    let focused = browser
        .js("return document.activeElement.id;", vec![])
        .await?;
    anyhow::ensure!(
        focused == json!("run-panel"),
        "pressing it again did not show the run: focus on {focused}"
    );
    let (_, runs) = stack
        .api(
            reqwest::Method::GET,
            &format!("/v1/integrations/{id}/runs"),
            None,
        )
        .await?;
    let runs = runs["runs"].as_array().context("runs")?.clone();
    anyhow::ensure!(
        runs.len() == 1,
        "pressing Sync Now twice made {} runs",
        runs.len()
    );
    let run_id = text(&runs[0]["id"])?;
    browser.screenshot("09-detail-queued").await?;

    // A fetcher starts: the bar moves to the end while the page polls the run.
    stack.start_fetcher().await?;
    let mut seen: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let value = browser.js("const p = document.getElementById('run-progress'); return p.hasAttribute('value') ? Math.round(p.value) : -1;", vec![]).await?;
        let value = value.as_i64().unwrap_or(-1);
        if seen.last() != Some(&value) {
            seen.push(value);
            if value > 0
                && value < 100
                && seen.iter().filter(|v| (1..100).contains(*v)).count() == 1
            {
                browser.screenshot("10-detail-progress").await?;
            }
        }
        if value == 100 && browser.text("#run-status").await?.starts_with("Succeeded") {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the progress bar stopped at {seen:?}; run: {}",
            stack
                .api(reqwest::Method::GET, &format!("/v1/runs/{run_id}"), None)
                .await?
                .1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("progress values seen: {seen:?}");
    anyhow::ensure!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the progress bar went backwards: {seen:?}"
    );
    anyhow::ensure!(
        browser
            .attr("#run-progress", "aria-valuetext")
            .await?
            .as_deref()
            == Some("100%")
    );

    // The counters on the page are the run's, and the members are counted.
    let (_, run) = stack
        .api(reqwest::Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await?;
    anyhow::ensure!(run["status"] == "succeeded", "the run: {run}");
    for counter in ["fetched", "applied", "skipped", "deleted"] {
        let shown = number(&browser.text(&format!("#count-{counter}")).await?)?;
        anyhow::ensure!(
            Some(shown) == run["counters"][counter].as_u64(),
            "{counter}: page {shown}, API {}",
            run["counters"][counter]
        );
    }
    let fetched = run["counters"]["fetched"].as_u64().unwrap_or_default();
    anyhow::ensure!(
        fetched == (CONTACTS + LEADS) as u64,
        "fetched {fetched} of {} records",
        CONTACTS + LEADS
    );
    let audience = text(
        &stack
            .api(
                reqwest::Method::GET,
                &format!("/v1/integrations/{id}"),
                None,
            )
            .await?
            .1["audience_id"],
    )?;
    let api_members = count_members(stack, &audience).await?;
    anyhow::ensure!(api_members > 0, "the run brought no members");
    let counted = wait_until("the page to count the members", STEP, || async move {
        let shown = browser.text("#members").await.ok()?;
        (shown.contains("members in Backers") && number(&shown).ok() == Some(api_members))
            .then_some(shown)
    })
    .await;
    anyhow::ensure!(
        counted.is_ok(),
        "page: {:?}, API: {api_members} members",
        browser.text("#members").await?
    );
    browser.wait_for_text("#runs tbody", "Succeeded").await?;
    browser.wait_for_text("#sync-now", "Sync Now").await?;
    browser.screenshot("11-detail-succeeded").await?;
    narrow_screenshot(browser, "11-detail-succeeded-375").await
}

async fn count_members(stack: &Stack, audience: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audiences/{audience}/members?limit=200&cursor={c}"),
            None => format!("/v1/audiences/{audience}/members?limit=200"),
        };
        let (status, page) = stack.api(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(status == 200, "members: {status} {page}");
        total += page["members"].as_array().map_or(0, Vec::len) as u64;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(total),
        }
    }
}

pub(crate) async fn integrations_list(browser: &Browser, stack: &Stack) -> anyhow::Result<()> {
    browser.goto(&format!("{}/ui/", stack.pages)).await?;
    let card = browser.wait_for_text("#integrations", "Succeeded").await?;
    for words in ["Zoho CRM", "Active", "Backers", "Last run"] {
        anyhow::ensure!(
            card.contains(words),
            "the list does not show {words:?}: {card}"
        );
    }
    browser.screenshot("12-integrations").await?;
    narrow_screenshot(browser, "12-integrations-375").await
}

pub(crate) async fn reauthorise(browser: &Browser, stack: &Stack, id: &str) -> anyhow::Result<()> {
    // What a fetcher records when Zoho refuses the refresh token (the fetcher's own tests cover
    // how it gets there; this is about what the page offers then).
    sqlx::query(
        "UPDATE integrations SET status = 'needs_reauth', status_reason = $2 WHERE id = $1::uuid",
    )
    .bind(id)
    .bind("Zoho answered invalid_code for the refresh token")
    .execute(&stack.db)
    .await?;
    browser
        .goto(&format!("{}/ui/integrations/{id}", stack.pages))
        .await?;
    browser
        .wait_for_text("#reauth", "Zoho needs you to re-authorise")
        .await?;
    browser
        .wait_for_text("#status-badge", "Needs re-authorisation")
        .await?;
    anyhow::ensure!(
        browser.prop("#sync-now", "disabled").await? == json!(true),
        "Sync Now is live while Zoho refuses"
    );
    browser.screenshot("13-detail-needs-reauth").await?;
    narrow_screenshot(browser, "13-detail-needs-reauth-375").await?;

    let client_id = browser.text("#reauth-client").await?;
    browser
        .fill("#refresh_token", "1000.this-code-was-never-issued")
        .await?;
    browser.click("#reauth-form button[type=submit]").await?;
    let message = browser
        .wait_for_text("#refresh_token-error", "grant code")
        .await?;
    anyhow::ensure!(
        browser
            .attr("#refresh_token", "aria-invalid")
            .await?
            .as_deref()
            == Some("true"),
        "{message}"
    );
    browser
        .fill("#refresh_token", &stack.grant_code(&client_id).await?)
        .await?;
    browser.click("#reauth-form button[type=submit]").await?;
    browser.wait_for_text("#notice", "Re-authorised").await?;
    browser.wait_for_text("#status-badge", "Active").await?;
    anyhow::ensure!(
        browser.prop("#sync-now", "disabled").await? == json!(false),
        "Sync Now stayed off"
    );
    let (_, view): (u16, Value) = stack
        .api(
            reqwest::Method::GET,
            &format!("/v1/integrations/{id}"),
            None,
        )
        .await?;
    anyhow::ensure!(view["status"] == "active", "after re-authorising: {view}");
    browser
        .screenshot("14-detail-reauthorised")
        .await
        .map(|_| ())
}
