//! The email worker inside `serve`: claims due outbox rows, renders and sends them, and
//! records the outcome; the claiming, retry policy and recording are the generic queue's
//! (`core::queue`).

use std::sync::Arc;
use std::time::Duration;

use entity::email_outbox;
use lettre::message::{Mailbox, MultiPart};
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::config::Config;
use crate::core::mail::outbox::{self, OutboxSignal};
use crate::core::mail::seal::{CodeSeal, OpenError};
use crate::core::mail::templates::{Message, Templates};
use crate::core::mail::transport::{SendError, Transport};
use crate::core::queue::{self, Outcome, RetryPolicy};
use crate::infra::clock::Clock;

/// Tuning of the worker, from the configuration.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub from: Mailbox,
    pub app_name: String,
    pub batch_size: u32,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            from: config
                .mail_from
                .parse()
                .map_err(|e| anyhow::anyhow!("CODEWARD_MAIL_FROM is not a mailbox: {e}"))?,
            app_name: config.app_name.clone(),
            batch_size: config.email_batch_size,
            lease: Duration::from_secs(config.email_lease_secs),
            poll_interval: Duration::from_millis(config.email_poll_ms),
            retry: RetryPolicy {
                base: Duration::from_millis(config.email_retry_base_ms),
                max: Duration::from_secs(config.email_retry_max_secs),
                max_attempts: config.email_max_attempts,
            },
        })
    }
}

pub struct Worker {
    pub db: DatabaseConnection,
    pub transport: Arc<Transport>,
    pub templates: Arc<Templates>,
    pub settings: WorkerSettings,
    pub signal: OutboxSignal,
    pub clock: Clock,
    pub metrics: crate::infra::metrics::Metrics,
    /// Opens the sealed codes (the same peppers as the code engine's).
    pub seal: CodeSeal,
}

impl Worker {
    /// Delivers until `stop` turns true; a batch in flight is finished first.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        tracing::info!(transport = %self.transport.describe(), "email delivery worker started");
        let (signal, poll) = (self.signal.clone(), self.settings.poll_interval);
        // A full batch suggests more is due: go again without waiting.
        let eager_at = self.settings.batch_size as usize;
        queue::run("outbox", &signal, poll, eager_at, stop, || {
            self.deliver_due()
        })
        .await;
        tracing::info!("email delivery worker stopped");
    }

    /// Expires stale messages, claims a batch and sends it concurrently; returns the batch size.
    pub async fn deliver_due(&self) -> Result<usize, sea_orm::DbErr> {
        let now = self.clock.now();
        let expired = outbox::expire(&self.db, now).await?;
        if expired > 0 {
            tracing::warn!(
                count = expired,
                "emails expired before they could be delivered"
            );
        }
        let lease_until =
            now + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX);
        let batch = outbox::claim(&self.db, now, lease_until, self.settings.batch_size).await?;
        let claimed = batch.len();
        let mut sends = tokio::task::JoinSet::new();
        for row in batch {
            let worker = self.clone_parts();
            sends.spawn(async move { worker.deliver(row).await });
        }
        while let Some(result) = sends.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "email delivery task failed");
            }
        }
        Ok(claimed)
    }

    fn clone_parts(&self) -> Self {
        Self {
            db: self.db.clone(),
            transport: self.transport.clone(),
            templates: self.templates.clone(),
            settings: self.settings.clone(),
            signal: self.signal.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            seal: self.seal.clone(),
        }
    }

    async fn deliver(&self, row: email_outbox::Model) {
        let Some(token) = row.claim_token else { return };
        let outcome = match self.build(&row) {
            Ok(message) => {
                self.transport
                    .send(&message, &mailbox_file_stem(&row))
                    .await
            }
            Err(error) => Err(error),
        };
        let decision = match outcome {
            Ok(path) => {
                let path = path.map(|p| p.display().to_string());
                tracing::info!(id = %row.id, template = %row.template, attempts = row.attempts, mailbox_file = path, "email sent");
                self.metrics.email("sent");
                Outcome::Done(self.clock.now())
            }
            Err(SendError::Permanent(error)) => {
                tracing::error!(id = %row.id, template = %row.template, %error, "email rejected permanently");
                self.metrics.email("dead");
                Outcome::Dead(error)
            }
            Err(SendError::Transient(error)) => {
                let attempts = u32::try_from(row.attempts).unwrap_or(0);
                match self.settings.retry.next_attempt(attempts, self.clock.now()) {
                    None => {
                        tracing::error!(id = %row.id, template = %row.template, %error, attempts = row.attempts, "email given up after too many attempts");
                        self.metrics.email("dead");
                        Outcome::Dead(format!("gave up after {} attempts: {error}", row.attempts))
                    }
                    Some(retry_at) if retry_at >= row.expires_at => {
                        tracing::error!(id = %row.id, template = %row.template, %error, "email expires before its next attempt");
                        self.metrics.email("dead");
                        Outcome::Dead(format!("expired before it could be delivered: {error}"))
                    }
                    Some(retry_at) => {
                        tracing::warn!(id = %row.id, template = %row.template, %error, attempts = row.attempts, %retry_at, "email delivery failed; will retry");
                        self.metrics.email("retried");
                        Outcome::Retry(retry_at, error)
                    }
                }
            }
        };
        queue::record_outcome(&self.db, &outbox::QUEUE, row.id, token, &decision).await;
    }

    /// Renders the row into a MIME message; anything wrong here cannot heal by retrying.
    fn build(&self, row: &email_outbox::Model) -> Result<lettre::Message, SendError> {
        let permanent =
            |what: &str, e: &dyn std::fmt::Display| SendError::Permanent(format!("{what}: {e}"));
        let message = Message::from_name(&row.template)
            .ok_or_else(|| permanent("unknown template", &row.template))?;
        let mut variables: serde_json::Value =
            serde_json::from_str(&row.context).map_err(|e| permanent("unreadable context", &e))?;
        if let Some(object) = variables.as_object_mut() {
            object.insert("app_name".into(), self.settings.app_name.clone().into());
            object.insert("email".into(), row.recipient.clone().into());
            if let Some(stored) = &row.code {
                let code = open_code(&self.seal, stored, row)
                    .map_err(|e| permanent("cannot open the sealed code", &e))?;
                object.insert("code".into(), code.expose_secret().into());
            }
        }
        let rendered = self
            .templates
            .render(message, &row.locale, &variables)
            .map_err(|e| permanent("template error", &e))?;
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e| permanent("invalid recipient", &e))?;
        lettre::Message::builder()
            .from(self.settings.from.clone())
            .to(to)
            .message_id(Some(message_id(row.id, &self.settings.from)))
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| permanent("cannot build message", &e))
    }
}

/// The clear code of a row. A row enqueued before codes were sealed holds its six digits in
/// clear; it is sent as it is (such rows are gone within a code's lifetime).
fn open_code(
    seal: &CodeSeal,
    stored: &str,
    row: &email_outbox::Model,
) -> Result<SecretString, OpenError> {
    if stored.len() == 6 && stored.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SecretString::from(stored));
    }
    seal.open(stored, &row.recipient, &row.template)
}

/// `<row id@sender domain>`: strict receivers expect a Message-ID on the sender's own domain,
/// and deriving it from the outbox row (never from its content, which holds the code) makes
/// every retry of one row the same message to a receiver that has already seen an attempt.
pub fn message_id(row: uuid::Uuid, from: &Mailbox) -> String {
    format!("<{row}@{}>", from.email.domain())
}

/// `<created, sortable>-<id>`: files in the mailbox list in the order they were enqueued.
fn mailbox_file_stem(row: &email_outbox::Model) -> String {
    format!("{}-{}", row.created_at.format("%Y%m%dT%H%M%S%.6fZ"), row.id)
}
