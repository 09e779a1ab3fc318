//! End to end: the real scheduler, fetchers and sinks as processes, against real PostgreSQL,
//! RabbitMQ and Redis and a Zoho emulator; after each scenario the audience is compared with the
//! emulator's records, record by record.
//!
//! Each test has its own database, RabbitMQ topology prefix, Redis key prefix and emulator, so
//! tests may run side by side; the `e2e` nextest group bounds how many at once on a small machine.

mod faults;
mod flow;
mod harness;
mod oracle;
mod sync;
