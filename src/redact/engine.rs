//! The compiled redaction settings shared by every stream of a run (or of the
//! whole daemon): which detectors run, the custom patterns, the strategy and
//! the key.
//!
//! Construction is cheap: built-in detectors are code and static tables, not
//! regexes, so an engine with every built-in detector is ready in microseconds.
//! The literal automaton is built once per process, on first use or by
//! [`Engine::warm_up`]. Custom patterns are compiled here (typically tens to
//! hundreds of microseconds each); a caller on a tight start-up budget can build
//! the engine on another thread while the tool starts.

use std::sync::Arc;

use super::custom::Compiled;
use super::key::{Key, KeySource};
use super::scan;
use super::stream::Stream;
use super::{DetectorKind, Label, RedactError, StreamFilter};
use crate::policy::{Redaction, Strategy};
use crate::report::RedactionReceipt;

/// Redaction settings compiled for streaming. `Send + Sync`: share it through an
/// `Arc` and open one [`Stream`] per pipe.
#[derive(Debug)]
pub struct Engine {
    enabled: [bool; DetectorKind::ALL.len()],
    pub(crate) scan_kinds: u8,
    pub(crate) literals: bool,
    pub(crate) pem: bool,
    pub(crate) custom: Vec<Compiled>,
    pub(crate) strategy: Strategy,
    pub(crate) key: Option<Key>,
}

fn index(kind: DetectorKind) -> usize {
    DetectorKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(0)
}

impl Engine {
    /// The engine for a policy's redaction settings. The key is the policy's
    /// `key_file`, or else the host key (created on first use).
    pub fn new(settings: &Redaction) -> Result<Engine, RedactError> {
        let key = match &settings.key_file {
            Some(path) => Key::load(&path.value, KeySource::Policy)?,
            None => Key::host()?,
        };
        Engine::with_key(settings, Some(key))
    }

    /// The engine for `settings` with an explicit key (`None`: no fingerprints;
    /// the `hash` strategy then fails).
    pub fn with_key(settings: &Redaction, key: Option<Key>) -> Result<Engine, RedactError> {
        let custom = settings
            .custom
            .iter()
            .map(Compiled::new)
            .collect::<Result<Vec<_>, _>>()?;
        Engine::build(
            settings.detectors.iter().map(|d| d.value),
            custom,
            settings.strategy.value,
            key,
        )
    }

    /// Every built-in detector with the placeholder strategy: what runs when
    /// there is no policy. `key` only serves receipt fingerprints.
    pub fn builtin(key: Option<Key>) -> Engine {
        Engine::build(DetectorKind::ALL, Vec::new(), Strategy::Placeholder, key)
            .expect("the placeholder strategy needs no key")
    }

    fn build(
        detectors: impl IntoIterator<Item = DetectorKind>,
        custom: Vec<Compiled>,
        strategy: Strategy,
        key: Option<Key>,
    ) -> Result<Engine, RedactError> {
        if strategy == Strategy::Hash && key.is_none() {
            return Err(RedactError::HashNeedsKey);
        }
        let mut enabled = [false; DetectorKind::ALL.len()];
        for d in detectors {
            enabled[index(d)] = true;
        }
        let on = |kinds: &[DetectorKind]| kinds.iter().any(|&k| enabled[index(k)]);
        use DetectorKind::*;
        let numbers = on(&[Phone, UsSsn, CreditCard, Ipv4]);
        let mut scan_kinds = 0;
        for (bit, wanted) in [
            (scan::NUM, numbers),
            (scan::IBAN, on(&[Iban])),
            (scan::COLON, on(&[Ipv6])),
            (scan::URL, on(&[UrlPassword, SlackWebhook])),
            (scan::ASSIGN, on(&[GenericSecret, AwsSecretKey])),
            (scan::AT, numbers || on(&[Email])),
        ] {
            if wanted {
                scan_kinds |= bit;
            }
        }
        let literals = on(&[
            AwsAccessKey,
            GithubToken,
            GitlabToken,
            SlackToken,
            StripeKey,
            GoogleApiKey,
            OpenaiKey,
            AnthropicKey,
            NpmToken,
            PypiToken,
            HuggingfaceToken,
            SendgridKey,
            Jwt,
            PemPrivateKey,
        ]);
        Ok(Engine {
            enabled,
            scan_kinds,
            literals,
            pem: on(&[PemPrivateKey]),
            custom,
            strategy,
            key,
        })
    }

    /// Build the process-wide literal automaton now instead of on the first
    /// stream's first bytes (about a hundred microseconds, once).
    pub fn warm_up() {
        super::literal::warm_up();
    }

    /// A new stream named `stream` (`stdin`, `stdout`, `stderr`: the name goes
    /// into its receipts).
    pub fn stream(self: &Arc<Self>, stream: &str) -> Stream {
        Stream::new(Arc::clone(self), stream)
    }

    /// Redact a complete buffer (an argument vector, a one-off string).
    pub fn redact(
        self: &Arc<Self>,
        stream: &str,
        input: &[u8],
    ) -> (Vec<u8>, Vec<RedactionReceipt>) {
        let mut s = self.stream(stream);
        let mut out = Vec::with_capacity(input.len());
        s.push(input, &mut out);
        s.finish(&mut out);
        (out, s.receipts())
    }

    /// The replacement strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Whether a built-in detector is on.
    pub fn enabled(&self, kind: DetectorKind) -> bool {
        self.enabled[index(kind)]
    }

    pub(crate) fn label_enabled(&self, label: Label) -> bool {
        match label {
            Label::Builtin(k) => self.enabled(k),
            Label::Custom(_) => true,
        }
    }

    /// Policy spelling of a label.
    pub(crate) fn name(&self, label: &Label) -> String {
        match label {
            Label::Builtin(k) => k.as_str().to_string(),
            Label::Custom(i) => self.custom[usize::from(*i)].name.clone(),
        }
    }

    /// Upper-case name used in replacements.
    pub(crate) fn upper(&self, label: &Label) -> String {
        match label {
            Label::Builtin(k) => k.as_str().to_ascii_uppercase(),
            Label::Custom(i) => self.custom[usize::from(*i)].label.clone(),
        }
    }
}
