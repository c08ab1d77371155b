//! The command line: subcommands and the global configuration flags.

pub mod api_key;
pub mod users;

use clap::{Parser, Subcommand};

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
