//! `codeward users`: an operator lists, shows, disables, enables and deletes accounts and ends
//! their sessions from the command line, through the admin API's own use-cases. A table for
//! people, `--json` for scripts; every action is an audit event with no API key and the user
//! agent `codeward-cli`.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use serde::Serialize;
use uuid::Uuid;

use crate::app::admin::{self, Admin, AdminUser, ForUser, Operator};
use crate::config::Config;
use crate::core::codes::CodeEngine;
use crate::core::directory::UserCursor;
use crate::core::limits::AddressLimits;
use crate::core::webhooks::Webhooks;
use crate::core::webhooks::worker::WebhookSettings;
use crate::infra::clock::Clock;
use crate::infra::db;

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// List accounts, newest first, a page at a time.
    List {
        /// Only addresses starting with this (trimmed and lowercased first).
        #[arg(long)]
        email: Option<String>,
        /// Accounts per page, 1 to 100.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100))]
        limit: u64,
        /// Where to start: the `next_cursor` a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON (`{"items": [...], "next_cursor": "..."}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        /// The account's id.
        id: Uuid,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: its sessions and codes end, and it is answered like an unknown
    /// address until enabled.
    Disable {
        /// The account's id.
        id: Uuid,
        /// Print the account as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account again.
    Enable {
        /// The account's id.
        id: Uuid,
        /// Print the account as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an account and everything naming it; its address gets a notice.
    Delete {
        /// The account's id.
        id: Uuid,
    },
    /// End every session of an account.
    RevokeSessions {
        /// The account's id.
        id: Uuid,
    },
}

/// Runs the action; a refusal (an unknown id, a bad cursor) is said on standard error and
/// fails the exit code, while a failure of the machinery comes back as the error.
pub async fn run(config: &Config, action: UsersAction) -> anyhow::Result<ExitCode> {
    let db = db::connect(config).await?;
    let clock = Clock::default();
    let codes = CodeEngine::from_config(config);
    let address_limits = AddressLimits::from_config(config);
    // Events are recorded as the server records them; its worker delivers them (it polls).
    let webhooks = Webhooks::new(WebhookSettings::from_config(config).is_some());
    let admin = Admin {
        db: &db,
        clock: &clock,
        codes: &codes,
        address_limits: &address_limits,
        webhooks: &webhooks,
    };
    let operator = Operator::command_line();
    let unknown = |id: Uuid| -> anyhow::Result<ExitCode> {
        eprintln!("codeward: no account has the id {id}; `codeward users list` shows them");
        Ok(ExitCode::FAILURE)
    };
    match action {
        UsersAction::List {
            email,
            limit,
            cursor,
            json,
        } => {
            let after = match cursor.as_deref().map(UserCursor::decode) {
                None => None,
                Some(Some(cursor)) => Some(cursor),
                Some(None) => {
                    eprintln!("codeward: the cursor is not one `codeward users list` printed");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let prefix = email.map(|email| email.trim().to_lowercase());
            let page =
                admin::list_users(&admin, &operator, prefix.as_deref(), limit, after).await?;
            let next_cursor = page.next.map(|cursor| cursor.encode());
            if json {
                let listed = ListedPage {
                    items: page.users.iter().map(ListedUser::from).collect(),
                    next_cursor,
                };
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                print!("{}", table(&page.users));
                if let Some(next) = next_cursor {
                    eprintln!("more: codeward users list --cursor {next}");
                }
            }
        }
        UsersAction::Show { id, json } => match admin::get_user(&admin, &operator, id).await? {
            ForUser::Done(user) => print_user(&user, json)?,
            ForUser::UnknownUser => return unknown(id),
        },
        UsersAction::Disable { id, json } => {
            match admin::disable_user(&admin, &operator, id).await? {
                ForUser::Done(user) => print_user(&user, json)?,
                ForUser::UnknownUser => return unknown(id),
            }
        }
        UsersAction::Enable { id, json } => {
            match admin::enable_user(&admin, &operator, id).await? {
                ForUser::Done(user) => print_user(&user, json)?,
                ForUser::UnknownUser => return unknown(id),
            }
        }
        UsersAction::Delete { id } => match admin::delete_user(&admin, &operator, id).await? {
            ForUser::Done(()) => println!("deleted account {id}; a notice goes to its address"),
            ForUser::UnknownUser => return unknown(id),
        },
        UsersAction::RevokeSessions { id } => {
            match admin::revoke_user_sessions(&admin, &operator, id).await? {
                ForUser::Done(count) => println!("ended {count} session(s) of account {id}"),
                ForUser::UnknownUser => return unknown(id),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_user(user: &AdminUser, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&ListedUser::from(user))?);
    } else {
        print!("{}", table(std::slice::from_ref(user)));
    }
    Ok(())
}

/// A page of `list --json`, shaped as the admin API's `list_users` answer.
#[derive(Serialize)]
struct ListedPage<'a> {
    items: Vec<ListedUser<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// One account of `--json`, shaped as the admin API's `AdminUser` plus `disabled_at`; a
/// time it does not have is absent, not `null`.
#[derive(Serialize)]
struct ListedUser<'a> {
    id: Uuid,
    email: &'a str,
    email_verified: bool,
    has_password: bool,
    created_at: DateTime<Utc>,
    locale: &'a str,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sign_in_at: Option<DateTime<Utc>>,
    active_sessions: u64,
}

impl<'a> From<&'a AdminUser> for ListedUser<'a> {
    fn from(user: &'a AdminUser) -> Self {
        Self {
            id: user.account.id,
            email: &user.account.email,
            email_verified: user.account.email_verified,
            has_password: user.account.has_password,
            created_at: user.account.created_at,
            locale: &user.account.locale,
            disabled: user.disabled_at.is_some(),
            disabled_at: user.disabled_at,
            last_sign_in_at: user.last_sign_in_at,
            active_sessions: user.active_sessions,
        }
    }
}

/// The accounts as a table a person reads in a terminal, columns padded to their widest cell.
fn table(users: &[AdminUser]) -> String {
    let time = |at: Option<DateTime<Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    };
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    let mut rows = vec![
        [
            "ID",
            "EMAIL",
            "VERIFIED",
            "CREATED",
            "LAST SIGN-IN",
            "SESSIONS",
            "DISABLED",
        ]
        .map(str::to_owned),
    ];
    rows.extend(users.iter().map(|user| {
        [
            user.account.id.to_string(),
            user.account.email.clone(),
            yes_no(user.account.email_verified),
            time(Some(user.account.created_at)),
            time(user.last_sign_in_at),
            user.active_sessions.to_string(),
            time(user.disabled_at),
        ]
    }));
    let widths: Vec<usize> = (0..7)
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
