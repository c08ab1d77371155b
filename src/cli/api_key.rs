//! `codeward api-key`: an operator creates, lists and revokes API keys. A new key is printed
//! once, alone on one line of standard output, so `KEY=$(codeward api-key create …)` captures
//! it and nothing else; what a person should read goes to standard error.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use serde::Serialize;
use uuid::Uuid;

use crate::config::Config;
use crate::core::api_keys::{self, ApiKeyRecord, Revocation};
use crate::domain::{ApiKeyName, Scope};
use crate::infra::db;

#[derive(Debug, Subcommand)]
pub enum ApiKeyAction {
    /// Make a key and print it once, alone on one line of standard output.
    Create {
        /// What the key is for, to recognise it in `list` (1 to 100 characters).
        #[arg(long, value_parser = parse_name)]
        name: ApiKeyName,
        /// What the key may do: `introspect` or `admin`; repeat the flag to give both.
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// List every key, revoked ones too (never the keys themselves).
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        /// The key's id, as `list` shows it.
        id: Uuid,
    },
}

fn parse_name(raw: &str) -> Result<ApiKeyName, String> {
    ApiKeyName::parse(raw).map_err(str::to_owned)
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    Scope::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.name()).collect();
        format!("unknown scope; the scopes are {}", known.join(", "))
    })
}

/// Runs the action; a refusal (an unknown id) is said on standard error and fails the exit
/// code, while a failure of the machinery comes back as the error.
pub async fn run(config: &Config, action: ApiKeyAction) -> anyhow::Result<ExitCode> {
    let db = db::connect(config).await?;
    let now = Utc::now();
    match action {
        ApiKeyAction::Create { name, scopes } => {
            let created = api_keys::create(&db, now, &name, &scopes).await?;
            eprintln!(
                "created API key {} ({}); it is shown once, on the next line: store it now",
                created.id,
                name.as_str()
            );
            println!("{}", created.key.expose());
        }
        ApiKeyAction::List { json } => {
            let keys = api_keys::list(&db).await?;
            if json {
                let listed: Vec<ListedKey> = keys.iter().map(ListedKey::from).collect();
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                print!("{}", table(&keys));
            }
        }
        ApiKeyAction::Revoke { id } => match api_keys::revoke(&db, now, id).await? {
            Revocation::Revoked => println!("revoked API key {id}"),
            Revocation::AlreadyRevoked => println!("API key {id} was already revoked"),
            Revocation::NotFound => {
                eprintln!(
                    "codeward: no API key has the id {id}; `codeward api-key list` shows them"
                );
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// One key of `list --json`; a time it does not have is absent, not `null`.
#[derive(Serialize)]
struct ListedKey<'a> {
    id: Uuid,
    name: &'a str,
    scopes: Vec<&'static str>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a ApiKeyRecord> for ListedKey<'a> {
    fn from(key: &'a ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            name: &key.name,
            scopes: key.scopes.iter().map(|scope| scope.name()).collect(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// The keys as a table a person reads in a terminal, columns padded to their widest cell.
fn table(keys: &[ApiKeyRecord]) -> String {
    let time = |at: Option<DateTime<Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    };
    let mut rows =
        vec![["ID", "NAME", "SCOPES", "CREATED", "LAST USED", "REVOKED"].map(str::to_owned)];
    rows.extend(keys.iter().map(|key| {
        let scopes: Vec<&str> = key.scopes.iter().map(|scope| scope.name()).collect();
        [
            key.id.to_string(),
            key.name.clone(),
            scopes.join(" "),
            time(Some(key.created_at)),
            time(key.last_used_at),
            time(key.revoked_at),
        ]
    }));
    let widths: Vec<usize> = (0..6)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_its_columns_and_marks_missing_times() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let key = ApiKeyRecord {
            id: Uuid::nil(),
            name: "billing backend".to_owned(),
            scopes: vec![Scope::Introspect, Scope::Admin],
            created_at: at,
            last_used_at: None,
            revoked_at: Some(at),
        };

        let printed = table(&[key]);

        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 2, "{printed}");
        assert!(lines[0].starts_with("ID  "), "{printed}");
        let name_at = lines[0].find("NAME").unwrap();
        assert_eq!(lines[1].find("billing backend"), Some(name_at), "{printed}");
        assert!(
            lines[1].ends_with(
                "introspect admin  2026-01-01T00:00:00Z  -          2026-01-01T00:00:00Z"
            ),
            "{printed}"
        );
    }
}
