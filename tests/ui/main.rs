//! The setup pages in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) over WebDriver, against the real scheduler, sink and fetcher processes,
//! PostgreSQL, RabbitMQ, Redis and the Zoho emulator.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the test skips with a loud message,
//! unless `CI` is set: then it fails. Screenshots land in `target/ui-artifacts/`.

mod browser;
mod connect;
mod detail;
mod guide;
mod stack;
