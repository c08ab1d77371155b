//! Email templates: compiled into the binary from `templates/`, overridable file by file from
//! `CODEWARD_TEMPLATE_DIR`, rendered with minijinja (HTML auto-escaped).

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

/// The messages codeward sends; the name is the template file stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A code proving the address at sign-up.
    VerifyEmail,
    /// A code to choose a new password.
    ResetPassword,
    /// A code to sign in without a password.
    Login,
    /// A code proving the new address of an email change (sent to the new address).
    ChangeEmail,
    /// A code renewing the session's authentication before a sensitive operation.
    Reauthenticate,
    /// Someone tried to sign up with an address that already has an account (no code).
    AccountExists,
    /// Notice after a password reset or change.
    PasswordChanged,
    /// An email change asked for an address that already has an account (no code).
    EmailTaken,
    /// Notice to the old address after an email change, naming the new one masked.
    EmailChanged,
    /// Notice after the account was deleted; sent when no user row is left.
    AccountDeleted,
}

impl Message {
    pub const ALL: [Message; 10] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::Login,
        Self::ChangeEmail,
        Self::Reauthenticate,
        Self::AccountExists,
        Self::PasswordChanged,
        Self::EmailTaken,
        Self::EmailChanged,
        Self::AccountDeleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::Login => "login",
            Self::ChangeEmail => "change_email",
            Self::Reauthenticate => "reauthenticate",
            Self::AccountExists => "account_exists",
            Self::PasswordChanged => "password_changed",
            Self::EmailTaken => "email_taken",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the message carries a code (and so cannot be resent once scrubbed).
    pub fn carries_code(self) -> bool {
        matches!(
            self,
            Self::VerifyEmail
                | Self::ResetPassword
                | Self::Login
                | Self::ChangeEmail
                | Self::Reauthenticate
        )
    }

    /// Variables a real message of this kind provides, for start-up checks and previews.
    pub fn sample_context(self) -> Value {
        match self {
            Self::VerifyEmail
            | Self::ResetPassword
            | Self::Login
            | Self::ChangeEmail
            | Self::Reauthenticate => {
                json!({"code": "042917", "expires_in_minutes": 10})
            }
            Self::AccountExists | Self::EmailTaken => json!({}),
            Self::EmailChanged => json!({
                "new_email_masked": "n•••@example.com",
                "changed_at": "2026-11-22 09:41 UTC",
            }),
            Self::AccountDeleted => json!({"deleted_at": "2026-11-22 09:41 UTC"}),
            Self::PasswordChanged => json!({
                "changed_at": "2026-11-22 09:41 UTC",
                "device": "Pixel 9 <Chrome & Co>",
                "ip": "203.0.113.7",
            }),
        }
    }
}

/// A rendered message, ready to send.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The locales whose templates ship with codeward; `en` is the fallback.
pub const LOCALES: [&str; 2] = ["en", "es"];
pub const FALLBACK_LOCALE: &str = "en";

pub struct Templates {
    env: Environment<'static>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template override {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Invalid {
        name: String,
        source: minijinja::Error,
    },
}

impl Templates {
    /// Loads the built-in templates, then every `.txt`/`.html` file under `override_dir` on top,
    /// and renders every message in every locale once, so a broken template stops the start
    /// instead of an email.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // A variable missing from a context is a bug to surface, not a blank in an email.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        minijinja_embed::load_templates!(&mut env);
        if let Some(dir) = override_dir {
            for (name, source) in read_overrides(dir, dir)? {
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| TemplateError::Invalid { name, source })?;
            }
        }
        let templates = Self { env };
        for locale in LOCALES {
            for message in Message::ALL {
                let context = sample_variables(message, locale);
                templates
                    .render_in(message, locale, &context)
                    .map_err(|source| TemplateError::Invalid {
                        name: format!("{locale}/{}", message.name()),
                        source,
                    })?;
            }
        }
        Ok(templates)
    }

    /// The locale to render `requested` in: itself, else its language, else `en`.
    pub fn resolve_locale(&self, requested: &str, message: Message) -> String {
        let requested = requested.trim().to_ascii_lowercase().replace('_', "-");
        let language = requested.split('-').next().unwrap_or_default().to_owned();
        [requested, language]
            .into_iter()
            .find(|locale| {
                !locale.is_empty()
                    && self
                        .env
                        .get_template(&format!("{locale}/{}.subject.txt", message.name()))
                        .is_ok()
            })
            .unwrap_or_else(|| FALLBACK_LOCALE.to_owned())
    }

    /// Renders `message` for `requested` locale (with fallback). `variables` must be a JSON
    /// object holding the message's variables plus `app_name`, `email` and `locale`.
    pub fn render(
        &self,
        message: Message,
        requested_locale: &str,
        variables: &Value,
    ) -> Result<Rendered, minijinja::Error> {
        let locale = self.resolve_locale(requested_locale, message);
        let mut variables = variables.clone();
        if let Some(object) = variables.as_object_mut() {
            object.insert("locale".to_owned(), Value::from(locale.clone()));
        }
        self.render_in(message, &locale, &variables)
    }

    fn render_in(
        &self,
        message: Message,
        locale: &str,
        variables: &Value,
    ) -> Result<Rendered, minijinja::Error> {
        let context = minijinja::Value::from(minijinja::value::Serde(variables));
        let part = |suffix: &str| {
            self.env
                .get_template(&format!("{locale}/{}.{suffix}", message.name()))?
                .render(context.clone())
        };
        let subject = part("subject.txt")?;
        Ok(Rendered {
            // A header is one line, whatever an override template did.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// The variables of a sample `message`: what start-up checks and previews render.
pub fn sample_variables(message: Message, locale: &str) -> Value {
    let mut variables = message.sample_context();
    if let Some(object) = variables.as_object_mut() {
        object.insert("app_name".into(), json!("codeward"));
        object.insert("email".into(), json!("ada@example.com"));
        object.insert("locale".into(), json!(locale));
    }
    variables
}

fn read_overrides(root: &Path, dir: &Path) -> Result<Vec<(String, String)>, TemplateError> {
    let read_error = |path: &Path, source| TemplateError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        if path.is_dir() {
            found.extend(read_overrides(root, &path)?);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "txt" || ext == "html")
        {
            let source = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            found.push((name, source));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locale_falls_back_to_its_language_then_to_english() {
        let templates = Templates::load(None).unwrap();
        let cases = [
            ("es", "es"),
            ("es-MX", "es"),
            ("ES_ar", "es"),
            ("en-GB", "en"),
            ("fr", "en"),
            ("", "en"),
        ];
        for (requested, expected) in cases {
            assert_eq!(
                templates.resolve_locale(requested, Message::VerifyEmail),
                expected,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn the_code_leads_the_subject_and_the_first_line() {
        let templates = Templates::load(None).unwrap();
        for locale in LOCALES {
            for message in [Message::VerifyEmail, Message::ResetPassword] {
                let rendered = templates
                    .render(message, locale, &sample_variables(message, locale))
                    .unwrap();

                assert!(
                    rendered.subject.starts_with("042917 "),
                    "{locale}: {rendered:?}"
                );
                assert!(
                    rendered.text.starts_with("042917 "),
                    "{locale}: {rendered:?}"
                );
                assert!(rendered.html.contains(">042917</span>"), "{locale}");
                assert!(rendered.text.contains("10 "), "{locale}: expiry in minutes");
            }
        }
    }

    #[test]
    fn html_parts_escape_their_variables_and_text_parts_do_not() {
        let templates = Templates::load(None).unwrap();
        let variables = sample_variables(Message::PasswordChanged, "en");

        let rendered = templates
            .render(Message::PasswordChanged, "en", &variables)
            .unwrap();

        assert!(
            rendered.html.contains("Pixel 9 &lt;Chrome &amp; Co&gt;"),
            "{}",
            rendered.html
        );
        assert!(rendered.text.contains("Pixel 9 <Chrome & Co>"));
    }

    #[test]
    fn a_missing_variable_is_an_error_not_a_blank() {
        let templates = Templates::load(None).unwrap();

        let result = templates.render(Message::VerifyEmail, "en", &json!({"app_name": "x"}));

        assert!(result.is_err());
    }

    #[test]
    fn an_override_folder_replaces_single_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/account_exists.subject.txt"),
            "Custom: {{ app_name }}",
        )
        .unwrap();

        let templates = Templates::load(Some(dir.path())).unwrap();
        let variables = sample_variables(Message::AccountExists, "en");
        let overridden = templates
            .render(Message::AccountExists, "en", &variables)
            .unwrap();
        let untouched = templates
            .render(Message::AccountExists, "es", &variables)
            .unwrap();

        assert_eq!(overridden.subject, "Custom: codeward");
        assert!(untouched.subject.starts_with("Alguien"));
    }

    #[test]
    fn a_broken_override_stops_loading_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("layout.html"), "{% block content %}").unwrap();

        let error = Templates::load(Some(dir.path())).err().expect("refused");

        assert!(error.to_string().contains("layout.html"), "{error}");
    }
}
