//! Configuration: the sections the binaries share, and the layered loader.
//!
//! Layers, later ones winning: the built-in defaults (each section's `Default`), an optional TOML
//! file (`--config PATH`), then environment variables `PLEDGESYNC__SECTION__KEY` (lists, such as
//! `PLEDGESYNC__API__TOKENS`, are comma-separated). Each binary owns one typed struct made of these
//! sections, and [`load`] validates it before anything starts, naming the bad key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

/// Environment variable prefix; `PLEDGESYNC__POSTGRES__URL` sets `postgres.url`.
pub const ENV_PREFIX: &str = "PLEDGESYNC";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["api.tokens", "security.retired_keys"];

/// A configuration that could not be used; the message names the key and what it expects.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration could not be read: {0}")]
    Read(#[from] config::ConfigError),
    #[error("configuration key `{key}` is invalid: {expected}")]
    Invalid { key: String, expected: String },
}

impl SettingsError {
    pub fn invalid(key: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            expected: expected.into(),
        }
    }
}

/// A binary's whole configuration: checked once at start.
pub trait Validate {
    fn validate(&self) -> Result<(), SettingsError>;
}

/// Loads defaults, then `file` if given, then `PLEDGESYNC__…` variables, and validates.
pub fn load<T: DeserializeOwned + Validate>(file: Option<&Path>) -> Result<T, SettingsError> {
    load_from(file, std::env::vars())
}

/// [`load`] with an explicit environment, so tests need not touch the process's.
pub fn load_from<T, I>(file: Option<&Path>, vars: I) -> Result<T, SettingsError>
where
    T: DeserializeOwned + Validate,
    I: IntoIterator<Item = (String, String)>,
{
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(
            config::File::from(path)
                .required(true)
                .format(config::FileFormat::Toml),
        );
    }
    let prefix = format!("{ENV_PREFIX}__");
    let vars: config::Map<String, String> = vars
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect();
    let mut environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(vars));
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    let settings: T = builder.add_source(environment).build()?.try_deserialize()?;
    settings.validate()?;
    Ok(settings)
}

fn check_url(key: &str, url: &SecretString, schemes: &[&str]) -> Result<(), SettingsError> {
    let expected = || format!("a URL with scheme {}", schemes.join(" or "));
    // The URL may hold a password: never echo it back.
    let parsed =
        Url::parse(url.expose_secret()).map_err(|_| SettingsError::invalid(key, expected()))?;
    if schemes.contains(&parsed.scheme()) {
        Ok(())
    } else {
        Err(SettingsError::invalid(key, expected()))
    }
}

fn check_positive(key: &str, value: u64) -> Result<(), SettingsError> {
    if value == 0 {
        Err(SettingsError::invalid(key, "a number greater than 0"))
    } else {
        Ok(())
    }
}

fn check_name(key: &str, value: &str) -> Result<(), SettingsError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SettingsError::invalid(
            key,
            "1 to 64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

/// PostgreSQL, the system of record.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/db`; secret because it carries the password.
    pub url: SecretString,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// How long to wait for a connection from the pool or the server.
    pub connect_timeout_secs: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync"),
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

impl PostgresSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_url("postgres.url", &self.url, &["postgres", "postgresql"])?;
        check_positive("postgres.max_connections", self.max_connections.into())?;
        check_positive("postgres.connect_timeout_secs", self.connect_timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// RabbitMQ, which holds the work in flight.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// `amqp://user:password@host:port/vhost`; secret because it carries the password.
    pub url: SecretString,
    /// Deliveries a consumer may hold unacknowledged at once: the jobs a fetcher works at once
    /// (most of a job's time is spent waiting on Zoho or on the sink). The sink has its own,
    /// `sink.prefetch`.
    pub prefetch: u16,
    /// Deliveries of one message before it is dead-lettered (quorum queue `x-delivery-limit`).
    pub delivery_limit: u32,
    /// Prefix of every exchange and queue name (`pledgesync.jobs`…), so that several
    /// deployments or test runs can share one RabbitMQ.
    pub topology_prefix: String,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefetch: 16,
            delivery_limit: 5,
            topology_prefix: "pledgesync".to_owned(),
        }
    }
}

impl RabbitMqSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_url("rabbitmq.url", &self.url, &["amqp", "amqps"])?;
        check_positive("rabbitmq.prefetch", self.prefetch.into())?;
        check_positive("rabbitmq.delivery_limit", self.delivery_limit.into())?;
        check_name("rabbitmq.topology_prefix", &self.topology_prefix)
    }
}

/// Redis, which holds only what may be lost (tokens, locks, limits).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`.
    pub url: SecretString,
    /// Upper bound of the connection pool.
    pub pool_size: usize,
    /// Prefix of every key pledgesync writes, so that several deployments or test runs can share
    /// one Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("redis://127.0.0.1:6379/0"),
            pool_size: 16,
            key_prefix: "pledgesync".to_owned(),
        }
    }
}

impl RedisSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_url("redis.url", &self.url, &["redis", "rediss"])?;
        check_positive("redis.pool_size", self.pool_size as u64)?;
        check_name("redis.key_prefix", &self.key_prefix)
    }
}

/// Where Zoho is. Unset URLs mean the real Zoho hosts of each data centre.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZohoSettings {
    /// Overrides every data centre's accounts server (tests and the demo point it at the emulator).
    pub accounts_url: Option<Url>,
    /// Overrides every data centre's CRM API domain.
    pub api_url: Option<Url>,
}

impl ZohoSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (key, url) in [
            ("zoho.accounts_url", &self.accounts_url),
            ("zoho.api_url", &self.api_url),
        ] {
            if let Some(url) = url {
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(SettingsError::invalid(key, "an http:// or https:// URL"));
                }
            }
        }
        Ok(())
    }
}

/// How logs look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON, unless standard error is a terminal.
    #[default]
    Auto,
    Json,
    Pretty,
}

/// Logs and traces.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// A `tracing` filter such as `info` or `pledgesync=debug,lapin=warn`; `RUST_LOG` wins if set.
    pub log_level: String,
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces (e.g. `http://otel-collector:4318`); off when unset.
    pub otlp_endpoint: Option<Url>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_level: "info".to_owned(),
            log_format: LogFormat::Auto,
            otlp_endpoint: None,
        }
    }
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map(|_| ())
            .map_err(|_| {
                SettingsError::invalid(
                    "telemetry.log_level",
                    "a tracing filter such as `info` or `pledgesync=debug`",
                )
            })
    }
}

/// The small HTTP port every worker serves `/healthz`, `/readyz` and `/metrics` on.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
        }
    }
}

/// Encryption of secrets at rest.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// Base64 of 32 random bytes: the key new secrets are encrypted with.
    pub encryption_key: Option<SecretString>,
    /// The id stored beside each ciphertext, so that keys can rotate.
    pub encryption_key_id: String,
    /// Older keys still accepted for decryption, as `id:base64` pairs.
    pub retired_keys: Vec<SecretString>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            encryption_key: None,
            encryption_key_id: "k1".to_owned(),
            retired_keys: Vec::new(),
        }
    }
}

impl SecuritySettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let expected =
            "base64 of exactly 32 random bytes (make one with `openssl rand -base64 32`)";
        match &self.encryption_key {
            None => return Err(SettingsError::invalid("security.encryption_key", expected)),
            Some(key) if decode_key(key.expose_secret()).is_none() => {
                return Err(SettingsError::invalid("security.encryption_key", expected))
            }
            Some(_) => {}
        }
        if self.encryption_key_id.is_empty()
            || self.encryption_key_id.contains(':')
            || self.encryption_key_id.len() > 32
        {
            return Err(SettingsError::invalid(
                "security.encryption_key_id",
                "1 to 32 characters without ':'",
            ));
        }
        for retired in &self.retired_keys {
            let ok = retired
                .expose_secret()
                .split_once(':')
                .is_some_and(|(id, key)| !id.is_empty() && decode_key(key).is_some());
            if !ok {
                return Err(SettingsError::invalid(
                    "security.retired_keys",
                    "a list of `id:base64-of-32-bytes` entries",
                ));
            }
        }
        Ok(())
    }
}

/// Decodes a base64 key of exactly 32 bytes.
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = base64_decode(text.trim())?;
    bytes.try_into().ok()
}

/// A small standard-alphabet base64 decoder, so core needs no codec dependency for one check.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let body = text.trim_end_matches('=');
    if !text.len().is_multiple_of(4) || text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        postgres: PostgresSettings,
        rabbitmq: RabbitMqSettings,
        security: SecuritySettings,
        api: ExampleApi,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct ExampleApi {
        tokens: Vec<String>,
    }

    impl Validate for Example {
        fn validate(&self) -> Result<(), SettingsError> {
            self.postgres.validate()?;
            self.rabbitmq.validate()?;
            self.security.validate()
        }
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_overrides_defaults() {
        let settings: Example = load_from(
            None,
            env(&[
                ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY),
                ("PLEDGESYNC__RABBITMQ__PREFETCH", "9"),
                ("PLEDGESYNC__API__TOKENS", "one,two"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(settings.rabbitmq.prefetch, 9);
        assert_eq!(settings.api.tokens, vec!["one", "two"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load_from::<Example, _>(
            None,
            env(&[
                ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY),
                ("PLEDGESYNC__POSTGRES__URL", "mysql://x"),
            ]),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("`postgres.url`"), "{err}");

        let err = load_from::<Example, _>(
            None,
            env(&[("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", "short")]),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("security.encryption_key"), "{err}");

        let err = load_from::<Example, _>(
            None,
            env(&[
                ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY),
                ("PLEDGESYNC__RABBITMQ__PREFETCH", "many"),
            ]),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("prefetch"), "{err}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let settings = PostgresSettings {
            url: SecretString::from("postgres://u:hunter2@db/x"),
            ..PostgresSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn base64_keys_decode() {
        assert_eq!(decode_key(KEY).map(|k| k[31]), Some(31));
        assert!(decode_key("AAEC").is_none());
        assert!(decode_key("not base64!").is_none());
    }
}
