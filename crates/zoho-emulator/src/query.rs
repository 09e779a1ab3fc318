//! Selecting one page of records: filter (If-Modified-Since, converted leads), sort, offset.
//!
//! The common cases are index arithmetic: no filter, or If-Modified-Since with sort by
//! Modified_Time (a binary search in the Modified_Time index). Other combinations scan, which is
//! still a few milliseconds for a million records.

use crate::records::{Record, CONVERTED};
use crate::store::{ModuleStore, SortKey};

/// Which leads a listing includes (`converted` parameter; Contacts ignore it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converted {
    /// Only leads not converted (Zoho's default, `converted=false`).
    Exclude,
    /// Only converted leads (`converted=true`).
    Only,
    /// Both (`converted=both`).
    Both,
}

/// What a listing filters on.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    /// `If-Modified-Since` in epoch ms: records modified at or after it (inclusive, as observed).
    pub since_ms: Option<i64>,
    /// Converted-lead handling.
    pub converted: Converted,
}

impl Filter {
    /// Whether `rec` passes the converted filter.
    fn converted_ok(&self, rec: &Record) -> bool {
        let converted = rec.flags & CONVERTED != 0;
        match self.converted {
            Converted::Exclude => !converted,
            Converted::Only => converted,
            Converted::Both => true,
        }
    }

    /// Whether `rec` passes the whole filter.
    pub fn matches(&self, rec: &Record) -> bool {
        self.converted_ok(rec)
            && self
                .since_ms
                .is_none_or(|since| rec.modified.saturating_mul(1000) >= since)
    }
}

/// One selected page: record positions in answer order, and whether more match after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    /// Positions into `ModuleStore::records()`.
    pub positions: Vec<u32>,
    /// Whether records beyond this page match (Zoho's `more_records`).
    pub more: bool,
}

/// Selects the records at `offset..offset+limit` of the filtered, sorted listing.
pub fn select(
    store: &ModuleStore,
    filter: &Filter,
    key: SortKey,
    desc: bool,
    offset: usize,
    limit: usize,
) -> Page {
    let records = store.records();
    let order = store.order(key);
    let at = |i: usize| -> u32 { order.map_or(i as u32, |o| o[i]) };
    let converted_trivial = match filter.converted {
        Converted::Both => true,
        Converted::Exclude => store.converted() == 0,
        Converted::Only => false,
    };
    // The part of the order that can match: with a Modified_Time order, If-Modified-Since cuts
    // it at a binary-searched point; otherwise every index is a candidate.
    let lo = match (filter.since_ms, order) {
        (Some(since), Some(o)) if key == SortKey::Modified => {
            o.partition_point(|&p| records[p as usize].modified.saturating_mul(1000) < since)
        }
        _ => 0,
    };
    let since_done = filter.since_ms.is_none() || key == SortKey::Modified;
    let n = records.len();
    let index = |k: usize| if desc { n - 1 - k } else { lo + k };
    if converted_trivial && since_done {
        let available = n - lo;
        let end = available.min(offset.saturating_add(limit));
        let positions = (offset.min(end)..end).map(|k| at(index(k))).collect();
        return Page {
            positions,
            more: available > end,
        };
    }
    let candidates = (0..n - lo).map(index).map(at);
    let mut matching = candidates
        .filter(|&p| filter.matches(&records[p as usize]))
        .skip(offset);
    let positions: Vec<u32> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    Page { positions, more }
}

/// Counts the records that pass `filter`.
pub fn count(store: &ModuleStore, filter: &Filter) -> usize {
    store.records().iter().filter(|r| filter.matches(r)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Generator;
    use crate::schema::Module;

    fn store() -> ModuleStore {
        let gen = Generator {
            seed: 3,
            module: Module::Leads,
            size: 1_000,
            contacts: 0,
        };
        ModuleStore::seed(gen, 4_150_868_200_000_000_000, 1_800_000_000)
    }

    /// The reference implementation: filter, sort fully, slice.
    fn naive(
        s: &ModuleStore,
        f: &Filter,
        key: SortKey,
        desc: bool,
        offset: usize,
        limit: usize,
    ) -> Page {
        let mut all: Vec<u32> = (0..s.records().len() as u32)
            .filter(|&p| f.matches(&s.records()[p as usize]))
            .collect();
        let sort_key = |p: &u32| {
            let r = &s.records()[*p as usize];
            match key {
                SortKey::Id => (r.id as i64, r.id),
                SortKey::Created => (r.created, r.id),
                SortKey::Modified => (r.modified, r.id),
            }
        };
        all.sort_by_key(sort_key);
        if desc {
            all.reverse();
        }
        let positions: Vec<u32> = all.iter().copied().skip(offset).take(limit).collect();
        Page {
            more: all.len() > offset + positions.len(),
            positions,
        }
    }

    #[test]
    fn fast_paths_agree_with_a_full_sort() {
        let mut s = store();
        let leads: Vec<u64> = s.records().iter().step_by(7).map(|r| r.id).collect();
        for id in &leads[..20] {
            s.mark_converted(*id, 1_800_000_100, "t".into())
                .expect("converted");
        }
        let since = Some(s.records()[500].modified * 1000);
        for key in [SortKey::Id, SortKey::Created, SortKey::Modified] {
            for desc in [false, true] {
                for since_ms in [None, since] {
                    for converted in [Converted::Exclude, Converted::Only, Converted::Both] {
                        let f = Filter {
                            since_ms,
                            converted,
                        };
                        for (offset, limit) in [(0, 200), (190, 15), (980, 200), (5_000, 10)] {
                            assert_eq!(
                                select(&s, &f, key, desc, offset, limit),
                                naive(&s, &f, key, desc, offset, limit),
                                "{key:?} desc={desc} since={since_ms:?} {converted:?} {offset}+{limit}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(
            count(
                &s,
                &Filter {
                    since_ms: None,
                    converted: Converted::Only
                }
            ),
            20
        );
    }
}
