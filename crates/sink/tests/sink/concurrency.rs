//! Two sinks (each with its own RabbitMQ connection and PostgreSQL pool, as two processes would
//! have) applying interleaved batches of two runs that feed one audience, with emails that
//! repeat within batches, across batches and across runs.

use std::collections::BTreeMap;
use std::time::Duration;

use pledgesync_core::Module;
use pledgesync_sink::apply::Applied;
use pledgesync_store::RunStatus;
use tokio::sync::mpsc;

use crate::common::*;

const BATCHES_PER_RUN: u64 = 12;
const RECORDS_PER_BATCH: u64 = 50;
const EMAILS: u64 = 40;

#[tokio::test]
async fn two_sinks_apply_interleaved_batches_with_overlapping_emails() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let account = account();
    let audience = create_audience(&db.store, &account, "Backers").await;
    let mut runs = Vec::new();
    for name in ["Zoho EU", "Zoho US"] {
        let integration = create_integration(&db.store, &account, name, audience)
            .await
            .id;
        let run = running_run(&db.store, integration).await;
        db.store
            .set_batches_total(run, BATCHES_PER_RUN)
            .await
            .expect("total");
        runs.push(Fixture {
            account: account.clone(),
            audience,
            integration,
            run,
        });
    }

    // Record number n (over both runs) has email n % EMAILS, spelled sloppily now and then, and
    // Modified_Time minute n: the highest n of an email is the version that must stand.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut batches = Vec::new();
    let mut n: u64 = 0;
    for seq in 0..BATCHES_PER_RUN {
        for (r, fixture) in runs.iter().enumerate() {
            let module = if seq % 3 == 0 {
                Module::Leads
            } else {
                Module::Contacts
            };
            let mut records = Vec::new();
            for _ in 0..RECORDS_PER_BATCH {
                n += 1;
                let email = format!("backer{}@example.com", n % EMAILS);
                let typed = match n % 4 {
                    0 => email.to_uppercase(),
                    1 => format!("  {email} "),
                    _ => email.clone(),
                };
                let name = format!("v{n}");
                expected.insert(email, name.clone());
                // Record ids are unique per integration, as in Zoho.
                let id = 1_000_000 * (r as u64 + 1) + n;
                records.push(contact(id, &typed, &name, n as u32));
            }
            batches.push(fixture.upsert(seq, module, records));
        }
    }

    let (tx, mut events) = mpsc::unbounded_channel();
    let first = Sink::start(mq.broker.clone(), db.store.clone(), 4, tx.clone());
    let second = Sink::start(mq.another().await, db.another_store().await, 4, tx);
    // Interleaved: the two runs' batches alternate, and each run's are published out of order.
    batches.sort_by_key(|b| (b.seq % 2 == 0, b.seq, b.run_id));
    for batch in &batches {
        mq.publish(batch).await;
    }

    let handled = receive(&mut events, batches.len(), Duration::from_secs(90)).await;
    let failures: Vec<_> = handled
        .iter()
        .filter(|h| !matches!(h.result, Ok(Applied::Written(_))))
        .collect();
    assert!(
        failures.is_empty(),
        "every batch applies at the first attempt: {failures:?}"
    );

    for fixture in &runs {
        let run = run_of(&db.store, fixture.run).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.counters.batches_applied, BATCHES_PER_RUN);
        assert_eq!(
            run.counters.applied + run.counters.skipped,
            BATCHES_PER_RUN * RECORDS_PER_BATCH,
            "every record is counted once: {:?}",
            run.counters
        );
    }
    assert_eq!(
        db.store.count_members(audience).await.expect("count"),
        EMAILS
    );
    for (email, name) in &expected {
        let member = db
            .store
            .get_member(audience, email)
            .await
            .expect("read")
            .expect("member");
        assert_eq!(
            member.first_name.as_ref(),
            Some(name),
            "{email}: the newest version stands"
        );
    }
    first.stop().await;
    second.stop().await;
}
