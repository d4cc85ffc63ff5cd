//! Millwatch's statistics: pure functions and small state machines, no I/O, no async.
