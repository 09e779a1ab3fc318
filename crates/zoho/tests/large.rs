//! Past Zoho's 100,000-record page_token cap: the read continues in a new Modified_Time window and
//! still returns every record exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{accounts, clients, emulator, integration, prefix, redis_pool, settings, Console};
use futures::StreamExt as _;
use pledgesync_core::Module;
use serde::Deserialize;
use zoho_emulator::EmulatorConfig;

/// Only what is compared, so the console's full listing stays cheap to hold.
#[derive(Deserialize)]
struct Listing {
    records: Vec<Row>,
}

#[derive(Deserialize, PartialEq, Debug)]
struct Row {
    id: String,
    #[serde(rename = "Email")]
    email: Option<String>,
    #[serde(rename = "Modified_Time")]
    modified_time: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_100000_records_are_read_exactly_once() {
    const CONTACTS: usize = 120_000;
    let emu = emulator(EmulatorConfig {
        contacts: CONTACTS,
        leads: 0,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let creds = integration(&console, &accounts).await;
    let (_, client) = clients(&accounts, redis_pool());
    let crm = client.session(creds);

    let started = Instant::now();
    let mut stream = crm.pages(Module::Contacts, &["Email"], None, None);
    let mut read: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    let mut pages = 0;
    let mut windows = std::collections::BTreeSet::new();
    while let Some(page) = stream.next().await {
        let page = page.expect("page");
        pages += 1;
        if let Some(next) = &page.next {
            let json = serde_json::to_value(next).expect("json");
            windows.insert(json["window_start"].to_string());
        }
        for record in page.records {
            let record = record.to_map().expect("a record is an object");
            let id = record["id"].as_str().expect("id").to_owned();
            let email = record["Email"].as_str().map(str::to_owned);
            let modified = record["Modified_Time"].as_str().expect("time").to_owned();
            assert!(
                read.insert(id.clone(), (email, modified)).is_none(),
                "{id} read twice"
            );
        }
    }
    let took = started.elapsed();
    println!(
        "{} records in {pages} pages, windows {windows:?}, {:.1}s",
        read.len(),
        took.as_secs_f64()
    );
    assert_eq!(
        windows.len(),
        2,
        "one new window after 100,000 records: {windows:?}"
    );

    let body = reqwest::get(format!("{}/__emulator/records/Contacts", emu.base_url()))
        .await
        .expect("listing")
        .bytes()
        .await
        .expect("body");
    let listing: Listing = serde_json::from_slice(&body).expect("listing json");
    assert_eq!(listing.records.len(), CONTACTS);
    for row in listing.records {
        let (email, modified) = read
            .remove(&row.id)
            .unwrap_or_else(|| panic!("{} was not read", row.id));
        assert_eq!((email, modified), (row.email, row.modified_time));
    }
    assert!(
        read.is_empty(),
        "records read that the module does not hold: {}",
        read.len()
    );
    emu.shutdown().await;
}
