//! Email delivery: the outbox that commits a message with the change that caused it, the worker
//! that delivers it, the transports (SMTP or a development mailbox folder) and the templates.

pub mod outbox;
pub mod seal;
pub mod templates;
pub mod transport;
pub mod worker;

pub use outbox::{Email, OutboxSignal, enqueue};
pub use seal::{CodeSeal, SealedCode};
pub use templates::{Message, Templates};
pub use transport::Transport;
