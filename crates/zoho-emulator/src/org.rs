//! Orgs: a company's CRM with its users, its two modules and its API-credit window.
//!
//! Tests need many integrations of different sizes, so the console can create any number of orgs,
//! each seeded independently. An org's ids, users and records never collide with another's.

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};

use chrono::FixedOffset;
use serde::Deserialize;

use crate::data::{mix, Generator};
use crate::records::User;
use crate::schema::Module;
use crate::store::ModuleStore;
use crate::zones;

/// Editions the console accepts (values of `license_details.paid_type`).
pub const EDITIONS: &[&str] = &[
    "free",
    "standard",
    "starter",
    "professional",
    "enterprise",
    "ultimate",
    "zohooneenterprise",
    "crmplusprofessional",
];

/// Most orgs one emulator holds; keeps every org's 7-digit id prefix distinct and in range.
pub const MAX_ORGS: usize = 5_000;

/// Most records one org may be seeded with per module.
pub const MAX_RECORDS: usize = 5_000_000;

/// What `POST /__emulator/orgs` takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Contacts to seed.
    #[serde(default)]
    pub contacts: usize,
    /// Leads to seed.
    #[serde(default)]
    pub leads: usize,
    /// Seed of the data.
    #[serde(default)]
    pub seed: u64,
    /// Edition (see [`EDITIONS`]).
    #[serde(default = "default_edition")]
    pub edition: String,
    /// Time zone (see [`zones`]).
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// Company name; generated when absent.
    #[serde(default)]
    pub company_name: Option<String>,
    /// This org's own concurrency limit, overriding the knob.
    #[serde(default)]
    pub concurrency_limit: Option<usize>,
    /// This org's own daily credit budget, overriding the knob.
    #[serde(default)]
    pub daily_credits: Option<u64>,
}

/// Default edition of console-created orgs.
fn default_edition() -> String {
    "enterprise".into()
}

/// Default time zone of console-created orgs.
fn default_zone() -> String {
    "Asia/Kolkata".into()
}

impl OrgSpec {
    /// Rejects sizes and names the emulator cannot honour.
    pub fn validate(&self) -> Result<(), String> {
        if self.contacts > MAX_RECORDS || self.leads > MAX_RECORDS {
            return Err(format!("at most {MAX_RECORDS} records per module"));
        }
        if !EDITIONS.contains(&self.edition.as_str()) {
            return Err(format!(
                "unknown edition {:?}; one of {}",
                self.edition,
                EDITIONS.join(", ")
            ));
        }
        if zones::offset(&self.time_zone).is_none() {
            return Err(format!(
                "unknown time zone {:?}; use an IANA name or UTC+05:30",
                self.time_zone
            ));
        }
        Ok(())
    }
}

/// One org.
#[derive(Debug)]
pub struct Org {
    /// Org id as `/org` shows it.
    pub id: String,
    /// 7-digit prefix of every id in the org (`4150868` in `4150868000000002175`).
    pub prefix: u64,
    /// Company name.
    pub company_name: String,
    /// Edition.
    pub edition: String,
    /// Time zone name.
    pub time_zone: String,
    /// Its offset.
    pub offset: FixedOffset,
    /// When the org was created, Unix seconds (seeded data lies in the two years before).
    pub created_at: i64,
    /// Users; index 0 is the admin who creates self clients and owns console edits.
    pub users: Vec<User>,
    /// Contacts.
    pub contacts: RwLock<ModuleStore>,
    /// Leads.
    pub leads: RwLock<ModuleStore>,
    /// Own concurrency limit (else the knob).
    pub concurrency_limit: Option<usize>,
    /// Own daily credits (else the knob).
    pub daily_credits: Option<u64>,
    /// Credits spent in the rolling 24-hour window.
    pub credits: Mutex<Credits>,
}

impl Org {
    /// Builds and seeds org number `index`; `now` is the emulator clock in Unix seconds.
    pub fn build(index: usize, spec: &OrgSpec, now: i64) -> Result<Org, String> {
        spec.validate()?;
        let offset = zones::offset(&spec.time_zone).ok_or("unknown time zone")?;
        let prefix = 4_150_868 + index as u64 * 1_013;
        let base = prefix * 1_000_000_000_000;
        let gen = |module, size: usize| Generator {
            seed: spec.seed,
            module,
            size: size as u32,
            contacts: spec.contacts as u32,
        };
        let users = make_users(base, spec.seed);
        let company_name = spec
            .company_name
            .clone()
            .unwrap_or_else(|| format!("Creator Studio {}", index + 1));
        Ok(Org {
            // Distinct by construction (not by hash), since console calls address orgs by this id.
            id: format!("{}", 60_012_345_000u64 + index as u64 * 7_919),
            prefix,
            company_name,
            edition: spec.edition.clone(),
            time_zone: spec.time_zone.clone(),
            offset,
            created_at: now,
            users,
            contacts: RwLock::new(ModuleStore::seed(
                gen(Module::Contacts, spec.contacts),
                base + 100_000_000_000,
                crate::data::span_end(now),
            )),
            leads: RwLock::new(ModuleStore::seed(
                gen(Module::Leads, spec.leads),
                base + 200_000_000_000,
                crate::data::span_end(now),
            )),
            concurrency_limit: spec.concurrency_limit,
            daily_credits: spec.daily_credits,
            credits: Mutex::new(Credits::default()),
        })
    }

    /// The store of `module`.
    pub fn store(&self, module: Module) -> &RwLock<ModuleStore> {
        match module {
            Module::Contacts => &self.contacts,
            Module::Leads => &self.leads,
        }
    }

    /// The admin user (the self client's user, `type=CurrentUser`).
    pub fn admin(&self) -> &User {
        &self.users[0]
    }
}

/// Three users per org: an admin and two sales reps who own records too.
fn make_users(base: u64, seed: u64) -> Vec<User> {
    let people = [("Patricia", "Boyle"), ("Ravi", "Shankar"), ("Mei", "Chen")];
    people
        .iter()
        .enumerate()
        .map(|(i, (first, last))| User {
            id: base + 2_175 + i as u64 * 16,
            zuid: 700_000_000 + mix(seed ^ base ^ i as u64) % 100_000_000,
            first_name: (*first).into(),
            last_name: (*last).into(),
            email: format!(
                "{}.{}+{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                base / 1_000_000_000_000
            ),
        })
        .collect()
}

/// API credits spent per minute over the last 24 hours (Zoho's window rolls: each call's credits
/// return 24 h after the call). One bucket per minute bounds memory at 1,440 entries.
#[derive(Debug, Default)]
pub struct Credits {
    /// `(minute since epoch, credits spent in it)`, oldest first.
    buckets: VecDeque<(i64, u64)>,
}

/// The credit window.
const DAY_MINUTES: i64 = 24 * 60;

impl Credits {
    /// Credits spent in the 24 hours before `now_secs`.
    pub fn used(&mut self, now_secs: i64) -> u64 {
        let minute = now_secs.div_euclid(60);
        while self
            .buckets
            .front()
            .is_some_and(|(m, _)| *m <= minute - DAY_MINUTES)
        {
            self.buckets.pop_front();
        }
        self.buckets.iter().map(|(_, c)| c).sum()
    }

    /// Spends `n` credits at `now_secs`.
    pub fn spend(&mut self, now_secs: i64, n: u64) {
        let minute = now_secs.div_euclid(60);
        match self.buckets.back_mut() {
            Some((m, c)) if *m == minute => *c += n,
            _ => self.buckets.push_back((minute, n)),
        }
    }

    /// Gives back `n` credits spent in the current minute (a call that ended in an error).
    pub fn refund(&mut self, n: u64) {
        if let Some((_, c)) = self.buckets.back_mut() {
            *c = c.saturating_sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_roll_over_after_24_hours() {
        let mut credits = Credits::default();
        credits.spend(0, 3);
        credits.spend(3_600, 2);
        assert_eq!(credits.used(3_600), 5);
        assert_eq!(credits.used(86_400 - 60), 5);
        assert_eq!(credits.used(86_400), 2);
        assert_eq!(credits.used(86_400 + 3_600), 0);
        credits.spend(90_000, 1);
        credits.refund(1);
        assert_eq!(credits.used(90_000), 0);
    }

    #[test]
    fn orgs_get_distinct_ids_and_users() {
        let spec = OrgSpec {
            contacts: 3,
            leads: 2,
            seed: 1,
            edition: "free".into(),
            time_zone: "UTC".into(),
            company_name: None,
            concurrency_limit: None,
            daily_credits: None,
        };
        let a = Org::build(0, &spec, 1_800_000_000).expect("org");
        let b = Org::build(1, &spec, 1_800_000_000).expect("org");
        assert_ne!(a.id, b.id);
        let a_ids: Vec<u64> = a
            .contacts
            .read()
            .expect("lock")
            .records()
            .iter()
            .map(|r| r.id)
            .collect();
        let b_ids: Vec<u64> = b
            .contacts
            .read()
            .expect("lock")
            .records()
            .iter()
            .map(|r| r.id)
            .collect();
        assert!(a_ids.iter().all(|id| !b_ids.contains(id)));
        assert_ne!(a.admin().id, b.admin().id);
        assert!(Org::build(
            2,
            &OrgSpec {
                edition: "gold".into(),
                ..spec
            },
            0
        )
        .is_err());
    }

    #[test]
    fn one_seed_gives_the_same_history_whenever_the_org_is_built() {
        let spec = OrgSpec {
            contacts: 50,
            leads: 20,
            seed: 7,
            edition: "enterprise".into(),
            time_zone: "UTC".into(),
            company_name: None,
            concurrency_limit: None,
            daily_credits: None,
        };
        let history = |now| {
            let org = Org::build(0, &spec, now).expect("org");
            let times = |module| -> Vec<(u64, i64, i64)> {
                org.store(module)
                    .read()
                    .expect("lock")
                    .records()
                    .iter()
                    .map(|r| (r.id, r.created, r.modified))
                    .collect()
            };
            (times(Module::Contacts), times(Module::Leads))
        };
        let today = history(crate::data::SPAN_END + 400 * 86_400);
        assert_eq!(today, history(crate::data::SPAN_END + 401 * 86_400));
        assert!(today.0.iter().chain(&today.1).all(
            |&(_, created, modified)| created <= modified && modified <= crate::data::SPAN_END
        ));
        // A clock before the fixed end still gets no record from its future.
        let early = crate::data::SPAN_END - 30 * 86_400;
        let (contacts, _) = history(early);
        assert!(contacts.iter().all(|&(_, _, modified)| modified <= early));
    }
}
