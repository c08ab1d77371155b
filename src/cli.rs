//! The command line: subcommands and the global configuration flags.

pub mod api_key;
pub mod users;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;

pub use api_key::ApiKeyAction;
pub use users::UsersAction;

#[derive(Debug, Parser)]
#[command(
    name = "codeward",
    version,
    about = "An OTP-centric authentication server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// Parses the command line and the `CODEWARD_*` variables; on a refusal, prints it and
    /// exits (status 2, or 0 for `--help`).
    pub fn matches() -> clap::ArgMatches {
        let args: Vec<OsString> = std::env::args_os().collect();
        Self::command()
            .try_get_matches_from(&args)
            .unwrap_or_else(|error| {
                name_the_variable(error, &args, |name| std::env::var_os(name).is_some()).exit()
            })
    }
}

/// `error` naming the environment variable instead of the flag when the refused value came
/// from the variable: clap names the flag either way, and an operator who set
/// `CODEWARD_LISTEN=8080` has no `--listen` anywhere to look for. clap's reason, its exit
/// status and its help hint stay as they are.
pub fn name_the_variable(
    mut error: clap::Error,
    args: &[OsString],
    is_set: impl Fn(&str) -> bool,
) -> clap::Error {
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return error;
    }
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    // The context holds the flag as clap prints it, `--listen <LISTEN>`: find it by that. An
    // argument prints so only once its command is built.
    let mut command = Cli::command();
    command.build();
    let Some(arg) = command
        .get_arguments()
        .find(|arg| arg.to_string() == *invalid)
    else {
        return error;
    };
    let (Some(long), Some(variable)) = (arg.get_long(), arg.get_env()) else {
        return error;
    };
    let variable = variable.to_string_lossy().into_owned();
    let flag = format!("--{long}");
    let on_command_line = args.iter().skip(1).any(|arg| {
        let arg = arg.to_string_lossy();
        arg == flag || arg.starts_with(&format!("{flag}="))
    });
    if !on_command_line && is_set(&variable) {
        error.insert(ContextKind::InvalidArg, ContextValue::String(variable));
    }
    error
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Apply, roll back or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Inspect or repair the email outbox.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Inspect or repair the webhook outbox.
    Webhooks {
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Create, list or revoke API keys (for the app's backend and operators' tools).
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// List, show, disable, enable or delete accounts, or end their sessions (as the admin
    /// API does).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Remove finished rows now (what `serve` does on a timer), e.g. from cron.
    Purge,
    /// List or rotate the keys that sign access tokens.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print the OpenAPI document (YAML unless --json).
    Openapi {
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print it, secrets masked.
    CheckConfig,
    /// Print the configuration table of docs/operations.md (for maintainers).
    #[command(hide = true)]
    ConfigTable,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back migrations, newest first.
    Down {
        /// How many to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Count messages by status and show the age of the oldest unsent one.
    Status,
    /// Requeue dead messages that can still be useful (not expired, carrying no code).
    RetryDead,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksAction {
    /// Count events by status and show the age of the oldest undelivered one.
    Status,
    /// Requeue every dead event (attempts reset); each user's events still go out in order.
    RetryDead,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// List the signing keys: which one signs, which are published, until when.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start a rotation: a new key is published now and signs once pre-published
    /// (CODEWARD_SIGNING_KEY_PREPUBLISH_SECS).
    Rotate {
        /// The new key signs at once (a leaked key). Backends that cached the key set before
        /// it was published refuse its tokens until they fetch the set again.
        #[arg(long)]
        now: bool,
    },
}
