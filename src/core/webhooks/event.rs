//! The events codeward reports and what each one's `data` holds: ids, addresses where they
//! matter, a session or API key id; never a code, token, password or key.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Every event type, as the receiver sees it in `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    UserCreated,
    UserSignedIn,
    UserEmailChanged,
    UserPasswordChanged,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    SessionReplayDetected,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        Self::UserCreated,
        Self::UserSignedIn,
        Self::UserEmailChanged,
        Self::UserPasswordChanged,
        Self::UserDeleted,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::SessionReplayDetected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserSignedIn => "user.signed_in",
            Self::UserEmailChanged => "user.email_changed",
            Self::UserPasswordChanged => "user.password_changed",
            Self::UserDeleted => "user.deleted",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::SessionReplayDetected => "session.replay_detected",
        }
    }
}

/// An event's `data`: members without a value are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Data {
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
}

impl Data {
    fn user(user_id: Uuid) -> Self {
        Self {
            user_id,
            email: None,
            previous_email: None,
            session_id: None,
            api_key_id: None,
        }
    }
}

/// One event to report. Built only by the constructors below, so no other member can slip in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub data: Data,
}

impl Event {
    /// An account came to be: a sign-up verified, or a first code sign-in verified an address
    /// that had no verified account.
    pub fn user_created(user_id: Uuid, email: &str) -> Self {
        Self::new(
            EventType::UserCreated,
            Data {
                email: Some(email.to_owned()),
                ..Data::user(user_id)
            },
        )
    }

    /// A new session: sign-in by password or code, or sign-up verification.
    pub fn user_signed_in(user_id: Uuid, email: &str, session_id: Uuid) -> Self {
        Self::new(
            EventType::UserSignedIn,
            Data {
                email: Some(email.to_owned()),
                session_id: Some(session_id),
                ..Data::user(user_id)
            },
        )
    }

    pub fn user_email_changed(user_id: Uuid, email: &str, previous_email: &str) -> Self {
        Self::new(
            EventType::UserEmailChanged,
            Data {
                email: Some(email.to_owned()),
                previous_email: Some(previous_email.to_owned()),
                ..Data::user(user_id)
            },
        )
    }

    /// A password set or changed: `change_password` or `reset_password`.
    pub fn user_password_changed(user_id: Uuid) -> Self {
        Self::new(EventType::UserPasswordChanged, Data::user(user_id))
    }

    /// The account is gone; `email` is the address it had. `api_key_id` names the API key of
    /// an admin deletion.
    pub fn user_deleted(user_id: Uuid, email: &str, api_key_id: Option<Uuid>) -> Self {
        Self::new(
            EventType::UserDeleted,
            Data {
                email: Some(email.to_owned()),
                api_key_id,
                ..Data::user(user_id)
            },
        )
    }

    /// An operator disabled the account: with the API key `api_key_id`, or (`None`) from the
    /// command line.
    pub fn user_disabled(user_id: Uuid, email: &str, api_key_id: Option<Uuid>) -> Self {
        Self::new(
            EventType::UserDisabled,
            Data {
                email: Some(email.to_owned()),
                api_key_id,
                ..Data::user(user_id)
            },
        )
    }

    /// An operator enabled the account again: with the API key `api_key_id`, or (`None`) from
    /// the command line.
    pub fn user_enabled(user_id: Uuid, email: &str, api_key_id: Option<Uuid>) -> Self {
        Self::new(
            EventType::UserEnabled,
            Data {
                email: Some(email.to_owned()),
                api_key_id,
                ..Data::user(user_id)
            },
        )
    }

    /// A rotated refresh token came back after its grace: the session `session_id` was ended.
    pub fn session_replay_detected(user_id: Uuid, session_id: Uuid) -> Self {
        Self::new(
            EventType::SessionReplayDetected,
            Data {
                session_id: Some(session_id),
                ..Data::user(user_id)
            },
        )
    }

    fn new(kind: EventType, data: Data) -> Self {
        Self { kind, data }
    }

    /// The body the receiver gets: `{"type", "timestamp", "data"}`, `timestamp` the moment the
    /// event happened (RFC 3339, UTC).
    pub fn body(&self, at: DateTime<Utc>) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            timestamp: String,
            data: &'a Data,
        }
        let body = Body {
            kind: self.kind.name(),
            timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            data: &self.data,
        };
        // Cannot fail: strings, uuids and options of them.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_leaves_out_members_without_a_value() {
        let user = Uuid::nil();
        let at = DateTime::parse_from_rfc3339("2026-11-27T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);

        let body: serde_json::Value =
            serde_json::from_str(&Event::user_password_changed(user).body(at)).unwrap();

        assert_eq!(
            body,
            serde_json::json!({
                "type": "user.password_changed",
                "timestamp": "2026-11-27T20:00:00.000Z",
                "data": {"user_id": user},
            })
        );
    }

    #[test]
    fn admin_events_name_the_api_key() {
        let (user, key) = (Uuid::new_v4(), Uuid::new_v4());
        for event in [
            Event::user_disabled(user, "a@example.com", Some(key)),
            Event::user_enabled(user, "a@example.com", Some(key)),
        ] {
            assert_eq!(event.data.api_key_id, Some(key));
            assert_eq!(event.data.user_id, user);
        }
    }
}
