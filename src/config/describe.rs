//! The settings as an operator reads them: `check-config`'s effective values and the
//! documentation's table, both derived from the command-line definition, so neither can miss a
//! setting.

use clap::{ArgMatches, Args, Command};

use crate::config::{Config, Pepper, SmtpUrl};

/// Every setting's definition (the flags of `Config`, each with its `CODEWARD_*` variable).
fn definition() -> Command {
    Config::augment_args(Command::new("codeward"))
}

impl Config {
    /// The effective configuration as `(VARIABLE, value)` pairs, one per setting, in the order
    /// of the definition: each value as given (flag or variable) or its default. Secrets are
    /// masked: the URLs show no password, the peppers only their key ids, and any other value
    /// hidden from the environment listing prints as `<secret>`.
    pub fn describe(&self, matches: &ArgMatches) -> Vec<(String, String)> {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "(none)".to_owned()
            } else {
                items.join(",")
            }
        };
        definition()
            .get_arguments()
            .filter_map(|arg| {
                let variable = arg.get_env()?.to_string_lossy().into_owned();
                let value = match arg.get_id().as_str() {
                    "pepper_setting" => self.peppers.current().masked(),
                    "previous_peppers_setting" => {
                        list(self.peppers.retired().map(Pepper::masked).collect())
                    }
                    "database_url" => self.database_url.masked(),
                    "webhook_url" => self.webhook_url.as_ref().map_or_else(
                        || "(unset: no webhooks)".to_owned(),
                        |url| super::secrets::mask_url_password(url.as_str()),
                    ),
                    "webhook_secret_setting" => self
                        .webhook_secret
                        .as_ref()
                        .map_or_else(|| "(unset)".to_owned(), |_| "<secret>".to_owned()),
                    "smtp_url" => self.smtp_url.as_ref().map_or_else(
                        || "(unset: development mailbox folder)".to_owned(),
                        SmtpUrl::masked,
                    ),
                    _ if arg.is_hide_env_values_set() => "<secret>".to_owned(),
                    id => match matches.get_raw(id) {
                        Some(values) => list(
                            values
                                .map(|value| value.to_string_lossy().into_owned())
                                .collect(),
                        ),
                        None => "(unset)".to_owned(),
                    },
                };
                Some((variable, value))
            })
            .collect()
    }
}

/// The configuration table of docs/operations.md, generated from the CLI definition so they cannot drift.
pub fn markdown_table() -> String {
    let command = definition();
    let mut out = String::from("| variable | flag | default | meaning |\n|---|---|---|---|\n");
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let default = if default.is_empty() {
            "–".to_owned()
        } else {
            format!("`{default}`")
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " "))
            .unwrap_or_default()
            .replace('|', "\\|");
        let flag = arg.get_long().map_or(String::new(), |l| format!("`--{l}`"));
        out.push_str(&format!(
            "| `{}` | {flag} | {default} | {help} |\n",
            env.to_string_lossy()
        ));
    }
    out
}
