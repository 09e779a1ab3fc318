//! Dead letters are not a dead end: a batch the sink refuses is listed with its reason and run,
//! and once the cause is mended, redriving the run's letters completes the run and its audience.
//!
//! The cause, realistic and mendable: the creator unticks Leads (PATCH the integration's modules)
//! while a full run's Leads batches are still queued. The sink refuses a batch of a module the
//! integration no longer syncs (it cannot tell a changed mind from a forged message) and
//! dead-letters it; the run stays running, its ledger short of those batches. Ticking Leads again
//! and redriving the run's dead letters lands them, and the run succeeds.
//!
//! The sink starts only after the fetcher has published every page's batch, so that the Leads
//! batches surely reach it after the change: no timing is left to chance.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use pledgesync_tests::wait_until;
use serde_json::{json, Value};

use crate::harness::{Options, System};
use crate::oracle::Expected;
use crate::scrape::{total, Page};

const DEADLINE: Duration = Duration::from_secs(40);

async fn modules(system: &System, integration: &str, modules: &[&str]) -> anyhow::Result<()> {
    let (status, view) = system
        .api(
            reqwest::Method::PATCH,
            &format!("/v1/integrations/{integration}"),
            Some(json!({ "modules": modules })),
        )
        .await?;
    anyhow::ensure!(status == 200, "PATCH modules answered {status}: {view}");
    Ok(())
}

/// The batches queue's dead letters of `run`.
async fn dead_batches(system: &System, run: &str) -> anyhow::Result<Vec<Value>> {
    let (status, listing) = system
        .api(
            reqwest::Method::GET,
            "/v1/dead-letters?queue=batches&limit=500",
            None,
        )
        .await?;
    anyhow::ensure!(
        status == 200,
        "GET dead letters answered {status}: {listing}"
    );
    let queues = listing["queues"].as_array().context("no queues")?;
    Ok(queues
        .iter()
        .filter(|q| q["queue"] == "batches")
        .flat_map(|q| q["dead_letters"].as_array().cloned().unwrap_or_default())
        .filter(|letter| letter["run_id"].as_str() == Some(run))
        .collect())
}

#[tokio::test]
async fn a_dead_lettered_batch_lands_after_the_fix_and_a_redrive() -> anyhow::Result<()> {
    let mut options = Options::new(500, 400);
    options.fetchers = 1;
    options.sinks = 0;
    // Room for every page in flight: without a sink, back-pressure would hold the fetcher.
    options.fetcher_env = vec![(
        "PLEDGESYNC__FETCH__MAX_OUTSTANDING_BATCHES",
        "100".to_owned(),
    )];
    let mut system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-dead", None).await?;
    let run = system.sync(&integration, "full").await?;

    // The fetcher publishes a batch per page of 200 while no sink consumes, then waits for
    // them to be applied before it may finish the run (a full run's total and deletions come
    // only after every upsert landed).
    let pages = 500u64.div_ceil(200) + 400u64.div_ceil(200);
    wait_until("every page to be published", DEADLINE, || async {
        let view = system.run(&run).await.ok()?;
        (view["counters"]["batches_published"].as_u64()? == pages).then_some(())
    })
    .await
    .with_context(|| system.all_tails())?;
    modules(&system, &integration, &["Contacts"]).await?;
    system.start_sink().await?;

    // Contacts land; every Leads batch is refused and listed with its reason and run.
    let letters = wait_until("Leads batches to be dead-lettered", DEADLINE, || async {
        let view = system.run(&run).await.ok()?;
        let applied = view["counters"]["batches_applied"].as_u64()?;
        let letters = dead_batches(&system, &run).await.ok()?;
        (applied + letters.len() as u64 == pages && !letters.is_empty()).then_some(letters)
    })
    .await
    .with_context(|| system.all_tails())?;
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("does not sync Leads"), "{letter}");
        assert_eq!(
            letter["source_queue"]
                .as_str()
                .map(|q| q.ends_with("batches")),
            Some(true),
            "{letter}"
        );
    }
    let view = system.run(&run).await?;
    assert_eq!(
        view["status"], "running",
        "a run short of batches waits: {view}"
    );

    // Mend the cause, then redrive this run's letters.
    modules(&system, &integration, &["Contacts", "Leads"]).await?;
    let (status, redriven) = system
        .api(
            reqwest::Method::POST,
            "/v1/dead-letters/redrive",
            Some(json!({ "queue": "batches", "run_id": run })),
        )
        .await?;
    anyhow::ensure!(status == 200, "redrive answered {status}: {redriven}");
    assert_eq!(
        redriven["results"][0]["redriven"].as_u64(),
        Some(letters.len() as u64),
        "{redriven}"
    );
    let view = system.wait_for_success(&run, DEADLINE).await?;
    assert_eq!(
        view["counters"]["batches_applied"], view["counters"]["batches_total"],
        "{view}"
    );
    assert!(
        view["counters"]["batches_published"].as_u64() >= Some(pages),
        "{view}"
    );
    assert!(
        dead_batches(&system, &run).await?.is_empty(),
        "nothing of the run is left dead"
    );

    // The audience is complete: every live Contact and Lead, as Zoho has them.
    let contacts = system.records("Contacts", None).await?;
    let leads = system.records("Leads", None).await?;
    let expected = Expected::from_records(&[("Contacts", &contacts), ("Leads", &leads)]);
    let members = system.members(&audience).await?;
    if let Err(differences) = expected.check(&members, &BTreeSet::new()) {
        anyhow::bail!("the audience differs from Zoho after the redrive: {differences}");
    }

    // And the metrics tell the story: dead-lettered once each, redriven once each.
    let sink = Page::fetch(
        &system.http,
        &format!("http://127.0.0.1:{}/metrics", system.sinks[0].port),
    )
    .await?;
    let fetcher = Page::fetch(
        &system.http,
        &format!("http://127.0.0.1:{}/metrics", system.fetchers[0].port),
    )
    .await?;
    let scheduler = Page::fetch(&system.http, &format!("{}/metrics", system.api)).await?;
    let dead = letters.len() as f64;
    assert_eq!(
        total(
            &[&sink],
            "pledgesync_messages_dead_lettered_total",
            &[("queue", "batches")]
        ),
        dead
    );
    assert_eq!(
        scheduler.sum(
            "pledgesync_dead_letters_redriven_total",
            &[("queue", "batches")]
        ),
        dead
    );
    // The run is counted once, by whichever of them completed it.
    assert_eq!(
        total(
            &[&sink, &fetcher],
            "pledgesync_runs_total",
            &[("status", "succeeded")]
        ),
        1.0
    );
    system.stop().await
}
