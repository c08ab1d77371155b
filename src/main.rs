//! The `codeward` binary: parse the command line, set up logging, run the chosen command.

use std::process::ExitCode;

use clap::FromArgMatches;
use codeward::cli::{Cli, Command, KeysAction, MigrateAction, OutboxAction, WebhooksAction};
use codeward::config::Config;
use codeward::core::mail::outbox;
use codeward::http as api;
use codeward::infra::{db, telemetry};
use codeward::startup::Application;
use migration::{Migrator, MigratorTrait};

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::matches();
    let Cli {
        command,
        mut config,
    } = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let command = command.unwrap_or(Command::Serve);

    // These two print documents and need no valid configuration.
    match command {
        Command::Openapi { json } => {
            println!(
                "{}",
                if json {
                    api::spec_json()
                } else {
                    api::spec_yaml()
                }
            );
            return ExitCode::SUCCESS;
        }
        Command::ConfigTable => {
            print!("{}", codeward::config::markdown_table());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }

    let warnings = match config.validate() {
        Ok(warnings) => warnings,
        Err(error) => {
            eprintln!("codeward: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log, config.log_format);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }

    let result = match command {
        Command::CheckConfig => {
            check_config(&config, &matches);
            Ok(())
        }
        Command::Serve => serve(config).await,
        Command::Migrate { action } => migrate(&config, action).await,
        Command::Outbox { action } => outbox(&config, action).await,
        Command::Webhooks { action } => webhooks(&config, action).await,
        Command::Purge => purge(&config).await,
        Command::Keys { action } => keys(&config, action).await,
        // Its refusals (an unknown id) are said to the operator, with an exit code of their own.
        Command::ApiKey { action } => match codeward::cli::api_key::run(&config, action).await {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Users { action } => match codeward::cli::users::run(&config, action).await {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Openapi { .. } | Command::ConfigTable => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", telemetry::each_cause_once(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: &Config, matches: &clap::ArgMatches) {
    println!("configuration is valid; effective settings:");
    for (name, value) in config.describe(matches) {
        println!("{name}={value}");
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = db::connect(config).await?;
    match action {
        MigrateAction::Up => db::migrate_up(&db, config).await?,
        MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
        MigrateAction::Status => {
            for migration in Migrator::get_migration_with_status(&db).await? {
                println!("{}\t{}", migration.status(), migration.name());
            }
        }
    }
    Ok(())
}

async fn outbox(config: &Config, action: OutboxAction) -> anyhow::Result<()> {
    let db = db::connect(config).await?;
    let now = chrono::Utc::now();
    match action {
        OutboxAction::Status => {
            let status = outbox::status(&db, now).await?;
            println!("pending\t{}", status.pending);
            println!("sending\t{}", status.sending);
            println!("sent\t{}", status.sent);
            println!("dead\t{}", status.dead);
            match status.oldest_unsent_age {
                Some(age) => println!("oldest unsent\t{}s", age.num_seconds()),
                None => println!("oldest unsent\t-"),
            }
        }
        OutboxAction::RetryDead => {
            let result = outbox::retry_dead(&db, now).await?;
            println!("requeued {} dead message(s)", result.requeued);
            if result.skipped_code_messages > 0 {
                println!(
                    "left {} dead code message(s): their code was scrubbed; users request a new code",
                    result.skipped_code_messages
                );
            }
            if result.skipped_expired > 0 {
                println!("left {} expired message(s)", result.skipped_expired);
            }
        }
    }
    Ok(())
}

async fn webhooks(config: &Config, action: WebhooksAction) -> anyhow::Result<()> {
    use codeward::core::webhooks::outbox as webhook_outbox;
    let db = db::connect(config).await?;
    let now = chrono::Utc::now();
    match action {
        WebhooksAction::Status => {
            let status = webhook_outbox::status(&db, now).await?;
            println!("pending\t{}", status.pending);
            println!("sending\t{}", status.sending);
            println!("delivered\t{}", status.done);
            println!("dead\t{}", status.dead);
            match status.oldest_unsent_age {
                Some(age) => println!("oldest undelivered\t{}s", age.num_seconds()),
                None => println!("oldest undelivered\t-"),
            }
            if config.webhook_url.is_none() {
                eprintln!(
                    "note: CODEWARD_WEBHOOK_URL is unset here; no events are recorded or sent"
                );
            }
        }
        WebhooksAction::RetryDead => {
            let requeued = webhook_outbox::retry_dead(&db, now).await?;
            println!("requeued {requeued} dead event(s)");
        }
    }
    Ok(())
}

async fn purge(config: &Config) -> anyhow::Result<()> {
    let db = db::connect(config).await?;
    let retention = codeward::core::housekeeping::Retention::from_config(config);
    let purged = codeward::core::housekeeping::purge(&db, chrono::Utc::now(), &retention).await?;
    for (table, rows) in purged.by_table() {
        println!("{table}\t{rows}");
    }
    Ok(())
}

async fn keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    use codeward::core::keys::{Keys, Rotate, store};
    let db = db::connect(config).await?;
    let now = chrono::Utc::now();
    match action {
        KeysAction::List { json } => {
            let keys = store::all(&db).await?;
            if json {
                let listed: Vec<_> = keys.iter().map(|key| store::listed(key, now)).collect();
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                println!(
                    "kid\talgorithm\tstate\tpublished\tcreated\tactivated\tretired\tpublished until\tpepper"
                );
                let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
                };
                for key in &keys {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        key.id,
                        key.algorithm,
                        key.state,
                        if store::is_published(key, now) {
                            "yes"
                        } else {
                            "no"
                        },
                        key.created_at.to_rfc3339(),
                        time(key.activated_at),
                        time(key.retired_at),
                        time(key.published_until),
                        key.pepper_key_id,
                    );
                }
            }
        }
        KeysAction::Rotate { now: at_once } => {
            let rotate = if at_once { Rotate::Now } else { Rotate::Soon };
            let done = Keys::new(db::Connections::one(db), config)
                .maintain(now, rotate)
                .await?;
            match (&done.created, &done.promoted) {
                (_, Some(kid)) => println!("signing with {kid} from now on"),
                (Some((kid, _)), None) => println!(
                    "published {kid}; it signs in {} s, after pre-publication",
                    config.tokens.signing_key_prepublish_secs
                ),
                (None, None) => println!(
                    "a rotation is already under way; `codeward keys list` shows the next key"
                ),
            }
        }
    }
    Ok(())
}
