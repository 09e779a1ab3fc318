//! The CRM client: every call gets a token from the shared store, a per-org slot and credit, a
//! span and metrics, and retries with backoff and jitter when the failure is retryable. A 401
//! invalidates the token that failed (only if it is still the cached one) and retries at once,
//! once, with a fresh token.

use std::sync::Arc;
use std::time::Duration;

use pledgesync_core::Module;

use crate::crm::limits::Limits;
use crate::crm::wire::{self, ApiRequest, OrgInfo, Reply};
use crate::crm::CrmError;
use crate::endpoints::Endpoints;
use crate::retry::{jitter_between, Backoff};
use crate::secret::AccessToken;
use crate::settings::ZohoClientSettings;
use crate::tokens::{Credentials, TokenStore};

/// The CRM client of a process. Cheap to clone.
#[derive(Clone)]
pub struct CrmClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    tokens: TokenStore,
    http: reqwest::Client,
    endpoints: Endpoints,
    settings: Arc<ZohoClientSettings>,
    limits: Limits,
}

impl std::fmt::Debug for CrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmClient").finish_non_exhaustive()
    }
}

impl CrmClient {
    /// A client sharing the token store's accounts client (HTTP pool, hosts, settings) and Redis.
    pub fn new(tokens: TokenStore) -> Self {
        let accounts = tokens.accounts();
        let settings = accounts.settings.clone();
        Self {
            inner: Arc::new(ClientInner {
                http: accounts.http.clone(),
                endpoints: accounts.endpoints.clone(),
                limits: Limits::new(tokens.redis().clone(), &settings),
                settings,
                tokens,
            }),
        }
    }

    /// The token store calls authenticate through.
    pub fn tokens(&self) -> &TokenStore {
        &self.inner.tokens
    }

    /// A handle to one integration's org. Limits are keyed by the integration until
    /// [`Crm::with_org_id`] names the org.
    pub fn session(&self, creds: Credentials) -> Crm {
        let base = self
            .inner
            .endpoints
            .api(creds.data_center, creds.api_domain.as_ref());
        Crm {
            client: self.clone(),
            limit_key: format!("integration:{}", creds.integration_id),
            daily_credits: self.inner.settings.org_daily_credits,
            creds: Arc::new(creds),
            base: Arc::from(base),
        }
    }
}

/// One integration's view of Zoho CRM. Cheap to clone; safe to share between tasks.
#[derive(Clone)]
pub struct Crm {
    pub(crate) client: CrmClient,
    creds: Arc<Credentials>,
    limit_key: String,
    daily_credits: u64,
    base: Arc<str>,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm")
            .field("integration_id", &self.creds.integration_id)
            .field("limit_key", &self.limit_key)
            .finish_non_exhaustive()
    }
}

impl Crm {
    /// Keys the concurrency and credit limits by the Zoho org, so integrations of one org share
    /// them (Zoho counts per org).
    pub fn with_org_id(mut self, org_id: &str) -> Self {
        self.limit_key = format!("org:{org_id}");
        self
    }

    /// The org's API credits per rolling 24 hours, when known (e.g. from its edition).
    pub fn with_daily_credits(mut self, credits: u64) -> Self {
        self.daily_credits = credits.max(1);
        self
    }

    /// The integration this handle reads for.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// `GET /crm/v8/org`.
    pub async fn org(&self) -> Result<OrgInfo, CrmError> {
        let reply = self
            .call(&simple("org", "", "/crm/v8/org".to_owned()))
            .await?;
        wire::parse_org(reply)
    }

    /// `GET /crm/v8/{module}/actions/count`: the number of records (Zoho's count lags by minutes).
    pub async fn count(&self, module: Module) -> Result<u64, CrmError> {
        let path = format!("/crm/v8/{}/actions/count", module.api_name());
        let reply = self.call(&simple("count", module.api_name(), path)).await?;
        wire::parse_count(reply)
    }

    /// One call with retries.
    pub(crate) async fn call(&self, request: &ApiRequest) -> Result<Reply, CrmError> {
        let settings = &self.client.inner.settings;
        let backoff = Backoff {
            base: Duration::from_millis(settings.retry_base_ms),
            max: Duration::from_millis(settings.retry_max_ms),
        };
        let mut attempt = 0u32;
        let mut retried_401 = false;
        loop {
            attempt += 1;
            let (result, token) = self.attempt(request).await;
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if let CrmError::TokenRejected { .. } = error {
                if let Some(token) = &token {
                    if let Err(e) = self
                        .client
                        .inner
                        .tokens
                        .invalidate_if_same(self.creds.integration_id, token)
                        .await
                    {
                        tracing::warn!(integration_id = %self.creds.integration_id, error = %e, "could not invalidate a rejected token");
                    }
                }
                if !retried_401 {
                    retried_401 = true;
                    tracing::info!(integration_id = %self.creds.integration_id, endpoint = request.endpoint, "access token rejected; retrying once with a fresh one");
                    continue;
                }
                return Err(error);
            }
            if !error.is_retryable() || attempt >= settings.retry_attempts {
                return Err(error);
            }
            let mut wait = backoff.delay(attempt);
            if let CrmError::RateLimited { .. } = error {
                let floor = Duration::from_millis(settings.rate_limited_backoff_ms);
                wait = wait.max(jitter_between(floor, floor * 2));
            }
            if let Some(after) = error.retry_after() {
                // A long wait belongs to the caller (requeue the job), not to a sleeping task.
                if after > backoff.max {
                    return Err(error);
                }
                wait = wait.max(after);
            }
            tracing::warn!(
                integration_id = %self.creds.integration_id,
                endpoint = request.endpoint,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "Zoho call failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: token, slot and credit, the exchange, slot back.
    async fn attempt(
        &self,
        request: &ApiRequest,
    ) -> (Result<Reply, CrmError>, Option<AccessToken>) {
        let inner = &self.client.inner;
        let token = match inner.tokens.access_token(&self.creds).await {
            Ok(token) => token,
            Err(e) => return (Err(e.into()), None),
        };
        let budget = inner.settings.credit_budget(self.daily_credits);
        let lease = match inner.limits.admit(&self.limit_key, budget).await {
            Ok(lease) => lease,
            Err(e) => return (Err(e), Some(token)),
        };
        let exchange = wire::send(
            &inner.http,
            &self.base,
            &token,
            request,
            inner.settings.request_timeout(),
        )
        .await;
        inner.limits.release(lease).await;
        if let Some(remaining) = exchange.credits_remaining {
            inner
                .limits
                .note_remaining(
                    &self.limit_key,
                    remaining,
                    self.daily_credits,
                    inner.settings.credit_share,
                )
                .await;
        }
        (exchange.result, Some(token))
    }
}

fn simple(endpoint: &'static str, module: &str, path: String) -> ApiRequest {
    ApiRequest {
        endpoint,
        module: module.to_owned(),
        path,
        query: Vec::new(),
        if_modified_since: None,
    }
}
