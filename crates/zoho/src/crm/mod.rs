//! The CRM reader: records page by page (resumable), deleted records, counts and the org, with
//! retries, the shared per-org limits and an honest classification of every failure.

mod client;
mod error;
mod limits;
mod paging;
mod stream;
pub(crate) mod wire;

pub use self::client::{Crm, CrmClient};
pub use self::error::CrmError;
pub use self::paging::{record_id, Page, PagePosition, MAX_FIELDS, PER_PAGE};
pub use self::stream::PageStream;
pub use self::wire::OrgInfo;
