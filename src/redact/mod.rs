//! Streaming redaction of tool stdio (DESIGN §5).
//!
//! Owns the built-in detectors, their validators (Luhn, mod-97, entropy) and the
//! streaming engine that runs on the pipes between a tool and its caller. The
//! engine's output is identical however the input is split into chunks, and its
//! memory is bounded. It must never log or store a detected value: receipts carry
//! counts and keyed fingerprints only.

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
}
