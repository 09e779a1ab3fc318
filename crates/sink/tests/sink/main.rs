//! The sink against real PostgreSQL and RabbitMQ: every test has its own database and its own
//! queues, so they run in parallel.

mod common;

mod applying;
mod concurrency;
mod deleting;
mod outage;
mod refusing;
mod shutdown;
