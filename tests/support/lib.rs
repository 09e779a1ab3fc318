//! The one small helper every system test shares: where the services are, how to start the
//! project's binaries as real processes, and how to wait for a condition with a deadline.
//!
//! Tests here talk to real PostgreSQL, RabbitMQ and Redis (started by `make test` through
//! `deploy/local/services.sh`) and to the Zoho emulator; nothing is mocked. This crate must never
//! sleep as a means of synchronisation: it polls a condition until a deadline.

pub mod process;
pub mod services;
pub mod wait;

pub use process::{binary, Binary, Running};
pub use services::{free_port, Services};
pub use wait::wait_until;
