//! The whole setup guide in headless Chromium, as a creator walks it: sign in, Add Integration
//! (a wrong secret and an expired code first, each answered beside the right field), Map
//! Audience, Sync Now with the progress bar running to the end and the members counted, the
//! Integrations list, and re-authorisation. A screenshot of each page goes to
//! `target/ui-artifacts/`.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use anyhow::Context as _;
use futures::FutureExt as _;
use zoho_emulator::EmulatorConfig;

use crate::browser::{Browser, DESKTOP};
use crate::stack::Stack;
use crate::{connect, detail};

pub(crate) const ACCOUNT: &str = "creator-ui-1";
pub(crate) const CONTACTS: usize = 600;
pub(crate) const LEADS: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_walks_the_setup_guide_in_a_browser() -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(browser) = Browser::launch().await? else {
        return Ok(());
    };
    let stack = match Stack::start(EmulatorConfig {
        contacts: CONTACTS,
        leads: LEADS,
        // Slow enough that the progress bar is seen moving, fast enough for the time budget.
        latency_ms: 300,
        ..EmulatorConfig::default()
    })
    .await
    {
        Ok(stack) => stack,
        Err(error) => {
            browser.close().await;
            return Err(error);
        }
    };
    let mut stack = stack;
    let walked = AssertUnwindSafe(walk(&browser, &mut stack))
        .catch_unwind()
        .await;
    browser.close().await;
    let failed = !matches!(walked, Ok(Ok(())));
    let tails = if failed {
        stack.all_tails()
    } else {
        String::new()
    };
    let logs = stack.logs.clone();
    stack.stop(failed).await?;
    match walked {
        Ok(Ok(())) => {
            eprintln!(
                "the setup guide took {:?} in the browser",
                started.elapsed()
            );
            Ok(())
        }
        Ok(Err(error)) => Err(error.context(format!("logs kept in {}\n{tails}", logs.display()))),
        Err(panic) => {
            eprintln!("logs kept in {}\n{tails}", logs.display());
            std::panic::resume_unwind(panic)
        }
    }
}

async fn walk(browser: &Browser, stack: &mut Stack) -> anyhow::Result<()> {
    connect::sign_in(browser, stack).await?;
    let id = connect::add_integration(browser, stack).await?;
    connect::map_audience(browser, stack, &id).await?;
    detail::sync_now(browser, stack, &id).await?;
    detail::integrations_list(browser, stack).await?;
    detail::reauthorise(browser, stack, &id).await?;
    Ok(())
}

/// Digits of a number as the page formats it ("1,234" → 1234).
pub(crate) fn number(shown: &str) -> anyhow::Result<u64> {
    let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .with_context(|| format!("{shown:?} is not a number"))
}

/// Checks that a form error sits beside `field`: text, aria-invalid, aria-describedby.
pub(crate) async fn assert_field_error(
    browser: &Browser,
    field: &str,
    needle: &str,
) -> anyhow::Result<String> {
    let message = browser
        .wait_for_text(&format!("#{field}-error"), needle)
        .await?;
    let css = format!("#{field}");
    anyhow::ensure!(
        browser.attr(&css, "aria-invalid").await?.as_deref() == Some("true"),
        "{field} is not aria-invalid"
    );
    let described = browser
        .attr(&css, "aria-describedby")
        .await?
        .unwrap_or_default();
    anyhow::ensure!(
        described
            .split(' ')
            .any(|id| id == format!("{field}-error")),
        "{field} is not described by its error: {described}"
    );
    anyhow::ensure!(
        !browser.text("#form-error").await?.is_empty(),
        "the form's alert says nothing"
    );
    Ok(message)
}

/// A screenshot at a phone's 375 px, checking that nothing overflows sideways.
pub(crate) async fn narrow_screenshot(browser: &Browser, name: &str) -> anyhow::Result<()> {
    browser.resize(375, 812).await?;
    let width = browser.inner_width().await?;
    anyhow::ensure!(width == 375, "the window is {width} px wide, not 375");
    let overflow = browser
        .js("return document.documentElement.scrollWidth;", vec![])
        .await?;
    anyhow::ensure!(
        overflow.as_u64() == Some(375),
        "the page is {overflow} px wide at 375 px: it overflows sideways"
    );
    browser.screenshot(name).await?;
    browser.resize(DESKTOP.0, DESKTOP.1).await
}
