//! Streaming redaction of tool stdio (DESIGN §5).
//!
//! Owns the built-in detectors, their validators (Luhn, mod-97, entropy) and the
//! streaming engine that runs on the pipes between a tool and its caller. The
//! engine's output is identical however the input is split into chunks, and its
//! memory is bounded. It must never log or store a detected value: receipts carry
//! counts and keyed fingerprints only.
//!
//! # Using it
//!
//! ```
//! use std::sync::Arc;
//! use enforcecore::redact::{Engine, StreamFilter};
//!
//! // Every built-in detector, `[REDACTED:KIND]` placeholders, no fingerprints.
//! // With a policy: `Engine::new(&policy.redaction)?` (loads the deployment key).
//! let engine = Arc::new(Engine::builtin(None));
//! let mut stdout = engine.stream("stdout");
//! let mut out = Vec::new();
//! stdout.push(b"mail ops@exam", &mut out);
//! stdout.push(b"ple.com\n", &mut out);
//! stdout.finish(&mut out);
//! assert_eq!(out, b"mail [REDACTED:EMAIL]\n");
//! assert_eq!(stdout.receipts()[0].count, 1);
//! ```
//!
//! # How it is built
//!
//! - `text`: the window detectors read, and a decoder that maps fullwidth forms
//!   to ASCII and skips zero-width characters.
//! - `detect`: the detectors, each a pure function of the bytes around a trigger.
//! - `scan`: byte-class triggers, 64 bytes at a time with SIMD compares.
//! - `literal`: token prefixes and PEM blocks via one multi-literal search.
//! - `custom`: policy regexes.
//! - `stream`: the window, the frontier, merging, writing, receipts.
//! - `pipeline`: [`Stream::pump`], a reader redacted on two threads.
//! - `replace`: placeholders, masks, keyed hashes, fingerprints.
//! - [`key`]: the deployment key.
//!
//! Binary data and invalid UTF-8 are scanned like text, every byte, with the
//! same detectors: a secret inside otherwise binary output is still caught,
//! and bytes that match nothing pass through unchanged. See `docs/redaction.md`
//! for every detector's exact rule.

use serde::{Deserialize, Serialize};

/// Built-in detectors, by their policy spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Email addresses.
    Email,
    /// Phone numbers (E.164 international and NANP).
    Phone,
    /// US social security numbers.
    UsSsn,
    /// Payment card numbers (Luhn-checked).
    CreditCard,
    /// IBANs (mod-97-checked).
    Iban,
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// AWS access key ids (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// AWS secret access keys in assignments.
    AwsSecretKey,
    /// GitHub tokens (`ghp_`, `gho_`, `ghs_`, `ghu_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// GitLab personal access tokens (`glpat-`).
    GitlabToken,
    /// Slack tokens (`xox?-`).
    SlackToken,
    /// Slack incoming-webhook URLs.
    SlackWebhook,
    /// Stripe secret and restricted keys.
    StripeKey,
    /// Google API keys (`AIza…`).
    GoogleApiKey,
    /// OpenAI keys (`sk-`, `sk-proj-`).
    OpenaiKey,
    /// Anthropic keys (`sk-ant-`).
    AnthropicKey,
    /// npm tokens (`npm_`).
    NpmToken,
    /// PyPI tokens (`pypi-`).
    PypiToken,
    /// Hugging Face tokens (`hf_`).
    HuggingfaceToken,
    /// SendGrid keys (`SG.`).
    SendgridKey,
    /// JSON Web Tokens.
    Jwt,
    /// PEM private-key blocks.
    PemPrivateKey,
    /// Passwords in URLs (`scheme://user:pass@host`).
    UrlPassword,
    /// `password|secret|token|api_key = value` assignments above an entropy floor.
    GenericSecret,
}

impl DetectorKind {
    /// Every built-in detector.
    pub const ALL: [DetectorKind; 25] = [
        DetectorKind::Email,
        DetectorKind::Phone,
        DetectorKind::UsSsn,
        DetectorKind::CreditCard,
        DetectorKind::Iban,
        DetectorKind::Ipv4,
        DetectorKind::Ipv6,
        DetectorKind::AwsAccessKey,
        DetectorKind::AwsSecretKey,
        DetectorKind::GithubToken,
        DetectorKind::GitlabToken,
        DetectorKind::SlackToken,
        DetectorKind::SlackWebhook,
        DetectorKind::StripeKey,
        DetectorKind::GoogleApiKey,
        DetectorKind::OpenaiKey,
        DetectorKind::AnthropicKey,
        DetectorKind::NpmToken,
        DetectorKind::PypiToken,
        DetectorKind::HuggingfaceToken,
        DetectorKind::SendgridKey,
        DetectorKind::Jwt,
        DetectorKind::PemPrivateKey,
        DetectorKind::UrlPassword,
        DetectorKind::GenericSecret,
    ];

    /// The policy spelling (`email`, `us_ssn`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Email => "email",
            DetectorKind::Phone => "phone",
            DetectorKind::UsSsn => "us_ssn",
            DetectorKind::CreditCard => "credit_card",
            DetectorKind::Iban => "iban",
            DetectorKind::Ipv4 => "ipv4",
            DetectorKind::Ipv6 => "ipv6",
            DetectorKind::AwsAccessKey => "aws_access_key",
            DetectorKind::AwsSecretKey => "aws_secret_key",
            DetectorKind::GithubToken => "github_token",
            DetectorKind::GitlabToken => "gitlab_token",
            DetectorKind::SlackToken => "slack_token",
            DetectorKind::SlackWebhook => "slack_webhook",
            DetectorKind::StripeKey => "stripe_key",
            DetectorKind::GoogleApiKey => "google_api_key",
            DetectorKind::OpenaiKey => "openai_key",
            DetectorKind::AnthropicKey => "anthropic_key",
            DetectorKind::NpmToken => "npm_token",
            DetectorKind::PypiToken => "pypi_token",
            DetectorKind::HuggingfaceToken => "huggingface_token",
            DetectorKind::SendgridKey => "sendgrid_key",
            DetectorKind::Jwt => "jwt",
            DetectorKind::PemPrivateKey => "pem_private_key",
            DetectorKind::UrlPassword => "url_password",
            DetectorKind::GenericSecret => "generic_secret",
        }
    }

    /// Parse the policy spelling.
    pub fn from_name(name: &str) -> Option<DetectorKind> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// A byte-stream transformer between a tool's pipe and its destination.
///
/// The supervisor's stdio pumps are written against this trait; the redaction
/// engine implements it. Contract: the concatenation of everything written to
/// `out` by `push` calls and the final `finish` depends only on the
/// concatenation of the inputs, never on how they were split.
pub trait StreamFilter: Send {
    /// Consume `input`, append whatever can already be released to `out`.
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>);
    /// End of stream: release everything still held back.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// What was replaced so far, per detector (never the values themselves).
    fn receipts(&self) -> Vec<crate::report::RedactionReceipt> {
        Vec::new()
    }
}
mod custom;
mod detect;
mod engine;
pub mod key;
mod literal;
mod pipeline;
mod replace;
mod scan;
mod stream;
#[cfg(test)]
mod tests;
mod text;
mod validate;

use std::path::PathBuf;

pub use custom::MAX_CUSTOM_LEN;
pub use engine::Engine;
pub use key::{Key, KeySource};
pub use replace::MAX_FINGERPRINTS;
pub use stream::Stream;

/// What a replacement is named after: a built-in detector, or the policy's
/// custom detector at that index. Ordered by precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Label {
    /// A built-in detector.
    Builtin(DetectorKind),
    /// `Redaction::custom[i]`.
    Custom(u16),
}

/// Why a redaction engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// The key file could not be opened or read.
    #[error("cannot read redaction key {} ({named_by}): {source}; check the path, or create the key (32 random bytes, mode 0600)", path.display())]
    KeyRead {
        /// The key file.
        path: PathBuf,
        /// Where the path came from.
        named_by: KeySource,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key path names a FIFO, a device, a directory or a symlink.
    #[error("redaction key {} ({named_by}) is {kind}, not a regular file; {}", path.display(), named_by.fix())]
    KeyNotAFile {
        /// The key path.
        path: PathBuf,
        /// Where the path came from.
        named_by: KeySource,
        /// What it is instead (`a FIFO (named pipe)`).
        kind: &'static str,
    },
    /// The key file is readable or writable by group or others.
    #[error("redaction key {} has mode {mode:04o}: group and others must have no access; run chmod 600 {}", path.display(), path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is too short to be a secret.
    #[error("redaction key {} has {len} bytes; use at least 16 (e.g. head -c 32 /dev/urandom)", path.display())]
    KeyTooShort {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The key file is implausibly large.
    #[error("redaction key {} is larger than 4096 bytes; is it the right file?", path.display())]
    KeyTooLong {
        /// The key file.
        path: PathBuf,
    },
    /// The host key could not be created.
    #[error("cannot create the redaction host key {}: {source}; create it by hand (32 random bytes, mode 0600) or set redaction.key_file", path.display())]
    KeyCreate {
        /// Where it was to be created.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither `XDG_STATE_HOME` nor `HOME` says where a host key could live.
    #[error(
        "no place for the redaction host key: set HOME or XDG_STATE_HOME, or set redaction.key_file"
    )]
    NoKeyLocation,
    /// The `hash` strategy was asked for without a key.
    #[error("the hash strategy needs a deployment key")]
    HashNeedsKey,
    /// A custom pattern does not compile.
    #[error("custom detector `{name}`: the pattern does not compile: {source}")]
    CustomPattern {
        /// The detector.
        name: String,
        /// The regex error.
        source: regex::Error,
    },
    /// Reading the input of [`Stream::pump`] failed.
    #[error("cannot read the input to redact: {source}")]
    Read {
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the output of [`Stream::pump`] failed.
    #[error("cannot write the redacted output: {source}")]
    Write {
        /// The I/O error.
        source: std::io::Error,
    },
    /// [`Stream::pump`] could not start its reading thread.
    #[error(
        "cannot start the redaction reader thread: {source}; raise the process or thread limit"
    )]
    Thread {
        /// The spawn error.
        source: std::io::Error,
    },
    /// [`Stream::pump`]'s reading thread ended without a word (it panicked).
    #[error("the redaction reader thread stopped unexpectedly; this is a bug, please report it")]
    FinderLost,
    /// A custom pattern's longest match is out of bounds.
    #[error(
        "custom detector `{name}`: longest match {max_len} bytes is outside 1..=65536; bound the pattern's repetitions"
    )]
    CustomTooLong {
        /// The detector.
        name: String,
        /// Its longest match.
        max_len: usize,
    },
}
