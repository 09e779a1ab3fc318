//! Deterministic synthetic CRM data.
//!
//! A record's generated values are a pure function of (seed, module, generation index): nothing but
//! its id and timestamps is stored, so a million-record org costs ~40 bytes a record and builds in
//! well under a second, and pages are computed on the fly. The mix mirrors what a creator's CRM
//! holds: unicode names, missing/duplicate/malformed emails, opt-outs, sparse optional fields.

use crate::schema::{Module, LEAD_SOURCES, LEAD_STATUSES};
use crate::words::{
    Name, CALLING_CODES, COMPANIES, COUNTRIES, DESCRIPTIONS, DOMAINS, FIRST_NAMES, LAST_NAMES,
    MALFORMED, TAGS,
};

/// Two years, the span over which generated records were created.
pub const SPAN_SECS: i64 = 2 * 365 * 24 * 3600;

/// The end of that span, 2026-01-01T00:00:00Z: fixed, so that one seed gives the same records,
/// times included, on every run (a Zoho org's history does not move with the clock). A clock
/// earlier than this ends the span at the clock instead, so no record is from the future.
pub const SPAN_END: i64 = 1_767_225_600;

/// Where a freshly built org's seeded history ends, given the emulator's "now".
pub fn span_end(now: i64) -> i64 {
    SPAN_END.min(now)
}

/// Everything the generator needs to reproduce one module's values.
#[derive(Clone, Copy, Debug)]
pub struct Generator {
    /// The org's seed.
    pub seed: u64,
    /// Which module the values are for.
    pub module: Module,
    /// How many records the org was seeded with in this module (timestamps spread over them).
    pub size: u32,
    /// How many contacts the org was seeded with, so that some leads share a contact's email.
    pub contacts: u32,
}

/// SplitMix64's finalizer: a fast, well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks an element of a non-empty table by hash.
fn pick<T: Copy>(table: &[T], h: u64) -> T {
    table[(h % table.len() as u64) as usize]
}

/// Field salts, so each field draws from its own hash stream.
mod salt {
    pub const FIRST: u64 = 1;
    pub const LAST: u64 = 2;
    pub const EMAIL_KIND: u64 = 3;
    pub const EMAIL_PICK: u64 = 4;
    pub const EMAIL_STYLE: u64 = 5;
    pub const PHONE: u64 = 6;
    pub const MOBILE: u64 = 7;
    pub const COUNTRY: u64 = 8;
    pub const COMPANY: u64 = 9;
    pub const SOURCE: u64 = 10;
    pub const STATUS: u64 = 11;
    pub const OPT_OUT: u64 = 12;
    pub const DESCRIPTION: u64 = 13;
    pub const ACCOUNT: u64 = 14;
    pub const TAG: u64 = 15;
    pub const OWNER: u64 = 16;
    pub const CREATED: u64 = 17;
    pub const MODIFIED: u64 = 18;
    pub const ACTIVITY: u64 = 19;
    pub const SECONDARY: u64 = 20;
    pub const ID_GAP: u64 = 21;
}

impl Generator {
    /// The hash stream for one field of one record.
    fn h(&self, gen: u32, salt: u64) -> u64 {
        self.h_in(self.module, gen, salt)
    }

    /// The hash stream of a record of another module of the same org.
    fn h_in(&self, module: Module, gen: u32, salt: u64) -> u64 {
        mix(self.seed ^ mix(module.tag() << 56 ^ u64::from(gen) << 8 ^ salt))
    }

    /// A percentage roll 0..100 for one field.
    fn roll(&self, gen: u32, salt: u64) -> u64 {
        self.h(gen, salt) % 100
    }

    /// The gap between two consecutive ids (Zoho's ids increase with small irregular gaps).
    pub fn id_gap(&self, gen: u32) -> u64 {
        1 + self.h(gen, salt::ID_GAP) % 4
    }

    /// `(Created_Time, Modified_Time)` of a seeded record, Unix seconds, all at or before `anchor`.
    pub fn times(&self, gen: u32, anchor: i64) -> (i64, i64) {
        let n = i64::from(self.size.max(1));
        let step = (SPAN_SECS / n).max(1);
        let jitter = (self.h(gen, salt::CREATED) % step as u64) as i64;
        let created = (anchor - SPAN_SECS + i64::from(gen) * SPAN_SECS / n + jitter).min(anchor);
        let modified = if self.roll(gen, salt::MODIFIED) < 45 {
            created
        } else {
            let room = (anchor - created).max(0) as u64 + 1;
            created + (mix(self.h(gen, salt::MODIFIED)) % room) as i64
        };
        (created, modified)
    }

    /// `First_Name`; a few records have none (Zoho only requires the last name).
    pub fn first_name(&self, gen: u32) -> Option<&'static str> {
        self.first(self.module, gen).map(|n| n.0)
    }

    /// The first name entry of any module's record.
    fn first(&self, module: Module, gen: u32) -> Option<Name> {
        let h = self.h_in(module, gen, salt::FIRST);
        (h % 100 >= 3).then(|| pick(FIRST_NAMES, h >> 8))
    }

    /// The last name entry of any module's record.
    fn last(&self, module: Module, gen: u32) -> Name {
        pick(LAST_NAMES, self.h_in(module, gen, salt::LAST))
    }

    /// `Last_Name` (mandatory in Zoho, so never empty).
    pub fn last_name(&self, gen: u32) -> &'static str {
        self.last(self.module, gen).0
    }

    /// The well-formed, unique address a record of `module` would have.
    fn canonical_email(&self, module: Module, gen: u32) -> String {
        let last = self.last(module, gen).1;
        let h = self.h_in(module, gen, salt::EMAIL_STYLE);
        let domain = pick(DOMAINS, h >> 8);
        let prefix = if module == Module::Leads { "l" } else { "" };
        let first = self.first(module, gen).map(|n| n.1);
        // Built piece by piece rather than with `format!`: a page computes one or two addresses
        // per record, and `format!` here and in the phone numbers was an eighth of the CPU of
        // serving pages.
        let mut out =
            String::with_capacity(first.map_or(0, str::len) + last.len() + domain.len() + 13);
        match (first, h % 3) {
            (Some(first), 0) => {
                // `{first}.{last}{prefix}{gen}@{domain}`
                out.push_str(first);
                out.push('.');
                out.push_str(last);
            }
            // `{initial}{last}{prefix}{gen}@{domain}` (slugs are ASCII)
            (Some(first), 1) => {
                out.push_str(&first[..1]);
                out.push_str(last);
            }
            // `{last}.{prefix}{gen}@{domain}`
            _ => {
                out.push_str(last);
                out.push('.');
            }
        }
        out.push_str(prefix);
        push_decimal(&mut out, gen.into());
        out.push('@');
        out.push_str(domain);
        out
    }

    /// `Email`: mostly unique, with shares of missing (5 %), malformed (3 %), exact duplicates of
    /// an earlier record (6 %), duplicates differing in case or whitespace (3 %), the record's own
    /// address in upper case or padded (4 %) and, for Leads, a contact's address (3 %).
    pub fn email(&self, gen: u32) -> Option<String> {
        let h = self.h(gen, salt::EMAIL_KIND);
        let pick_h = self.h(gen, salt::EMAIL_PICK);
        let earlier = (gen > 0).then(|| (pick_h % u64::from(gen)) as u32);
        match (h % 100, earlier) {
            (0..5, _) => None,
            (5..8, _) => Some(pick(MALFORMED, h >> 8).to_string()),
            (8..14, Some(j)) => Some(self.canonical_email(self.module, j)),
            (14..17, Some(j)) => Some(vary(&self.canonical_email(self.module, j), h >> 8)),
            (17..21, _) => Some(vary(&self.canonical_email(self.module, gen), h >> 8)),
            (21..24, _) if self.module == Module::Leads && self.contacts > 0 => {
                let j = (pick_h % u64::from(self.contacts)) as u32;
                Some(self.canonical_email(Module::Contacts, j))
            }
            _ => Some(self.canonical_email(self.module, gen)),
        }
    }

    /// `Secondary_Email`: rare.
    pub fn secondary_email(&self, gen: u32) -> Option<String> {
        let h = self.h(gen, salt::SECONDARY);
        (h % 100 < 8).then(|| {
            // `{first}{gen}@{domain}`, without `format!` (see `canonical_email`).
            let first = self.first(self.module, gen).map_or("contact", |n| n.1);
            let domain = pick(DOMAINS, h >> 8);
            let mut out = String::with_capacity(first.len() + domain.len() + 11);
            out.push_str(first);
            push_decimal(&mut out, gen.into());
            out.push('@');
            out.push_str(domain);
            out
        })
    }

    /// A phone number in one of a few national formats.
    fn phone_with(&self, gen: u32, salt: u64, share: u64) -> Option<String> {
        let h = self.h(gen, salt);
        (h % 100 < share).then(|| {
            // `{code} {:03} {:03} {:04}` of a ten-digit number, without `format!` (see
            // `canonical_email`).
            let digits = mix(h) % 10_000_000_000;
            let code = pick(CALLING_CODES, h >> 8);
            let mut out = String::with_capacity(code.len() + 13);
            out.push_str(code);
            for (group, width) in [(digits / 10_000_000, 3), (digits / 10_000 % 1000, 3)] {
                out.push(' ');
                push_padded(&mut out, group, width);
            }
            out.push(' ');
            push_padded(&mut out, digits % 10_000, 4);
            out
        })
    }

    /// `Phone` (88 % present).
    pub fn phone(&self, gen: u32) -> Option<String> {
        self.phone_with(gen, salt::PHONE, 88)
    }

    /// `Mobile` (40 % present).
    pub fn mobile(&self, gen: u32) -> Option<String> {
        self.phone_with(gen, salt::MOBILE, 40)
    }

    /// `Mailing_Country` / `Country` (90 % present).
    pub fn country(&self, gen: u32) -> Option<&'static str> {
        let h = self.h(gen, salt::COUNTRY);
        (h % 100 < 90).then(|| pick(COUNTRIES, h >> 8))
    }

    /// `Company` (Leads: always present, as Zoho requires it).
    pub fn company(&self, gen: u32) -> &'static str {
        pick(COMPANIES, self.h(gen, salt::COMPANY))
    }

    /// `Account_Name` lookup `(name, id)` for half the contacts.
    pub fn account(&self, gen: u32) -> Option<(&'static str, u64)> {
        let h = self.h(gen, salt::ACCOUNT);
        let index = h % COMPANIES.len() as u64;
        (h % 100 < 50).then(|| (COMPANIES[index as usize], 4_150_868_000_000_900_000 + index))
    }

    /// `Lead_Source` (85 % present).
    pub fn lead_source(&self, gen: u32) -> Option<&'static str> {
        let h = self.h(gen, salt::SOURCE);
        (h % 100 < 85).then(|| pick(LEAD_SOURCES, h >> 8))
    }

    /// `Lead_Status`.
    pub fn lead_status(&self, gen: u32) -> &'static str {
        pick(LEAD_STATUSES, self.h(gen, salt::STATUS))
    }

    /// `Email_Opt_Out` (7 % opted out).
    pub fn opt_out(&self, gen: u32) -> bool {
        self.roll(gen, salt::OPT_OUT) < 7
    }

    /// `Description` (35 % present).
    pub fn description(&self, gen: u32) -> Option<&'static str> {
        let h = self.h(gen, salt::DESCRIPTION);
        (h % 100 < 35).then(|| pick(DESCRIPTIONS, h >> 8))
    }

    /// `Tag` names (10 % tagged).
    pub fn tag(&self, gen: u32) -> Option<&'static str> {
        let h = self.h(gen, salt::TAG);
        (h % 100 < 10).then(|| pick(TAGS, h >> 8))
    }

    /// Which of the org's users owns the record.
    pub fn owner(&self, gen: u32, users: usize) -> usize {
        (self.h(gen, salt::OWNER) % users.max(1) as u64) as usize
    }

    /// Whether `Last_Activity_Time` is set (equal to `Modified_Time`).
    pub fn has_activity(&self, gen: u32) -> bool {
        self.roll(gen, salt::ACTIVITY) < 70
    }
}

/// The id of a tag, stable per name.
pub fn tag_id(name: &str) -> u64 {
    4_150_868_000_000_800_000 + TAGS.iter().position(|t| *t == name).unwrap_or(0) as u64
}

/// Writes `n` in decimal at the end of `buf` and returns the digits: what `n.to_string()` gives,
/// without `fmt` or an allocation (record, user and lookup ids are rendered several times per
/// record on every page).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written, so this cannot fail.
    std::str::from_utf8(&buf[start..]).unwrap_or_default()
}

/// Appends `n` in decimal, as `write!(out, "{n}")` would.
fn push_decimal(out: &mut String, n: u64) {
    out.push_str(decimal(n, &mut [0; 20]));
}

/// Appends the last `width` decimal digits of `n`, zero-padded: what `{n:0width$}` gives for
/// `n < 10^width`.
fn push_padded(out: &mut String, n: u64, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u64.pow(place) % 10) as u8));
    }
}

/// The same address as a sloppy human or import would write it.
fn vary(email: &str, h: u64) -> String {
    match h % 3 {
        0 => email.to_uppercase(),
        1 => email
            .split('.')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
            })
            .collect::<Vec<_>>()
            .join("."),
        _ => format!("  {email} "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(seed: u64, module: Module) -> Generator {
        Generator {
            seed,
            module,
            size: 10_000,
            contacts: 10_000,
        }
    }

    #[test]
    fn values_are_a_function_of_seed_module_and_index() {
        let a = gen(42, Module::Contacts);
        let b = gen(42, Module::Contacts);
        for i in 0..2_000 {
            assert_eq!(a.email(i), b.email(i));
            assert_eq!(a.first_name(i), b.first_name(i));
            assert_eq!(a.phone(i), b.phone(i));
            assert_eq!(a.times(i, 1_700_000_000), b.times(i, 1_700_000_000));
        }
        let other = gen(43, Module::Contacts);
        let differ = (0..200).filter(|&i| a.email(i) != other.email(i)).count();
        assert!(differ > 150, "another seed must give other data ({differ})");
        let leads = gen(42, Module::Leads);
        assert!((0..200).filter(|&i| a.email(i) != leads.email(i)).count() > 150);
    }

    #[test]
    fn built_strings_read_as_their_format_spelling() {
        for module in [Module::Contacts, Module::Leads] {
            let g = gen(5, module);
            for i in (0..20_000).chain([u32::MAX - 1, u32::MAX]) {
                let last = g.last(module, i).1;
                let h = g.h_in(module, i, salt::EMAIL_STYLE);
                let domain = pick(DOMAINS, h >> 8);
                let prefix = if module == Module::Leads { "l" } else { "" };
                let canonical = match (g.first(module, i), h % 3) {
                    (Some(first), 0) => format!("{}.{last}{prefix}{i}@{domain}", first.1),
                    (Some(first), 1) => format!("{}{last}{prefix}{i}@{domain}", &first.1[..1]),
                    _ => format!("{last}.{prefix}{i}@{domain}"),
                };
                assert_eq!(g.canonical_email(module, i), canonical);

                let h = g.h(i, salt::SECONDARY);
                let first = g.first(module, i).map_or("contact", |n| n.1);
                let secondary = format!("{first}{i}@{}", pick(DOMAINS, h >> 8));
                let present = h % 100 < 8;
                assert_eq!(g.secondary_email(i), present.then_some(secondary));

                let h = g.h(i, salt::PHONE);
                let digits = mix(h) % 10_000_000_000;
                let phone = format!(
                    "{} {:03} {:03} {:04}",
                    pick(CALLING_CODES, h >> 8),
                    digits / 10_000_000,
                    digits / 10_000 % 1000,
                    digits % 10_000
                );
                assert_eq!(g.phone_with(i, salt::PHONE, 100), Some(phone));
            }
        }
    }

    #[test]
    fn decimal_reads_as_to_string() {
        let mut samples = vec![0, 1, 9, 10, 99, 100, u64::MAX - 1, u64::MAX];
        samples.extend((0..64).map(|bit| 1u64 << bit));
        samples.extend((0..20).map(|p| 10u64.pow(p)));
        samples.extend((1..20).map(|p| 10u64.pow(p) - 1));
        samples.extend((0..10_000).map(|i| mix(i) >> (i % 64)));
        for n in samples {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
        }
    }

    #[test]
    fn emails_have_the_promised_mix() {
        let g = gen(7, Module::Contacts);
        let emails: Vec<Option<String>> = (0..10_000).map(|i| g.email(i)).collect();
        let missing = emails.iter().filter(|e| e.is_none()).count();
        let malformed = emails
            .iter()
            .flatten()
            .filter(|e| {
                let t = e.trim();
                t.matches('@').count() != 1
                    || t.starts_with('@')
                    || t.ends_with('@')
                    || t.contains(' ')
            })
            .count();
        let mut normalized: Vec<String> = emails
            .iter()
            .flatten()
            .map(|e| e.trim().to_lowercase())
            .collect();
        let total = normalized.len();
        normalized.sort();
        normalized.dedup();
        let duplicates = total - normalized.len();
        let shouting = emails
            .iter()
            .flatten()
            .filter(|e| e.chars().any(|c| c.is_uppercase()))
            .count();
        assert!((350..700).contains(&missing), "missing {missing}");
        assert!((150..500).contains(&malformed), "malformed {malformed}");
        assert!(duplicates > 700, "duplicates {duplicates}");
        assert!(shouting > 200, "case variants {shouting}");
    }

    #[test]
    fn names_include_non_ascii_and_times_stay_in_two_years() {
        let g = gen(1, Module::Leads);
        let non_ascii = (0..1_000)
            .filter(|&i| !g.last_name(i).is_ascii() || !g.first_name(i).unwrap_or("").is_ascii())
            .count();
        assert!(non_ascii > 100, "non-ASCII names {non_ascii}");
        let anchor = 1_800_000_000;
        let mut previous = i64::MIN;
        for i in 0..10_000 {
            let (created, modified) = g.times(i, anchor);
            assert!(created >= anchor - SPAN_SECS && created <= anchor);
            assert!(modified >= created && modified <= anchor);
            assert!(created >= previous, "created times follow ids");
            previous = created;
        }
        let opted = (0..10_000).filter(|&i| g.opt_out(i)).count();
        assert!((400..1_100).contains(&opted), "opt-outs {opted}");
    }
}
