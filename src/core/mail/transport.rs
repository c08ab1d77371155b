//! Where emails go: an SMTP relay (lettre's async transport), or in development a mailbox
//! folder of `.eml` files.

use std::path::PathBuf;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::Config;

pub enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The URL without its password, for logs.
        described: String,
    },
    Mailbox(PathBuf),
}

/// Why a message was not delivered, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Network trouble, a timeout or an SMTP 4xx: retry later.
    #[error("{0}")]
    Transient(String),
    /// An SMTP 5xx or a message that cannot be built: retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl Transport {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.smtp_url {
            Some(url) => {
                let timeout = Duration::from_secs(config.smtp_timeout_secs);
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("CODEWARD_SMTP_URL cannot be used: {e}"))?
                    .timeout(Some(timeout))
                    .build();
                Ok(Self::Smtp {
                    transport,
                    described: url.masked(),
                })
            }
            None => Ok(Self::Mailbox(config.mailbox_dir.clone())),
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { described, .. } => format!("SMTP relay {described}"),
            Self::Mailbox(dir) => format!(
                "development mailbox folder {} (no email leaves this machine)",
                dir.display()
            ),
        }
    }

    /// Sends one message. The mailbox returns the file it wrote.
    pub async fn send(
        &self,
        message: &lettre::Message,
        file_stem: &str,
    ) -> Result<Option<PathBuf>, SendError> {
        match self {
            Self::Smtp { transport, .. } => {
                transport.send(message.clone()).await.map_err(classify)?;
                Ok(None)
            }
            Self::Mailbox(dir) => write_to_mailbox(dir, message, file_stem)
                .await
                .map(Some)
                .map_err(|e| SendError::Transient(format!("cannot write to the mailbox: {e}"))),
        }
    }
}

fn classify(error: lettre::transport::smtp::Error) -> SendError {
    // Only an explicit 5xx reply is final; connection failures and timeouts may heal.
    if error.is_permanent() {
        SendError::Permanent(error.to_string())
    } else {
        SendError::Transient(error.to_string())
    }
}

/// Writes `<stem>.eml` atomically (temporary file, then rename), so a reader never sees half a
/// message.
async fn write_to_mailbox(
    dir: &std::path::Path,
    message: &lettre::Message,
    stem: &str,
) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{stem}.eml"));
    let partial = dir.join(format!(".{stem}.eml.partial"));
    tokio::fs::write(&partial, message.formatted()).await?;
    tokio::fs::rename(&partial, &path).await?;
    Ok(path)
}
