//! Shared helper for the system tests: reaching the services and starting the binaries.
