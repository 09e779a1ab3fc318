//! Pages as a stream that fetches the next page while the caller handles the current one.
//!
//! A producer task owns the read; a one-slot channel sits between it and the caller. The producer
//! reserves the slot before it fetches, so it is at most one page ahead: while the caller handles
//! page N, page N+1 is on its way, and nothing more is held in memory. The stream ends after the
//! last page or after the first error (resume from the last page's `next`). Dropping the stream
//! stops the producer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use pledgesync_core::Module;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::crm::client::Crm;
use crate::crm::paging::{self, Page, PagePosition, RecordQuery};
use crate::crm::CrmError;

/// A read in progress. Yields pages in order; at most one page is fetched ahead.
pub struct PageStream {
    pages: mpsc::Receiver<Result<Page, CrmError>>,
    producer: JoinHandle<()>,
}

impl std::fmt::Debug for PageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageStream").finish_non_exhaustive()
    }
}

impl Stream for PageStream {
    type Item = Result<Page, CrmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.pages.poll_recv(cx)
    }
}

impl Drop for PageStream {
    fn drop(&mut self) {
        self.producer.abort();
    }
}

impl PageStream {
    /// Starts a producer that calls `fetch` from `first` until a page has no `next`.
    fn spawn<F, Fut>(first: PagePosition, fetch: F) -> Self
    where
        F: Fn(PagePosition) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Page, CrmError>> + Send + 'static,
    {
        let (sender, pages) = mpsc::channel(1);
        // The producer's Zoho calls belong to the caller's span (the fetch job), not to a trace
        // of their own.
        let producer = tokio::spawn(
            async move {
                let mut position = first;
                loop {
                    let Ok(slot) = sender.reserve().await else {
                        return;
                    };
                    match fetch(position).await {
                        Ok(page) => {
                            let next = page.next.clone();
                            slot.send(Ok(page));
                            match next {
                                Some(next) => position = next,
                                None => return,
                            }
                        }
                        Err(error) => {
                            slot.send(Err(error));
                            return;
                        }
                    }
                }
            }
            .in_current_span(),
        );
        Self { pages, producer }
    }
}

/// Formats `If-Modified-Since` as Zoho documents it: ISO-8601, seconds, with an offset.
fn zoho_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

impl Crm {
    /// Reads `module`'s records with `fields` (at most 49 besides `Modified_Time`, which is always
    /// added), modified at or after `since` if given, from `from` (a previous page's `next`) or
    /// from the start. Records come oldest `Modified_Time` first.
    pub fn pages<S: AsRef<str>>(
        &self,
        module: Module,
        fields: &[S],
        since: Option<DateTime<Utc>>,
        from: Option<PagePosition>,
    ) -> PageStream {
        let query = RecordQuery::new(module.api_name(), fields, since.map(zoho_time));
        let crm = self.clone();
        PageStream::spawn(from.unwrap_or_default(), move |position| {
            let crm = crm.clone();
            let query = query.clone();
            async move { crm.records_page(&query?, position).await }
        })
    }

    /// Reads the entries of `module`'s deleted records (recycle bin and permanent), deleted at or
    /// after `since` if given, newest deletion first, from `from` or the start.
    pub fn deleted(
        &self,
        module: Module,
        since: Option<DateTime<Utc>>,
        from: Option<PagePosition>,
    ) -> PageStream {
        let since = since.map(zoho_time);
        let crm = self.clone();
        PageStream::spawn(from.unwrap_or_default(), move |position| {
            let crm = crm.clone();
            let since = since.clone();
            async move { crm.deleted_page(module, since, position).await }
        })
    }

    /// One page of records at `position`, moving to a new window when Zoho's paging demands it.
    async fn records_page(
        &self,
        query: &RecordQuery,
        position: PagePosition,
    ) -> Result<Page, CrmError> {
        let mut position = query.prepare(position)?;
        let mut recovered = false;
        loop {
            match self.call(&query.request(&position)).await {
                Ok(reply) => {
                    let page = query.read(reply, position)?;
                    tracing::debug!(
                        module = query.module(),
                        records = page.records.len(),
                        more = page.next.is_some(),
                        "records page"
                    );
                    return Ok(page);
                }
                Err(error) => match query.recover(&position, &error) {
                    Some(cured) if !recovered => {
                        tracing::info!(module = query.module(), error = %error, "page_token refused; continuing from the last Modified_Time");
                        position = cured?;
                        recovered = true;
                    }
                    _ => return Err(error),
                },
            }
        }
    }

    async fn deleted_page(
        &self,
        module: Module,
        since: Option<String>,
        position: PagePosition,
    ) -> Result<Page, CrmError> {
        let page = position.page_number().ok_or_else(|| {
            CrmError::InvalidRequest(
                "a records position was passed to a deleted-records read".to_owned(),
            )
        })?;
        let reply = self
            .call(&paging::deleted_request(module.api_name(), since, page))
            .await?;
        paging::read_deleted(reply, page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn the_producer_is_at_most_one_page_ahead() {
        let fetched = Arc::new(AtomicU32::new(0));
        let counter = fetched.clone();
        let mut stream = PageStream::spawn(PagePosition::at_page(1), move |position| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let page = position.page_number().unwrap_or(0);
                Ok(Page {
                    records: Vec::new(),
                    next: (page < 5).then(|| PagePosition::at_page(page + 1)),
                })
            }
        });
        let first = stream.next().await.expect("page").expect("ok");
        assert!(first.next.is_some());
        // Give the producer every chance to run ahead.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(
            fetched.load(Ordering::SeqCst) <= 2,
            "fetched {}",
            fetched.load(Ordering::SeqCst)
        );
        let rest: Vec<_> = stream.collect().await;
        assert_eq!(rest.len(), 4);
        assert_eq!(fetched.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let mut stream = PageStream::spawn(PagePosition::at_page(1), |_| async {
            Err(CrmError::Server {
                endpoint: "records",
                status: 503,
            })
        });
        assert!(stream.next().await.expect("item").is_err());
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn since_is_formatted_with_an_offset() {
        let time = DateTime::parse_from_rfc3339("2025-03-07T04:45:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(zoho_time(time), "2025-03-07T04:45:00+00:00");
    }
}
