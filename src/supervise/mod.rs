//! One run, from spawn to exit report: stdio pumps, denial feed, wait, cleanup.
