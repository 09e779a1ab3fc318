//! Where the real services are, read from the same variables the binaries use.

/// Connection URLs of the local services, with the loopback defaults of `deploy/local/services.sh`.
#[derive(Clone, Debug)]
pub struct Services {
    /// The `pledgesync` database; tests create throwaway databases next to it.
    pub postgres_url: String,
    /// The default vhost of the local RabbitMQ.
    pub rabbitmq_url: String,
    /// The local Redis.
    pub redis_url: String,
}

impl Services {
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            postgres_url: var(
                "PLEDGESYNC__POSTGRES__URL",
                "postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync",
            ),
            rabbitmq_url: var(
                "PLEDGESYNC__RABBITMQ__URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            redis_url: var("PLEDGESYNC__REDIS__URL", "redis://127.0.0.1:6379/0"),
        }
    }

    /// The same server with another database name, e.g. a throwaway test database.
    pub fn postgres_url_for(&self, database: &str) -> String {
        match self.postgres_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => format!("{}/{database}", self.postgres_url),
        }
    }
}

/// A loopback port that was free a moment ago, for a child process to listen on.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
