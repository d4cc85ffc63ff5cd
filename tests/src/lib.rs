//! Helpers for Millwatch's end-to-end tests.
