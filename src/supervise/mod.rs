//! One run, from spawn to exit report: stdio pumps, denial feed, wait, cleanup.

pub mod outcome;
pub mod spawn;
pub mod stdio;
