//! One module's records of one org: the live records in id order, lazily built sort indexes,
//! deleted-record entries, and the edits the console makes.
//!
//! Records live in a `Vec` sorted by id, so offset paging by id is an index computation and an
//! edit between two page calls shifts later pages exactly as Zoho's offset paging does.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::clock::parse_ts_ms;
use crate::data::Generator;
use crate::deleted::Deleted;
use crate::records::{Record, CONVERTED, NO_GEN};
use crate::schema::Module;

/// A sort key of Get Records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// `id` (Zoho's default).
    Id,
    /// `Created_Time`.
    Created,
    /// `Modified_Time`.
    Modified,
}

/// Why an edit was refused; the console answers 400 or 404 with this text.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// No live record with that id.
    NotFound,
    /// A field value that the CRM would reject.
    Invalid(String),
}

/// The records of one module.
#[derive(Debug)]
pub struct ModuleStore {
    /// Generator of computed values.
    pub gen: Generator,
    /// Live records, ascending id.
    records: Vec<Record>,
    /// Positions ordered by (Created_Time, id); rebuilt after edits.
    by_created: OnceLock<Vec<u32>>,
    /// Positions ordered by (Modified_Time, id); rebuilt after edits.
    by_modified: OnceLock<Vec<u32>>,
    /// Live converted leads, so the common "none converted" case skips filtering.
    converted: usize,
    /// Next generation index for `generate`.
    next_gen: u32,
    /// Highest id handed out, so new records always get larger ids.
    last_id: u64,
    /// Custom field names added through the console, in order of first use.
    pub custom_fields: Vec<String>,
    /// Deleted entries, oldest first.
    pub deleted: Vec<Deleted>,
}

impl ModuleStore {
    /// Seeds `gen.size` records created over the two years before `anchor` (Unix seconds).
    pub fn seed(gen: Generator, id_base: u64, anchor: i64) -> ModuleStore {
        let mut records = Vec::with_capacity(gen.size as usize);
        let mut id = id_base;
        for g in 0..gen.size {
            id += gen.id_gap(g);
            let (created, modified) = gen.times(g, anchor);
            records.push(Record {
                id,
                created,
                modified,
                gen: g,
                flags: 0,
                extra: None,
            });
        }
        ModuleStore {
            gen,
            records,
            by_created: OnceLock::new(),
            by_modified: OnceLock::new(),
            converted: 0,
            next_gen: gen.size,
            last_id: id,
            custom_fields: Vec::new(),
            deleted: Vec::new(),
        }
    }

    /// The module.
    pub fn module(&self) -> Module {
        self.gen.module
    }

    /// Live records, ascending id.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Number of live converted leads.
    pub fn converted(&self) -> usize {
        self.converted
    }

    /// Record positions in ascending order of `key` (ties by id); `None` means identity (by id).
    pub fn order(&self, key: SortKey) -> Option<&[u32]> {
        let build = |time: fn(&Record) -> i64| {
            let mut order: Vec<u32> = (0..self.records.len() as u32).collect();
            // Positions are in id order already, so a stable sort by time keeps id as tie-break.
            order.sort_by_key(|&p| time(&self.records[p as usize]));
            order
        };
        match key {
            SortKey::Id => None,
            SortKey::Created => Some(self.by_created.get_or_init(|| build(|r| r.created))),
            SortKey::Modified => Some(self.by_modified.get_or_init(|| build(|r| r.modified))),
        }
    }

    /// Position of the live record with `id`.
    pub fn position(&self, id: u64) -> Option<usize> {
        self.records.binary_search_by_key(&id, |r| r.id).ok()
    }

    /// Drops the sort indexes after an edit (rebuilt by the next listing that needs them).
    fn invalidate(&mut self) {
        self.by_created = OnceLock::new();
        self.by_modified = OnceLock::new();
    }

    /// Allocates the next id.
    fn next_id(&mut self, g: u32) -> u64 {
        self.last_id += self.gen.id_gap(g);
        self.last_id
    }

    /// Adds `n` generated records created at `now` (Unix seconds); returns their ids.
    pub fn generate(&mut self, n: usize, now: i64) -> Vec<u64> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let g = self.next_gen;
            self.next_gen = self.next_gen.saturating_add(1).min(NO_GEN - 1);
            let id = self.next_id(g);
            self.records.push(Record {
                id,
                created: now,
                modified: now,
                gen: g,
                flags: 0,
                extra: None,
            });
            ids.push(id);
        }
        self.invalidate();
        ids
    }

    /// Adds a record with explicit values (Last_Name and, for Leads, Company are mandatory as in
    /// the CRM); returns its id.
    pub fn create(&mut self, values: &Map<String, Value>, now: i64) -> Result<u64, EditError> {
        let mut extra = Map::new();
        let (mut created, mut modified) = (now, now);
        self.apply(values, &mut extra, &mut created, &mut modified)?;
        for required in self.module().fields().iter().filter(|f| f.mandatory) {
            let present = extra
                .get(required.api_name)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()));
            if !present {
                return Err(EditError::Invalid(format!(
                    "{} is mandatory",
                    required.api_name
                )));
            }
        }
        let id = self.next_id(self.next_gen);
        self.records.push(Record {
            id,
            created,
            modified,
            gen: NO_GEN,
            flags: 0,
            extra: Some(Box::new(extra)),
        });
        self.invalidate();
        Ok(id)
    }

    /// Changes fields of a live record. `touch` bumps `Modified_Time` to `now` (as any CRM edit
    /// does); without it the change is invisible to `If-Modified-Since`, like a formula field.
    pub fn update(
        &mut self,
        id: u64,
        values: &Map<String, Value>,
        now: i64,
        touch: bool,
    ) -> Result<(), EditError> {
        let pos = self.position(id).ok_or(EditError::NotFound)?;
        let rec = &self.records[pos];
        let mut extra = rec.extra.as_deref().cloned().unwrap_or_default();
        let (mut created, mut modified) = (rec.created, if touch { now } else { rec.modified });
        self.apply(values, &mut extra, &mut created, &mut modified)?;
        let rec = &mut self.records[pos];
        rec.extra = Some(Box::new(extra));
        rec.created = created;
        rec.modified = modified;
        self.invalidate();
        Ok(())
    }

    /// Validates console values and merges them into `extra`; `Created_Time`/`Modified_Time` may be
    /// set explicitly (tests place records in time windows that way).
    fn apply(
        &mut self,
        values: &Map<String, Value>,
        extra: &mut Map<String, Value>,
        created: &mut i64,
        modified: &mut i64,
    ) -> Result<(), EditError> {
        for (name, value) in values {
            match name.as_str() {
                "id" => return Err(EditError::Invalid("id cannot be set".into())),
                "Created_Time" | "Modified_Time" => {
                    let secs = value
                        .as_str()
                        .and_then(parse_ts_ms)
                        .ok_or_else(|| {
                            EditError::Invalid(format!(
                                "{name} must be an ISO-8601 timestamp with offset"
                            ))
                        })?
                        .div_euclid(1000);
                    if name == "Created_Time" {
                        *created = secs
                    } else {
                        *modified = secs
                    }
                    continue;
                }
                _ => {}
            }
            match self.module().field(name) {
                Some(def) if def.read_only => {
                    return Err(EditError::Invalid(format!("{name} is read-only")));
                }
                Some(_) => {}
                None if is_custom_name(name) => {
                    if !self.custom_fields.iter().any(|c| c == name) {
                        self.custom_fields.push(name.clone());
                    }
                }
                None => {
                    return Err(EditError::Invalid(format!(
                    "{name} is not a field of {}; custom fields need a name like Pledge_Tier__c",
                    self.module().api_name()
                )))
                }
            }
            extra.insert(name.clone(), value.clone());
        }
        Ok(())
    }

    /// Deletes a live record (into the recycle bin, or permanently), or permanently deletes an
    /// entry that is in the recycle bin. `display_name`/`created_by` describe the record.
    pub fn delete(
        &mut self,
        id: u64,
        permanent: bool,
        now: i64,
        display_name: Option<String>,
        created_by: Option<usize>,
    ) -> Result<(), EditError> {
        if let Some(pos) = self.position(id) {
            let rec = self.records.remove(pos);
            if rec.flags & CONVERTED != 0 {
                self.converted -= 1;
            }
            self.invalidate();
        } else {
            let in_bin = self.deleted.iter().position(|d| d.id == id && !d.permanent);
            match (in_bin, permanent) {
                (Some(i), true) => {
                    self.deleted.remove(i);
                }
                _ => return Err(EditError::NotFound),
            }
        }
        let (display_name, created_by) = if permanent {
            (None, None)
        } else {
            (display_name, created_by)
        };
        self.deleted.push(Deleted {
            id,
            permanent,
            at: now,
            display_name,
            created_by,
        });
        self.prune_deleted(now);
        Ok(())
    }

    /// Deletes many live records into the recycle bin at once (the mutate console call), in one
    /// pass instead of one `Vec::remove` each. `describe` gives display name and creator.
    pub fn delete_many(
        &mut self,
        ids: &[u64],
        now: i64,
        describe: impl Fn(&Record) -> (Option<String>, Option<usize>),
    ) {
        let mut doomed: Vec<u64> = ids.to_vec();
        doomed.sort_unstable();
        let mut entries = Vec::new();
        let mut converted_gone = 0;
        self.records.retain(|r| {
            let dies = doomed.binary_search(&r.id).is_ok();
            if dies && r.flags & CONVERTED != 0 {
                converted_gone += 1;
            }
            if dies {
                let (display_name, created_by) = describe(r);
                entries.push(Deleted {
                    id: r.id,
                    permanent: false,
                    at: now,
                    display_name,
                    created_by,
                });
            }
            !dies
        });
        self.deleted.extend(entries);
        self.converted -= converted_gone;
        self.invalidate();
        self.prune_deleted(now);
    }

    /// Marks a lead converted at `now`; it stays in Leads but leaves the default listing.
    pub fn mark_converted(
        &mut self,
        id: u64,
        now: i64,
        converted_time: String,
    ) -> Result<(), EditError> {
        let pos = self.position(id).ok_or(EditError::NotFound)?;
        let rec = &mut self.records[pos];
        if rec.flags & CONVERTED != 0 {
            return Err(EditError::Invalid("lead is already converted".into()));
        }
        rec.flags |= CONVERTED;
        rec.modified = now;
        self.converted += 1;
        rec.extra
            .get_or_insert_with(Default::default)
            .insert("Converted_Date_Time".into(), Value::String(converted_time));
        self.invalidate();
        Ok(())
    }

    /// Forgets entries past their listing period so the list cannot grow without bound.
    fn prune_deleted(&mut self, now: i64) {
        self.deleted.retain(|d| d.listed(now));
    }
}

/// Custom field API names: a letter, then letters, digits and underscores (`Pledge_Tier__c`).
fn is_custom_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(n: u32) -> ModuleStore {
        let gen = Generator {
            seed: 9,
            module: Module::Leads,
            size: n,
            contacts: 0,
        };
        ModuleStore::seed(gen, 4_150_868_200_000_000_000, 1_800_000_000)
    }

    #[test]
    fn seeding_is_deterministic_with_increasing_ids() {
        let (a, b) = (store(1_000), store(1_000));
        let ids: Vec<u64> = a.records().iter().map(|r| r.id).collect();
        assert_eq!(ids, b.records().iter().map(|r| r.id).collect::<Vec<_>>());
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| id.to_string().len() == 19));
        let order = a.order(SortKey::Modified).expect("index");
        assert!(order.windows(2).all(|w| {
            let (x, y) = (&a.records()[w[0] as usize], &a.records()[w[1] as usize]);
            (x.modified, x.id) < (y.modified, y.id)
        }));
    }

    #[test]
    fn edits_validate_and_shift_positions() {
        let mut s = store(10);
        let first = s.records()[0].id;
        assert_eq!(
            s.update(
                first,
                json!({"Email": "x@example.com"}).as_object().expect("map"),
                5,
                true
            ),
            Ok(())
        );
        assert_eq!(s.records()[0].modified, 5);
        assert!(matches!(
            s.update(
                first,
                json!({"Full_Name": "x"}).as_object().expect("map"),
                5,
                true
            ),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            s.create(json!({"Last_Name": "Solo"}).as_object().expect("map"), 6),
            Err(EditError::Invalid(_))
        ));
        let id = s
            .create(
                json!({"Last_Name": "Solo", "Company": "Acme", "Tier__c": "gold"})
                    .as_object()
                    .expect("map"),
                6,
            )
            .expect("created");
        assert!(id > s.records()[9].id);
        assert_eq!(s.custom_fields, vec!["Tier__c".to_string()]);
        s.delete(first, false, 7, Some("A".into()), Some(0))
            .expect("deleted");
        assert_eq!(s.records().len(), 10);
        assert_eq!(s.position(first), None);
        s.delete(first, true, 8, None, None)
            .expect("purged from bin");
        assert_eq!(s.deleted.len(), 1);
        assert!(s.deleted[0].permanent && s.deleted[0].display_name.is_none());
        assert_eq!(
            s.delete(first, false, 9, None, None),
            Err(EditError::NotFound)
        );
    }
}
