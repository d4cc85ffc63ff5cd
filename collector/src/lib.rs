//! The Millwatch collector.
