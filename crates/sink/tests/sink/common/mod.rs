//! Shared helpers: a throwaway database, a private RabbitMQ topology, an in-process sink whose
//! every handled batch is reported on a channel, and fixtures.
#![allow(dead_code)]

mod fixtures;
mod services;
mod sink;

pub use fixtures::*;
pub use services::*;
pub use sink::*;
