//! The Zoho client of pledgesync: how the scheduler connects an integration and how every fetcher
//! reads a creator's CRM, sharing one access token per integration through Redis.
//!
//! This crate must never read or write PostgreSQL (callers hand it [`Credentials`] and store what
//! [`Authorization`] returns), never log, trace or put into an error a client secret, refresh token
//! or access token, and never retry a refresh token Zoho rejected in a loop.
//!
//! Modules:
//! - [`secret`]: `ClientId`, and `ClientSecret`, `RefreshToken`, `AccessToken` that print redacted.
//! - [`settings`]: [`ZohoClientSettings`], the `zoho_client` configuration section.
//! - [`endpoints`]: accounts and API hosts per data centre, with the `{dc}` override for tests.
//! - [`oauth`]: the token endpoint's answers and refusals, and scopes.
//! - [`accounts`]: the accounts server (code exchange, refresh, revoke).
//! - [`setup`]: [`Accounts::authorize`], data-centre detection and the creator-facing [`SetupError`].
//! - [`redis_pool`]: [`RedisPool`], the Redis connections the token store and the rate limits
//!   share, checked only after they sat idle.
//! - [`tokens`]: [`TokenStore`], one refresh per expiry across every worker.
//! - [`crm`]: [`CrmClient`]/[`Crm`], pages as a prefetching stream, deleted records, count, org.
//! - `retry` and `telemetry` (private): the backoff schedule and the metric names.

pub mod accounts;
pub mod crm;
pub mod endpoints;
pub mod oauth;
pub mod redis_pool;
mod retry;
pub mod secret;
pub mod settings;
pub mod setup;
mod telemetry;
pub mod tokens;

pub use accounts::{http_client, Accounts, AccountsError, ClientBuildError};
pub use crm::{Crm, CrmClient, CrmError, OrgInfo, Page, PagePosition, PageStream};
pub use endpoints::Endpoints;
pub use oauth::{Scopes, REQUIRED_SCOPES};
pub use redis_pool::{RedisConnection, RedisPool, RedisPoolError};
pub use secret::{AccessToken, ClientId, ClientSecret, RefreshToken};
pub use settings::ZohoClientSettings;
pub use setup::{Authorization, SetupError};
pub use tokens::{CachedToken, Credentials, ReauthReason, TokenError, TokenStore};
