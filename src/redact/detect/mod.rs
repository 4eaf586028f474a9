//! The built-in detectors. Each is a pure function of the bytes around a
//! trigger position that the scanner found, read through a `text::Window`: it
//! either answers (a [`Hit`] or nothing) or asks for more input, never guesses.
//!
//! - [`numeric`] — phone numbers, US SSNs, payment cards, IPv4 addresses.
//! - [`iban`] — IBANs.
//! - [`email`] — email addresses.
//! - [`network`] — IPv6 addresses, passwords in URLs, Slack webhooks.
//! - [`assign`] — AWS secret keys and generic secrets in `key = value` text.
//! - [`tokens`] — prefixed tokens (cloud, VCS, SaaS keys), JWTs, PEM openings.
//! - [`pem`] — the body of a PEM private-key block.
//!
//! Detectors must never look back further than [`MAX_LOOKBEHIND`] bytes from
//! their trigger; the stream keeps at least that much history.

use crate::redact::DetectorKind;

pub(crate) mod assign;
pub(crate) mod email;
pub(crate) mod iban;
pub(crate) mod network;
pub(crate) mod numeric;
pub(crate) mod pem;
pub(crate) mod tokens;

/// Furthest any detector reads before its trigger, in bytes.
pub(crate) const MAX_LOOKBEHIND: usize = 512;

/// Furthest before its trigger a detection can start, in bytes (an email's
/// local part is the longest reach).
pub(crate) const MAX_REACH: usize = email::MAX_BACK;

/// One detection: the byte range `start..end` of the window, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The detector.
    pub kind: DetectorKind,
}
