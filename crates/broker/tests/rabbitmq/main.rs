//! pledgesync-broker against the real RabbitMQ on loopback (`PLEDGESYNC__RABBITMQ__URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Each test declares its own topology under a unique
//! prefix and deletes it at the end, so the tests run in parallel with each other and with the
//! rest of the workspace. One binary holds them all, to link once; only the trace test has its
//! own (`tests/trace.rs`), because it installs a thread-local subscriber that tests running
//! beside it in the same process would race with.

mod acks;
mod common;
mod consume;
mod dead;
mod reconnect;
mod shutdown;
mod topology;
