//! The lockmgr client library.
