//! Integration tests: every behaviour of the emulator through real HTTP.
//!
//! One test binary with submodules, because linking one binary is much faster than many.

mod binary;
mod console;
mod dc;
mod deleted;
mod errors;
mod knobs;
mod meta;
mod oauth;
mod paging;
mod records;
mod support;
