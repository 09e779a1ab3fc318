//! The guide's first half: sign in, Add Integration (a wrong secret and an expired code before a
//! good one), Map Audience.

use anyhow::Context as _;
use fantoccini::key::Key;
use serde_json::json;

use crate::browser::Browser;
use crate::guide::{assert_field_error, narrow_screenshot, ACCOUNT};
use crate::stack::{text, Stack, API_TOKEN};

pub(crate) async fn sign_in(browser: &Browser, stack: &Stack) -> anyhow::Result<()> {
    // The root redirects to the pages, which send a visitor without a session to sign in.
    browser.goto(&format!("{}/", stack.pages)).await?;
    browser.wait_for_location("/ui/sign-in").await?;
    let csp = stack
        .http
        .get(format!("{}/ui/sign-in", stack.pages))
        .send()
        .await?;
    let policy = csp
        .headers()
        .get("content-security-policy")
        .context("no CSP header")?
        .to_str()?
        .to_owned();
    anyhow::ensure!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "CSP: {policy}"
    );
    browser.screenshot("01-sign-in").await?;

    browser.fill("#token", "not-the-token-0123456789").await?;
    browser.fill("#account_id", ACCOUNT).await?;
    browser.click("#sign-in-form button[type=submit]").await?;
    assert_field_error(browser, "token", "does not accept this token").await?;
    browser.screenshot("02-sign-in-wrong-token").await?;

    // Keyboard only: type the token and press Enter in the field.
    browser.fill("#token", API_TOKEN).await?;
    browser.press(Key::Enter).await?;
    browser.wait_for_location("/ui/").await?;
    browser
        .wait_for_text("#empty", "No integrations yet")
        .await?;
    anyhow::ensure!(
        browser.text("#session-account").await? == ACCOUNT,
        "the header does not show the account"
    );
    browser
        .screenshot("03-integrations-empty")
        .await
        .map(|_| ())
}

pub(crate) async fn add_integration(browser: &Browser, stack: &Stack) -> anyhow::Result<String> {
    browser
        .click("a.button[href='/ui/integrations/new']")
        .await?;
    browser.wait_for_location("/ui/integrations/new").await?;
    browser
        .wait_for_text("#guide-title", "Get the code from Zoho")
        .await?;
    // The first Tab lands on the skip link, with a visible focus ring.
    browser.press(Key::Tab).await?;
    let focus = browser
        .js("const e = document.activeElement; const s = getComputedStyle(e); return [e.className, s.outlineStyle, s.outlineWidth];", vec![])
        .await?;
    anyhow::ensure!(
        focus == json!(["skip-link", "solid", "3px"]),
        "keyboard focus is not visible: {focus}"
    );
    browser.click("[data-copy=scope]").await?;
    browser
        .wait_for_text("#copy-status", "ZohoCRM.modules.ALL,ZohoCRM.org.READ")
        .await?;
    browser.screenshot("04-add-integration").await?;
    narrow_screenshot(browser, "04-add-integration-375").await?;

    let (client_id, secret) = stack.self_client().await?;

    // A wrong secret: the message is beside Client Secret, the code is cleared, the rest stays,
    // and what was typed as the secret is nowhere in the page's markup.
    let wrong_secret = format!("{secret}x");
    browser.fill("#client_id", &client_id).await?;
    browser.fill("#client_secret", &wrong_secret).await?;
    browser
        .fill("#refresh_token", &stack.grant_code(&client_id).await?)
        .await?;
    browser.click("#submit").await?;
    assert_field_error(browser, "client_secret", "Client Secret does not match").await?;
    anyhow::ensure!(
        browser.prop("#refresh_token", "value").await? == json!(""),
        "the used code was kept"
    );
    anyhow::ensure!(
        !browser.text("#refresh_token-note").await?.is_empty(),
        "no word on why the code was cleared"
    );
    anyhow::ensure!(
        browser.prop("#client_id", "value").await? == json!(client_id),
        "the Client ID was not kept"
    );
    anyhow::ensure!(
        browser.prop("#client_secret", "value").await? == json!(wrong_secret),
        "what was typed was not kept"
    );
    anyhow::ensure!(browser.attr("#client_secret", "type").await?.as_deref() == Some("password"));
    let markup = browser
        .js("return document.documentElement.outerHTML;", vec![])
        .await?;
    anyhow::ensure!(
        !text(&markup)?.contains(&wrong_secret),
        "the secret was rendered into the page"
    );
    browser
        .screenshot("05-add-integration-wrong-secret")
        .await?;

    // An expired code: generated, then 10 minutes and a second pass on Zoho's clock.
    browser.fill("#client_secret", &secret).await?;
    let expired = stack.grant_code(&client_id).await?;
    stack.advance_clock(601).await?;
    browser.fill("#refresh_token", &expired).await?;
    browser.click("#submit").await?;
    assert_field_error(browser, "refresh_token", "expired").await?;
    anyhow::ensure!(
        browser
            .attr("#client_secret", "aria-invalid")
            .await?
            .is_none(),
        "the old error stayed on Client Secret"
    );
    anyhow::ensure!(
        browser.prop("#refresh_token", "value").await? == json!(""),
        "the expired code was kept"
    );
    browser
        .screenshot("06-add-integration-expired-code")
        .await?;

    // A fresh code connects, and Next leads to Map Audience.
    browser
        .fill("#refresh_token", &stack.grant_code(&client_id).await?)
        .await?;
    browser.click("#submit").await?;
    let at = browser
        .wait_for_location_where("Map Audience", |at| {
            at.starts_with("/ui/integrations/") && at.ends_with("/audience")
        })
        .await?;
    let id = at
        .trim_start_matches("/ui/integrations/")
        .trim_end_matches("/audience")
        .to_owned();
    let (status, view) = stack
        .api(
            reqwest::Method::GET,
            &format!("/v1/integrations/{id}"),
            None,
        )
        .await?;
    anyhow::ensure!(
        status == 200 && view["audience_id"].is_null(),
        "the new integration: {status} {view}"
    );
    Ok(id)
}

pub(crate) async fn map_audience(browser: &Browser, stack: &Stack, id: &str) -> anyhow::Result<()> {
    browser.wait_for_text("#org-name", "(").await?;
    // Before this step the integration cannot sync, and its page says so.
    browser
        .goto(&format!("{}/ui/integrations/{id}", stack.pages))
        .await?;
    browser
        .wait_for_text("#sync-hint", "Map an audience first")
        .await?;
    anyhow::ensure!(
        browser.prop("#sync-now", "disabled").await? == json!(true),
        "Sync Now is live without an audience"
    );
    browser.screenshot("07-detail-before-mapping").await?;
    browser.click("#sync-hint a").await?;
    browser
        .wait_for_location(&format!("/ui/integrations/{id}/audience"))
        .await?;
    browser.wait_for_text("#org-name", "(").await?;
    // No audience yet: "Create a new audience" is chosen, with a suggested name.
    anyhow::ensure!(browser.prop("#audience-new", "checked").await? == json!(true));
    browser.fill("#name", "Backers").await?;
    browser.screenshot("08-map-audience").await?;
    browser.click("#audience-form button[type=submit]").await?;
    browser
        .wait_for_location(&format!("/ui/integrations/{id}"))
        .await?;
    browser.wait_for_text("#details", "Backers").await?;
    Ok(())
}
