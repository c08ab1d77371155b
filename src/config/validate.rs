//! What the flags cannot check one at a time: the settings as a whole, the peppers, and the
//! rules production adds.

use secrecy::ExposeSecret;

use crate::config::{Config, Environment, Pepper, Peppers, SmtpUrl, WebhookSecret};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Checks what flags cannot check one at a time, and picks the dev pepper where allowed.
    /// Returns warnings an operator should see in the start-up log.
    pub fn validate(&mut self) -> Result<Vec<String>, ConfigError> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let production = self.environment == Environment::Production;

        if let Err(why) = self.database_url.check() {
            problems.push(format!("CODEWARD_DATABASE_URL {why}"));
        }
        if let Some(Err(why)) = self.smtp_url.as_ref().map(SmtpUrl::check) {
            problems.push(format!("CODEWARD_SMTP_URL {why}"));
        }

        let mut peppers = Vec::new();
        match &self.pepper_setting {
            Some(value) => match Pepper::parse(value.expose_secret()) {
                Ok(pepper) => peppers.push(pepper),
                Err(why) => problems.push(format!("CODEWARD_PEPPER: {why}")),
            },
            None if production => problems.push(
                "CODEWARD_PEPPER is required in production: generate one with \
                 `echo \"k1:$(openssl rand -base64 32)\"`"
                    .to_owned(),
            ),
            None => {
                warnings.push(
                    "CODEWARD_PEPPER is unset: using the built-in INSECURE development pepper; \
                     never run like this with real users"
                        .to_owned(),
                );
                peppers.push(Pepper::development());
            }
        }
        let previous = self.previous_peppers_setting.as_ref();
        for (index, value) in previous
            .map(|v| v.expose_secret().split(',').collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match Pepper::parse(value) {
                Ok(pepper) => peppers.push(pepper),
                Err(why) => problems.push(format!(
                    "CODEWARD_PREVIOUS_PEPPERS entry {}: {why}",
                    index + 1
                )),
            }
        }
        if production {
            for pepper in &peppers {
                if let Some(weakness) = pepper.weakness() {
                    problems.push(format!("pepper {:?} {weakness}", pepper.key_id));
                }
            }
        } else if self.smtp_url.is_some() && peppers.iter().any(Pepper::is_development) {
            // Real email means real users, whose codes and address counters the public
            // development pepper would not protect; a local mailbox folder is still fine.
            problems.push(
                "CODEWARD_SMTP_URL sends real email, yet codes would be hashed under the public \
                 development pepper: set CODEWARD_PEPPER (and CODEWARD_PREVIOUS_PEPPERS) to keys \
                 of your own, e.g. `echo \"k1:$(openssl rand -base64 32)\"`, and \
                 CODEWARD_ENV=production for real users"
                    .to_owned(),
            );
        }
        let mut key_ids: Vec<&str> = peppers.iter().map(|p| p.key_id.as_str()).collect();
        key_ids.sort_unstable();
        if let Some(w) = key_ids.windows(2).find(|w| w[0] == w[1]) {
            problems.push(format!(
                "pepper key id {:?} is used twice; every key needs its own id",
                w[0]
            ));
        }

        if production && self.smtp_url.is_none() {
            problems.push(
                "CODEWARD_SMTP_URL is required in production: without it emails only reach a local folder"
                    .to_owned(),
            );
        }
        if self.app_name.trim().is_empty() {
            problems.push("CODEWARD_APP_NAME must not be empty".to_owned());
        }
        match self.mail_from.parse::<lettre::message::Mailbox>() {
            Err(error) => problems.push(format!(
                "CODEWARD_MAIL_FROM is not a mailbox like `Name <no-reply@example.com>`: {error}"
            )),
            Ok(sender) if production && !is_public_domain(sender.email.domain()) => {
                problems.push(format!(
                    "CODEWARD_MAIL_FROM is {}, an address no one outside this machine can check \
                     or answer, and receiving servers mark as spam or refuse: in production set \
                     it to an address at your own domain, e.g. `Example <no-reply@example.com>`",
                    sender.email
                ));
            }
            Ok(_) => {}
        }
        if production && self.app_name == super::DEFAULT_APP_NAME {
            warnings.push(format!(
                "CODEWARD_APP_NAME is the default: emails say \"… is your {} verification code\"; set \
                 it to the name your users know",
                super::DEFAULT_APP_NAME
            ));
        }
        if let Some(dir) = self.template_dir.as_ref().filter(|dir| !dir.is_dir()) {
            problems.push(format!(
                "CODEWARD_TEMPLATE_DIR {} is not a folder",
                dir.display()
            ));
        }
        if self.email_lease_secs <= self.smtp_timeout_secs {
            problems.push(
                "CODEWARD_EMAIL_LEASE_SECS must be longer than CODEWARD_SMTP_TIMEOUT_SECS, \
                 or a slow send could be claimed and sent twice"
                    .to_owned(),
            );
        }
        self.webhook_secret = None;
        match &self.webhook_secret_setting {
            Some(value) => match WebhookSecret::parse(value.expose_secret()) {
                Ok(secret) => self.webhook_secret = Some(secret),
                Err(why) => problems.push(format!("CODEWARD_WEBHOOK_SECRET {why}")),
            },
            None if self.webhook_url.is_some() => problems.push(
                "CODEWARD_WEBHOOK_URL is set but CODEWARD_WEBHOOK_SECRET is not: webhooks are \
                 always signed; generate one with `echo \"whsec_$(openssl rand -base64 32)\"`"
                    .to_owned(),
            ),
            None => {}
        }
        if let Some(url) = &self.webhook_url {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                problems.push(
                    "CODEWARD_WEBHOOK_URL must be an http:// or https:// URL with a host"
                        .to_owned(),
                );
            }
            if production && url.scheme() == "http" {
                warnings.push(
                    "CODEWARD_WEBHOOK_URL uses http://: events (user ids and addresses) cross the \
                     network in clear text"
                        .to_owned(),
                );
            }
        } else if self.webhook_secret_setting.is_some() {
            warnings.push(
                "CODEWARD_WEBHOOK_SECRET is set without CODEWARD_WEBHOOK_URL: no webhooks are sent"
                    .to_owned(),
            );
        }
        if self.webhook_lease_secs <= self.webhook_timeout_secs {
            problems.push(
                "CODEWARD_WEBHOOK_LEASE_SECS must be longer than CODEWARD_WEBHOOK_TIMEOUT_SECS, \
                 or a slow delivery could be claimed and sent twice"
                    .to_owned(),
            );
        }
        if self.code_daily_failure_ceiling < self.code_daily_failure_budget {
            problems.push(
                "CODEWARD_CODE_DAILY_FAILURE_CEILING (all networks together) must be at least \
                 CODEWARD_CODE_DAILY_FAILURE_BUDGET (one network)"
                    .to_owned(),
            );
        }
        let plain_smtp = self.smtp_url.as_ref().is_some_and(|url| {
            url.expose().starts_with("smtp://") && !url.expose().contains("tls=")
        });
        if production && plain_smtp {
            warnings.push(
                "CODEWARD_SMTP_URL uses smtp:// without ?tls=required: codes cross the network \
                 in clear text"
                    .to_owned(),
            );
        }
        if production && self.metrics_listen.is_none() {
            warnings.push(
                "CODEWARD_METRICS_LISTEN is unset: in production /metrics is never served on the \
                 main listener, so no metrics are served; set it to a private address to scrape \
                 them"
                    .to_owned(),
            );
        }
        if self.tokens.signing_key_prepublish_secs >= self.tokens.signing_key_rotation_secs {
            problems.push(
                "CODEWARD_SIGNING_KEY_PREPUBLISH_SECS must be shorter than                  CODEWARD_SIGNING_KEY_ROTATION_SECS"
                    .to_owned(),
            );
        }
        if self.tokens.token_audience.trim().is_empty() {
            problems.push("CODEWARD_TOKEN_AUDIENCE must not be empty".to_owned());
        }
        if self
            .tokens
            .issuer
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            problems.push("CODEWARD_ISSUER must not be empty when set".to_owned());
        }
        if production && self.tokens.issuer.is_none() && self.tokens.public_url.is_none() {
            warnings.push(format!(
                "CODEWARD_PUBLIC_URL is unset: access tokens name {:?} as their issuer; set it to                  the URL clients use, the same on every instance",
                self.issuer()
            ));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            problems.push(format!("CODEWARD_LOG is not a valid filter: {error}"));
        }

        // Without a usable key the problems above say why.
        if let (true, Some(peppers)) = (problems.is_empty(), Peppers::new(peppers)) {
            self.peppers = peppers;
            Ok(warnings)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Whether a sender's domain belongs in the wide world: not `localhost` (or under it), not a
/// `.local` (mDNS) name, not an IP address. Mail from those fails SPF and DKIM checks and
/// cannot be replied to, so it lands in spam or is refused.
fn is_public_domain(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let literal = domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok();
    !(literal
        || domain == "localhost"
        || domain.ends_with(".localhost")
        || domain.ends_with(".local"))
}

#[cfg(test)]
mod tests {
    use super::is_public_domain;

    #[test]
    fn only_domains_of_the_wide_world_count_as_public() {
        for (domain, public) in [
            ("example.com", true),
            ("mail.example.co.uk", true),
            ("localhost", false),
            ("LocalHost.", false),
            ("app.localhost", false),
            ("printer.local", false),
            ("localhost.example.com", true),
            ("127.0.0.1", false),
            ("[127.0.0.1]", false),
            ("[IPv6:::1]", false),
            ("::1", false),
        ] {
            assert_eq!(is_public_domain(domain), public, "{domain}");
        }
    }
}
