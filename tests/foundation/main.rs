//! Foundation: the binaries' command line and configuration checks, run as real processes.

mod cli;
