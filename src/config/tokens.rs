//! The settings of access tokens: who issues them, for whom, and the keys that sign them.

use clap::{Args, ValueEnum};

/// The algorithm new signing keys are made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenAlgorithm {
    /// Ed25519 signatures: small keys, fast, deterministic.
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and 2048-bit keys, for gateways that take nothing else.
    #[value(name = "RS256")]
    Rs256,
}

impl TokenAlgorithm {
    pub const ALL: [Self; 3] = [Self::EdDsa, Self::Es256, Self::Rs256];

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

#[derive(Clone, Debug, Args)]
pub struct TokenSettings {
    /// The URL clients reach codeward at, e.g. `https://auth.example.com` (default `http://`
    /// and the listen address). Behind a load balancer, set it: every instance must issue the
    /// same `iss`.
    #[arg(long, env = "CODEWARD_PUBLIC_URL", global = true)]
    pub public_url: Option<url::Url>,

    /// The access tokens' `iss` claim (default the public URL, without a trailing slash).
    #[arg(long, env = "CODEWARD_ISSUER", global = true)]
    pub issuer: Option<String>,

    /// The access tokens' `aud` claim: what the app's backend checks tokens are meant for.
    #[arg(
        long,
        env = "CODEWARD_TOKEN_AUDIENCE",
        default_value = "codeward",
        global = true
    )]
    pub token_audience: String,

    /// Algorithm of new signing keys: `EdDSA` (Ed25519), `ES256` or `RS256`. Changing it starts
    /// a rotation to a key of the new algorithm (pre-published like any rotation).
    #[arg(
        long,
        env = "CODEWARD_TOKEN_ALGORITHM",
        value_enum,
        default_value = "EdDSA",
        ignore_case = true,
        global = true
    )]
    pub token_algorithm: TokenAlgorithm,

    /// Seconds a signing key signs before the next one takes over.
    #[arg(long, env = "CODEWARD_SIGNING_KEY_ROTATION_SECS", default_value_t = 30 * 86_400,
          value_parser = clap::value_parser!(u64).range(3600..=366 * 86_400), global = true)]
    pub signing_key_rotation_secs: u64,

    /// Seconds a new signing key is published in the key set before it signs; more than the
    /// key set's cache lifetime (300 s), so every backend knows a key before it meets a token.
    #[arg(long, env = "CODEWARD_SIGNING_KEY_PREPUBLISH_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(301..=30 * 86_400), global = true)]
    pub signing_key_prepublish_secs: u64,
}

impl TokenSettings {
    /// The `iss` of every access token: the setting, else the public URL, else `http://` and the
    /// listen address.
    pub fn issuer(&self, listen: std::net::SocketAddr) -> String {
        if let Some(issuer) = &self.issuer {
            return issuer.clone();
        }
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{listen}"),
        }
    }
}
