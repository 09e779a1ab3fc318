//! Syncs that go as planned: full, incremental, long runs in slices, two accounts at once, and
//! members from elsewhere.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{text, Options, System};
use crate::oracle::Expected;

pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Compares the audience with the emulator's live records of an org.
pub async fn assert_audience_matches(
    system: &System,
    audience: &str,
    org: Option<&str>,
    ignore: &BTreeSet<String>,
) -> anyhow::Result<Expected> {
    let contacts = system.records("Contacts", org).await?;
    let leads = system.records("Leads", org).await?;
    let expected = Expected::from_records(&[("Contacts", &contacts), ("Leads", &leads)]);
    let members = system.members(audience).await?;
    if let Err(differences) = expected.check(&members, ignore) {
        anyhow::bail!("the audience differs from Zoho: {differences}");
    }
    Ok(expected)
}

/// Records whose email no other record shares: changing or deleting one changes exactly one
/// member, so the expected audience stays unambiguous.
pub async fn unique_records(
    system: &System,
    module: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    let contacts = system.records("Contacts", None).await?;
    let leads = system.records("Leads", None).await?;
    let key = |r: &Value| r["Email"].as_str().map(|e| e.trim().to_ascii_lowercase());
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for record in contacts.iter().chain(leads.iter()) {
        if let Some(email) = key(record) {
            *seen.entry(email).or_default() += 1;
        }
    }
    let pool = if module == "Contacts" {
        contacts
    } else {
        leads
    };
    let picked: Vec<Value> = pool
        .into_iter()
        .filter(|r| {
            key(r).is_some_and(|e| seen.get(&e) == Some(&1) && e.contains('@') && !e.contains(' '))
        })
        .filter(|r| r["First_Name"].is_string() && r["Last_Name"].is_string())
        .step_by(7)
        .take(count)
        .collect();
    anyhow::ensure!(
        picked.len() == count,
        "only {} unique {module} found",
        picked.len()
    );
    Ok(picked)
}

#[tokio::test]
async fn a_full_sync_lands_every_record() -> anyhow::Result<()> {
    let system = System::start(Options::new(2_000, 1_000)).await?;
    let (integration, audience) = system.connect("acct-full", None).await?;
    let run = system.sync(&integration, "full").await?;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    let expected = assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;

    let live =
        system.records("Contacts", None).await?.len() + system.records("Leads", None).await?.len();
    let counters = &view["counters"];
    assert_eq!(counters["fetched"].as_u64(), Some(live as u64), "{view}");
    assert_eq!(
        counters["applied"].as_u64().unwrap_or(0) + counters["skipped"].as_u64().unwrap_or(0),
        live as u64,
        "every fetched record is applied or skipped once: {view}"
    );
    assert_eq!(
        counters["batches_applied"], counters["batches_total"],
        "{view}"
    );
    assert_eq!(view["total_estimate"].as_u64(), Some(3_000), "{view}");
    assert!(
        counters["skipped_by_reason"]["missing_email"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "the seed has records without email: {view}"
    );
    assert!(expected.len() > 2_000, "{} members", expected.len());
    system.stop().await
}

#[tokio::test]
async fn an_incremental_sync_follows_changes_and_deletes() -> anyhow::Result<()> {
    let system = System::start(Options::new(1_500, 800)).await?;
    let (integration, audience) = system.connect("acct-incr", None).await?;
    let first = system.sync(&integration, "full").await?;
    system.wait_for_success(&first, RUN_TIMEOUT).await?;

    let changed = unique_records(&system, "Contacts", 5).await?;
    for (i, record) in changed.iter().enumerate() {
        let id = text(&record["id"])?;
        system
            .emulator(
                reqwest::Method::PATCH,
                &format!("/__emulator/records/Contacts/{id}"),
                Some(json!({"First_Name": format!("Changed{i}"), "Last_Name": "Renamed", "Email_Opt_Out": i % 2 == 0})),
            )
            .await?;
    }
    let deleted = unique_records(&system, "Leads", 4).await?;
    let mut gone = BTreeSet::new();
    for (i, record) in deleted.iter().enumerate() {
        let id = text(&record["id"])?;
        let permanent = if i % 2 == 0 { "true" } else { "false" };
        system
            .emulator(
                reqwest::Method::DELETE,
                &format!("/__emulator/records/Leads/{id}?permanent={permanent}"),
                None,
            )
            .await?;
        gone.insert(text(&record["Email"])?.trim().to_ascii_lowercase());
    }
    system
        .emulator(
            reqwest::Method::POST,
            "/__emulator/records/Contacts",
            Some(json!({"records": [{"Email": "new.backer@example.com", "First_Name": "New", "Last_Name": "Backer"}]})),
        )
        .await?;

    let second = system.sync(&integration, "incremental").await?;
    let view = system.wait_for_success(&second, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let members = system.members(&audience).await?;
    let emails: BTreeSet<String> = members
        .iter()
        .filter_map(|m| m["email"].as_str().map(str::to_owned))
        .collect();
    assert!(gone.is_disjoint(&emails), "deleted records' members remain");
    assert!(emails.contains("new.backer@example.com"));
    let fetched = view["counters"]["fetched"].as_u64().unwrap_or(u64::MAX);
    assert!(
        fetched < 200,
        "an incremental run reads only what changed, not {fetched} records"
    );
    assert!(
        view["counters"]["deleted"].as_u64().unwrap_or(0) >= 4,
        "{view}"
    );
    system.stop().await
}

#[tokio::test]
async fn a_long_run_is_carried_by_continuation_jobs() -> anyhow::Result<()> {
    let mut options = Options::new(2_000, 600);
    options
        .fetcher_env
        .push(("PLEDGESYNC__FETCH__SLICE_PAGES", "2".to_owned()));
    let system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-slices", None).await?;
    let run = system.sync(&integration, "full").await?;
    system.wait_for_success(&run, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let continuations = system
        .metric(&system.fetchers, "pledgesync_fetcher_continuations_total")
        .await?;
    // 13 pages at 2 per job.
    assert!(
        continuations >= 6.0,
        "only {continuations} continuation jobs"
    );
    system.stop().await
}

#[tokio::test]
async fn two_accounts_sync_at_once_without_crossing_over() -> anyhow::Result<()> {
    let system = System::start(Options::new(1_200, 400)).await?;
    let other = system
        .emulator(
            reqwest::Method::POST,
            "/__emulator/orgs",
            Some(json!({"contacts": 900, "leads": 300, "seed": 7})),
        )
        .await?;
    let other_org = text(&other["org_id"])?;
    let (first, first_audience) = system.connect("acct-one", None).await?;
    let (second, second_audience) = system.connect("acct-two", Some(&other_org)).await?;
    let (run_one, run_two) = (
        system.sync(&first, "full").await?,
        system.sync(&second, "full").await?,
    );
    system.wait_for_success(&run_one, RUN_TIMEOUT).await?;
    system.wait_for_success(&run_two, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &first_audience, None, &BTreeSet::new()).await?;
    assert_audience_matches(
        &system,
        &second_audience,
        Some(&other_org),
        &BTreeSet::new(),
    )
    .await?;
    for (audience, integration) in [(&first_audience, &first), (&second_audience, &second)] {
        for member in system.members(audience).await? {
            let sources = member["sources"].as_array().cloned().unwrap_or_default();
            assert!(!sources.is_empty(), "{member}");
            assert!(
                sources
                    .iter()
                    .all(|s| s["integration_id"] == integration.as_str()),
                "a member of {audience} came from another integration: {member}"
            );
        }
    }
    system.stop().await
}

#[tokio::test]
async fn a_full_run_removes_confirmed_deletions_but_never_a_member_from_elsewhere(
) -> anyhow::Result<()> {
    let system = System::start(Options::new(1_200, 400)).await?;
    let (integration, audience) = system.connect("acct-external", None).await?;
    let first = system.sync(&integration, "full").await?;
    system.wait_for_success(&first, RUN_TIMEOUT).await?;

    let external = "came.from.pledgebox@example.org";
    let audience_id: uuid::Uuid = audience.parse()?;
    sqlx::query(
        "INSERT INTO audience_members (audience_id, email, first_name) VALUES ($1, $2, 'Kept')",
    )
    .bind(audience_id)
    .bind(external)
    .execute(&system.db)
    .await?;
    let deleted = unique_records(&system, "Contacts", 3).await?;
    let mut gone = BTreeSet::new();
    for record in &deleted {
        let id = text(&record["id"])?;
        system
            .emulator(
                reqwest::Method::DELETE,
                &format!("/__emulator/records/Contacts/{id}"),
                None,
            )
            .await?;
        gone.insert(text(&record["Email"])?.trim().to_ascii_lowercase());
    }

    let second = system.sync(&integration, "full").await?;
    let view = system.wait_for_success(&second, RUN_TIMEOUT).await?;
    let ignore = BTreeSet::from([external.to_owned()]);
    assert_audience_matches(&system, &audience, None, &ignore).await?;
    let members = system.members(&audience).await?;
    let kept = members.iter().find(|m| m["email"] == external);
    assert!(
        kept.is_some_and(|m| m["origin"] == "external" && m["first_name"] == "Kept"),
        "the external member was touched"
    );
    let emails: BTreeSet<String> = members
        .iter()
        .filter_map(|m| m["email"].as_str().map(str::to_owned))
        .collect();
    assert!(
        gone.is_disjoint(&emails),
        "Zoho-deleted records' members remain after a full run"
    );
    assert!(
        view["counters"]["deleted"].as_u64().unwrap_or(0) >= 3,
        "{view}"
    );
    system.stop().await
}
