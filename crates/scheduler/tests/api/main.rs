//! API tests of the scheduler against real PostgreSQL, RabbitMQ and Redis and an in-process Zoho
//! emulator. Each test gets its own database, topology prefix and Redis key prefix.

mod fuzz;
mod fuzz_inputs;
mod helpers;
mod outage;
mod periodic;
mod rekey;
mod services;
mod setup;
mod setup_errors;
mod stale;
mod surface;
mod syncs;
