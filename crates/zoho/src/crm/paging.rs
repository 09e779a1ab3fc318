//! Reading a module page by page, and the position to resume from.
//!
//! Records are read sorted by `Modified_Time` ascending, with `If-Modified-Since` for incremental
//! runs. Zoho reaches the first 2,000 records of a query with `page`, the next ones with
//! `page_token` (bound to the query, valid 24 hours), and no more than 100,000 records in all. So a
//! read is a sequence of *windows*: each window is one query starting at `If-Modified-Since` =
//! the last `Modified_Time` seen, paged with `page` then `page_token`; when a window reaches
//! 100,000 records — or a checkpointed `page_token` has expired or been refused — the next window
//! starts from the last `Modified_Time` seen. The filter is inclusive, so the records already
//! returned with exactly that time are remembered and skipped. Sorting by `Modified_Time` also
//! means a record modified mid-read moves behind the cursor and is read again, never skipped for
//! that reason.
//!
//! Why not windows only, restarting a query every page? A single second can hold more than a page
//! of records (imports, mass updates); a window must be able to page through them, and `page` then
//! `page_token` is how Zoho pages.

use chrono::{DateTime, FixedOffset};
use pledgesync_core::record::RawRecord;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::crm::wire::{ApiRequest, Reply};
use crate::crm::CrmError;

/// Zoho's largest page, and the one pledgesync always asks for.
pub const PER_PAGE: u64 = 200;
/// `page` reaches only the first 2,000 records of a query.
const PAGE_RECORD_LIMIT: u64 = 2_000;
/// `page_token` stops at 100,000 records.
const TOKEN_RECORD_LIMIT: u64 = 100_000;
/// Zoho's limit of fields per call.
pub const MAX_FIELDS: usize = 50;
/// The field windows are cut on; always requested.
const MODIFIED_TIME: &str = "Modified_Time";

/// One page of a read, and where the read goes on.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The records (or deleted-record entries) as Zoho wrote them.
    pub records: Vec<RawRecord>,
    /// Where the page after this one starts; `None` when this page was the last. Store it as the
    /// checkpoint once this page is handled, and pass it back to resume.
    pub next: Option<PagePosition>,
}

impl Page {
    /// The newest `Modified_Time` among this page's records: after a read ends, the newest over
    /// all its pages is the next incremental run's `since` (the filter is inclusive, so records
    /// at exactly that time come again, which newest-wins upserts absorb).
    pub fn newest_modified(&self) -> Option<DateTime<FixedOffset>> {
        self.records
            .iter()
            .filter_map(|r| {
                Peek::of(r.json())
                    .ok()?
                    .modified_time()
                    .and_then(parse_time)
            })
            .max()
    }
}

/// A resumable position within a read. Opaque: store it (it is JSON-serializable) and pass it
/// back to the same kind of read (records of the same module and fields, or deleted records).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePosition {
    /// `If-Modified-Since` of the current window as Zoho wrote it; `None`: the read's own `since`.
    #[serde(default)]
    window_start: Option<String>,
    /// How to ask for the next page within the window.
    #[serde(default)]
    step: Step,
    /// Records Zoho returned in this window so far (tokens stop at 100,000).
    #[serde(default)]
    window_records: u64,
    /// `Modified_Time` of the newest record returned so far, as Zoho wrote it.
    #[serde(default)]
    last_modified: Option<String>,
    /// Ids returned with exactly `last_modified`, skipped when a window restarts there.
    #[serde(default)]
    boundary_ids: Vec<String>,
}

/// The next request within a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Step {
    /// `page=N` (1-based).
    Page {
        /// The page number.
        page: u32,
    },
    /// `page_token=…` from the previous page's `info.next_page_token`.
    Token {
        /// The token (opaque, bound to the query).
        token: String,
    },
}

impl Default for Step {
    fn default() -> Self {
        Step::Page { page: 1 }
    }
}

impl PagePosition {
    /// The newest `Modified_Time` returned so far (a safe incremental cursor once the read ends).
    pub fn last_modified(&self) -> Option<DateTime<FixedOffset>> {
        self.last_modified.as_deref().and_then(parse_time)
    }

    /// The page number this position asks for, if it pages by number (deleted records always do).
    pub(crate) fn page_number(&self) -> Option<u32> {
        match self.step {
            Step::Page { page } => Some(page),
            Step::Token { .. } => None,
        }
    }

    pub(crate) fn at_page(page: u32) -> Self {
        Self {
            step: Step::Page { page },
            ..Self::default()
        }
    }

    /// A new window starting at the last `Modified_Time` seen.
    fn restarted(&self, module: &str, at_cap: bool) -> Result<Self, CrmError> {
        let Some(last) = self.last_modified.clone() else {
            return Err(CrmError::Malformed {
                endpoint: "records",
                what: "Zoho's paging ended without a Modified_Time to continue from",
            });
        };
        if at_cap && self.window_start.as_deref().and_then(parse_time) == parse_time(&last) {
            return Err(CrmError::PagingStalled {
                module: module.to_owned(),
            });
        }
        tracing::info!(module, window_start = %last, "continuing the read in a new Modified_Time window");
        Ok(Self {
            window_start: Some(last),
            step: Step::Page { page: 1 },
            window_records: 0,
            last_modified: self.last_modified.clone(),
            boundary_ids: self.boundary_ids.clone(),
        })
    }
}

fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text.trim()).ok()
}

/// A records read: module, fields and lower bound.
#[derive(Clone, Debug)]
pub(crate) struct RecordQuery {
    module: String,
    fields: String,
    since: Option<String>,
}

impl RecordQuery {
    /// Validates the fields (at most 50 with `Modified_Time`, which is always added).
    pub fn new<S: AsRef<str>>(
        module: &str,
        fields: &[S],
        since: Option<String>,
    ) -> Result<Self, CrmError> {
        let mut names: Vec<&str> = Vec::with_capacity(fields.len() + 1);
        for field in fields.iter().map(AsRef::as_ref).map(str::trim) {
            let valid = !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            if !valid {
                return Err(CrmError::InvalidRequest(format!(
                    "{field:?} is not a Zoho field API name"
                )));
            }
            if field != "id" && !names.contains(&field) {
                names.push(field);
            }
        }
        if !names.contains(&MODIFIED_TIME) {
            names.push(MODIFIED_TIME);
        }
        if names.len() > MAX_FIELDS {
            return Err(CrmError::InvalidRequest(format!(
                "{} fields requested (with Modified_Time); Zoho allows at most {MAX_FIELDS} per call",
                names.len()
            )));
        }
        Ok(Self {
            module: module.to_owned(),
            fields: names.join(","),
            since,
        })
    }

    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn request(&self, position: &PagePosition) -> ApiRequest {
        let mut query = vec![
            ("fields", self.fields.clone()),
            ("per_page", PER_PAGE.to_string()),
            ("sort_by", MODIFIED_TIME.to_owned()),
            ("sort_order", "asc".to_owned()),
        ];
        match &position.step {
            Step::Page { page } => query.push(("page", page.to_string())),
            Step::Token { token } => query.push(("page_token", token.clone())),
        }
        ApiRequest {
            endpoint: "records",
            module: self.module.clone(),
            path: format!("/crm/v8/{}", self.module),
            query,
            if_modified_since: position.window_start.clone().or_else(|| self.since.clone()),
        }
    }

    /// The position to use instead of `position` when it cannot be asked for (window full).
    pub fn prepare(&self, position: PagePosition) -> Result<PagePosition, CrmError> {
        if position.window_records >= TOKEN_RECORD_LIMIT {
            position.restarted(&self.module, true)
        } else {
            Ok(position)
        }
    }

    /// After `error` for `position`: a new window if the error is one a window restart cures.
    pub fn recover(
        &self,
        position: &PagePosition,
        error: &CrmError,
    ) -> Option<Result<PagePosition, CrmError>> {
        let curable = matches!(
            error.zoho_code(),
            Some(
                "PAGINATION_LIMIT_EXCEEDED"
                    | "EXPIRED_VALUE"
                    | "TOKEN_BOUND_DATA_MISMATCH"
                    | "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
            )
        );
        (curable && position.last_modified.is_some())
            .then(|| position.restarted(&self.module, false))
    }

    /// Reads a records answer for `position` into a page.
    pub fn read(&self, reply: Reply, position: PagePosition) -> Result<Page, CrmError> {
        let (data, info) = match split_answer(reply, "records")? {
            None => {
                return Ok(Page {
                    records: Vec::new(),
                    next: None,
                })
            }
            Some(answer) => answer,
        };
        let returned = data.len() as u64;
        let mut next = position;
        let mut last = next.last_modified();
        let mut records = Vec::with_capacity(data.len());
        for record in data {
            let peek = Peek::of(record.json()).map_err(|_| CrmError::Malformed {
                endpoint: "records",
                what: "a record that cannot be read",
            })?;
            let id = peek.id().ok_or(CrmError::Malformed {
                endpoint: "records",
                what: "a record without an id",
            })?;
            let modified_text = peek.modified_time();
            if let Some(modified) = modified_text.and_then(parse_time) {
                if Some(modified) == last {
                    if next.boundary_ids.contains(&id) {
                        continue;
                    }
                    next.boundary_ids.push(id);
                } else if last.is_none_or(|l| modified > l) {
                    last = Some(modified);
                    next.last_modified = modified_text.map(str::to_owned);
                    next.boundary_ids = vec![id];
                }
            }
            records.push(record);
        }
        next.window_records += returned;
        if !info.more {
            return Ok(Page {
                records,
                next: None,
            });
        }
        next.step = match (&next.step, info.next_page_token) {
            (Step::Page { page }, _) if u64::from(page + 1) * PER_PAGE <= PAGE_RECORD_LIMIT => {
                Step::Page { page: page + 1 }
            }
            (_, Some(token)) => Step::Token { token },
            (_, None) => {
                return Ok(Page {
                    records,
                    next: Some(next.restarted(&self.module, false)?),
                })
            }
        };
        Ok(Page {
            records,
            next: Some(next),
        })
    }
}

/// The deleted-records request for `page`.
pub(crate) fn deleted_request(module: &str, since: Option<String>, page: u32) -> ApiRequest {
    ApiRequest {
        endpoint: "deleted",
        module: module.to_owned(),
        path: format!("/crm/v8/{module}/deleted"),
        query: vec![
            ("type", "all".to_owned()),
            ("per_page", PER_PAGE.to_string()),
            ("page", page.to_string()),
        ],
        if_modified_since: since,
    }
}

/// Reads a deleted-records answer for `page` into a page.
pub(crate) fn read_deleted(reply: Reply, page: u32) -> Result<Page, CrmError> {
    match split_answer(reply, "deleted")? {
        None => Ok(Page {
            records: Vec::new(),
            next: None,
        }),
        Some((records, info)) => Ok(Page {
            records,
            next: info.more.then(|| PagePosition::at_page(page + 1)),
        }),
    }
}

/// A list answer's records.
type Records = Vec<RawRecord>;

/// The `info` fields paging uses.
struct Info {
    more: bool,
    next_page_token: Option<String>,
}

/// A list answer: each record is cut out as text, never built into a tree.
#[derive(Deserialize)]
struct ListAnswer<'a> {
    #[serde(borrow)]
    data: Option<Vec<&'a RawValue>>,
    info: Option<Value>,
}

/// `data` and `info` of a list answer, or `None` for an empty answer.
fn split_answer(reply: Reply, endpoint: &'static str) -> Result<Option<(Records, Info)>, CrmError> {
    let answer = match reply {
        Reply::Empty => return Ok(None),
        Reply::Json(answer) => answer,
    };
    let malformed = |what| CrmError::Malformed { endpoint, what };
    // `classify` found the answer to be a JSON object, and `info` takes any value: only a `data`
    // that is neither null nor a list fails here.
    let list: ListAnswer<'_> =
        serde_json::from_slice(answer.text()).map_err(|_| malformed("data is not a list"))?;
    let data = match list.data {
        None => return Ok(None),
        Some(items) => items
            .into_iter()
            .map(|item| {
                RawRecord::new(item.to_owned())
                    .map_err(|_| malformed("a record that is not an object"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let info = list.info.as_ref().and_then(Value::as_object);
    let info = Info {
        more: info
            .and_then(|i| i.get("more_records"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        next_page_token: info
            .and_then(|i| i.get("next_page_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    };
    Ok(Some((data, info)))
}

/// The `id` of a record or deleted-records entry, read without building the rest of it.
pub fn record_id(record: &RawRecord) -> Option<String> {
    Peek::of(record.json()).ok()?.id()
}

/// The two fields of a record that paging reads; the others are skipped, not built.
#[derive(Deserialize)]
struct Peek {
    id: Option<Value>,
    #[serde(rename = "Modified_Time")]
    modified_time: Option<Value>,
}

impl Peek {
    fn of(record: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(record)
    }

    /// Zoho writes ids as strings; a number is taken as its digits.
    pub(crate) fn id(&self) -> Option<String> {
        match self.id.as_ref()? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn modified_time(&self) -> Option<&str> {
        self.modified_time.as_ref().and_then(Value::as_str)
    }
}

#[cfg(test)]
#[path = "paging_tests.rs"]
mod tests;
